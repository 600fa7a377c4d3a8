"""tem_rf.core.cli: list parsing and the absl INFO filter used by every binary."""

import logging

import pytest

from tem_rf.core import cli as tem_flags


def test_parse_int_list():
    assert tem_flags.parse_int_list("2, 8", "pool_sizes") == (2, 8)
    with pytest.raises(ValueError, match="--pool_sizes must be comma-separated integers"):
        tem_flags.parse_int_list("2,x", "pool_sizes")


def test_drop_absl_info_keeps_warnings_and_our_own_info():
    def record(name, level):
        return logging.LogRecord(name, level, __file__, 1, "message", None, None)

    assert not tem_flags.drop_absl_info(record("absl", logging.INFO))
    assert tem_flags.drop_absl_info(record("absl", logging.WARNING))
    assert tem_flags.drop_absl_info(record("tem_rf.train.loop", logging.INFO))
