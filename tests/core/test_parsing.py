"""tem_rf.core.parsing: comma-separated flag values."""

import pytest

from tem_rf.core.parsing import parse_band, parse_int_list, parse_list, parse_sequences


def test_parse_list_counts_and_converts():
    assert parse_list("0.7, 0.1,0.2", "split", float, count=3) == pytest.approx((0.7, 0.1, 0.2))
    with pytest.raises(ValueError, match="--split must be 3 comma-separated numbers"):
        parse_list("0.7,0.1", "split", float, count=3)
    with pytest.raises(ValueError, match="--split must be comma-separated numbers"):
        parse_list("a,b,c", "split", float)


def test_parse_sequences():
    assert parse_sequences("1-1-2, 2-2-4", "dilation_grid") == [(1, 1, 2), (2, 2, 4)]
    assert parse_sequences("", "dilation_grid") == []
    with pytest.raises(ValueError, match=r"--pools: cannot read '1-x'"):
        parse_sequences("2-2,1-x", "pools")


def test_parse_band():
    assert parse_band(None, "band_px") is None
    assert parse_band("4, 6", "band_px") == (4.0, 6.0)
    with pytest.raises(ValueError, match="--band_px must be 'low,high' with 0 < low < high"):
        parse_band("6,4", "band_px")
    with pytest.raises(ValueError, match="--band_px must be two values 'low,high', got '10'"):
        parse_band("10", "band_px")


def test_parse_int_list_names_the_flag():
    assert parse_int_list("2, 8", "pool_sizes") == (2, 8)
    with pytest.raises(ValueError, match="--pool_sizes must be comma-separated integers"):
        parse_int_list("2,x", "pool_sizes")
