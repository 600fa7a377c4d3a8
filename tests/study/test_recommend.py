"""tem_rf.study.recommend: the paper's rule of thumb, the lattice test on images, a sweep's answer."""

import json
import shlex

import pytest

from tem_rf.study import recommend as rec_lib

HIGH_RES_PX = 0.02152  # the paper's 5 nm set
LOW_RES_PX = 0.1243  # the paper's 20 nm set


def _weight(row):
    return row["trainable_params"], row["receptive_field_px"]


@pytest.fixture(scope="module")
def n2_rows():
    """Brute force, built here: the N=2 pool grid and the sweep's dilation sets at pool 2."""
    from tem_rf.models.architectures import architecture_grid, architecture_table

    grid = [(n, p, (1, 1, 1)) for n, p in architecture_grid((2,), (2, 4, 8), 512)]
    grid += [(2, (2, 2), d) for d in rec_lib.DEFAULT_DILATION_SETS]
    return architecture_table(grid)


@pytest.mark.large  # builds every architecture of the grid: CI's full suite runs it
def test_high_res_picks_the_lightest_architecture_whose_rf_spans_the_particle(n2_rows):
    rec = rec_lib.recommend(5.0, HIGH_RES_PX, resolution="high", num_blocks=(2, 3))
    diameter_px = 5.0 / HIGH_RES_PX
    assert rec.particle_diameter_px == pytest.approx(232.34, abs=0.01)
    assert rec.choice["receptive_field_px"] >= 0.95 * diameter_px
    spanning = [r for r in n2_rows if r["receptive_field_px"] >= 0.95 * diameter_px]
    best = min(spanning, key=_weight)
    assert rec.choice["architecture"] == best["architecture"] == "N2_k8-4_d1-1-1"
    assert rec.choice["receptive_field_px"] == 232  # SPEC: (8,4) = 232 px = 4.99 nm
    assert rec.choice["receptive_field_nm"] == pytest.approx(4.99, abs=0.01)
    # N=2 is the lightest depth: every N=3 network the search built is heavier.
    assert all(r["trainable_params"] > 8074 for r in rec.table if r["num_blocks"] == 3)
    assert [s["num_blocks"] for s in rec.suggestions] == [2, 3]
    # Neighbours: the next smaller RF (not spanning) and the next larger one.
    roles = [r["architecture"] for r in rec.confirm]
    assert roles[1] == rec.choice["architecture"]
    assert rec.confirm[0]["receptive_field_px"] < 0.95 * diameter_px < rec.confirm[2]["receptive_field_px"]
    assert rec.regime == "high_res" and "plateau" in rec.rule and "Fig. 2d" in rec.source


@pytest.mark.large  # builds every N=2 and N=3 network of the grid: CI's full suite runs it
def test_fewer_parameters_beat_a_closer_rf(n2_rows):
    # 5.3 nm = 246 px: N3_k2-4-4 (248 px) fits it more closely, but an N=2 network also spans it.
    rec = rec_lib.recommend(5.3, HIGH_RES_PX, resolution="high", num_blocks=(2, 3))
    best = min((r for r in n2_rows if r["receptive_field_px"] >= 0.95 * 5.3 / HIGH_RES_PX), key=_weight)
    assert rec.choice["architecture"] == best["architecture"] == "N2_k2-2_d4-8-8"
    assert [s["architecture"] for s in rec.suggestions] == ["N2_k2-2_d4-8-8", "N3_k2-4-4_d1-1-1-1"]


def test_low_res_picks_the_lightest_network_overall():
    rec = rec_lib.recommend(20.0, LOW_RES_PX, resolution="low", num_blocks=(2, 3))
    lightest = min(rec.table, key=_weight)
    assert rec.choice["architecture"] == lightest["architecture"] == "N2_k2-2_d1-1-1"
    assert rec.choice["receptive_field_nm"] == pytest.approx(5.47, abs=0.01)  # the paper's 5.5 nm
    assert rec.choice["receptive_field_px"] < 20.0 / LOW_RES_PX  # not spanning: RF does not matter
    roles = {r["architecture"]: r["role"] for r in rec.confirm}
    spanning = [r for r in rec.confirm if r["receptive_field_px"] >= 0.95 * 20 / LOW_RES_PX]
    assert spanning and spanning[0]["num_blocks"] == 2
    assert any(r["num_blocks"] == 3 for r in rec.confirm)
    assert len(roles) == 3 and "Fig. 2c" in rec.source


def test_unknown_regime_gives_the_spanning_choice_and_both_rules():
    rec = rec_lib.recommend(5.0, HIGH_RES_PX, num_blocks=(2,))
    assert rec.regime == "unknown" and rec.choice["architecture"] == "N2_k8-4_d1-1-1"
    assert "Fig. 2c" in rec.source and "Fig. 2d" in rec.source


def test_a_particle_larger_than_every_rf_gets_the_largest_rf_and_a_note():
    rec = rec_lib.recommend(50.0, HIGH_RES_PX, resolution="high", num_blocks=(2,))
    assert rec.choice["receptive_field_px"] == max(r["receptive_field_px"] for r in rec.table)
    assert any("spans the particle" in n for n in rec.notes)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from tem_rf.data.synthetic import write_demo_dataset

    root = tmp_path_factory.mktemp("demo")
    for kind in ("high_res", "low_res"):
        write_demo_dataset(root / kind, num_images=3, size=256, kind=kind, seed=1)
    return root


def test_images_decide_the_regime_and_give_the_pixel_size(demo):
    high = rec_lib.recommend(5.0, images=demo / "high_res" / "images", num_blocks=(2,))
    assert high.regime == "high_res" and high.lattice.found
    assert high.pixel_size_nm == pytest.approx(HIGH_RES_PX) and high.pixel_size_from == "the images' metadata"
    assert 0.19 <= high.lattice.spacing_nm <= 0.25  # the demo's fringes: 0.20-0.24 nm
    assert high.lattice.excess >= 1 and high.lattice.z >= 4
    assert high.choice["architecture"] == "N2_k8-4_d1-1-1"

    low = rec_lib.recommend(20.0, images=str(demo / "low_res" / "images" / "*.tif"), num_blocks=(2,))
    assert low.regime == "low_res" and not low.lattice.found
    assert low.pixel_size_nm == pytest.approx(LOW_RES_PX)
    assert low.choice["architecture"] == "N2_k2-2_d1-1-1"
    # An explicit --resolution wins over the images; a flag pixel size over the files' (with a note).
    forced = rec_lib.recommend(5.0, 0.03, images=demo / "low_res" / "images", resolution="high", num_blocks=(2,))
    assert forced.regime == "high_res" and forced.pixel_size_nm == 0.03 and forced.notes


def _results(path, rows):
    path.mkdir(parents=True, exist_ok=True)
    (path / "results.json").write_text(json.dumps({"architectures": rows}))


def _row(name, n, params, rf, mean, std):
    return {"architecture": name, "num_blocks": n, "trainable_params": params, "receptive_field_px": rf,
            "receptive_field_nm": rf * HIGH_RES_PX, "hard_dice_mean": mean, "hard_dice_std": std}


def test_sweep_results_give_the_lightest_within_one_std_of_the_best(tmp_path):
    rows = [
        _row("N2_k2-2_d1-1-1", 2, 8074, 44, 0.727, 0.004),  # lightest, far below the best
        _row("N2_k8-4_d1-1-1", 2, 8074, 232, 0.781, 0.006),  # within one std: the answer
        _row("N2_k8-8_d1-1-1", 2, 8074, 392, 0.783, 0.007),  # within, but a larger RF
        _row("N3_k2-2-8_d1-1-1-1", 3, 32730, 216, 0.790, 0.010),  # the best
        _row("N4_k2-2-2-2_d1-1-1-1-1", 4, 130682, 200, 0.770, 0.005),  # heavier, not within
    ]
    _results(tmp_path / "sweep", rows)
    advice = rec_lib.advise_from_sweep(tmp_path / "sweep")
    assert advice.best["architecture"] == "N3_k2-2-8_d1-1-1-1"
    assert advice.choice["architecture"] == "N2_k8-4_d1-1-1"
    assert advice.rows[0]["architecture"] == "N2_k2-2_d1-1-1"  # the whole table, by weight
    rec = rec_lib.recommend(sweep_dir=tmp_path / "sweep")  # no diameter needed
    text = rec_lib.format_recommendation(rec)
    assert "lightest within one std of it: N2_k8-4_d1-1-1" in text
    assert all(r["architecture"] in text for r in rows)
    answer_line = next(line for line in text.splitlines() if "<- answer" in line)
    assert "N2_k8-4_d1-1-1" in answer_line


def test_sweep_runs_without_results_json_are_aggregated(tmp_path):
    for arch, pools, means in (("N2_k2-2_d1-1-1", [2, 2], (0.70, 0.72)), ("N2_k8-4_d1-1-1", [8, 4], (0.78, 0.79))):
        for seed, mean in zip((1, 2), means):
            run = tmp_path / "sweep" / "runs" / arch / f"seed{seed}"
            run.mkdir(parents=True)
            (run / "config.json").write_text(json.dumps({
                "num_blocks": 2, "pool_sizes": pools, "dilations": [1, 1, 1], "trainable_params": 8074,
                "receptive_field_px": 44 if pools == [2, 2] else 232, "receptive_field_nm": None}))
            (run / "metrics.json").write_text(json.dumps({"test_hard_dice": mean, "test_soft_dice": mean}))
    advice = rec_lib.advise_from_sweep(tmp_path / "sweep")
    assert advice.choice["architecture"] == "N2_k8-4_d1-1-1"
    assert not (tmp_path / "sweep" / "results.json").exists()  # nothing written


@pytest.mark.parametrize("kwargs, message", [
    ({"particle_diameter_nm": 5, "pixel_size_nm": 0}, "pixel_size_nm must be a positive"),
    ({"particle_diameter_nm": 5, "pixel_size_nm": float("nan")}, "pixel_size_nm must be a positive"),
    ({"particle_diameter_nm": -1, "pixel_size_nm": 0.02}, "particle_diameter_nm must be a positive"),
    ({"pixel_size_nm": 0.02}, "particle_diameter_nm is required"),
    ({"particle_diameter_nm": 5}, "pixel_size_nm is required"),
    ({"particle_diameter_nm": 5, "pixel_size_nm": 0.02, "patch_size": 0}, "patch_size must be"),
])
def test_bad_arguments_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        rec_lib.recommend(**kwargs)


def test_missing_or_empty_folders_are_refused(tmp_path):
    with pytest.raises(ValueError, match="nowhere: folder does not exist"):
        rec_lib.recommend(5, 0.02, images=tmp_path / "nowhere")
    with pytest.raises(ValueError, match="nowhere: no such sweep folder"):
        rec_lib.recommend(sweep_dir=tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty: no sweep results"):
        rec_lib.recommend(sweep_dir=tmp_path / "empty")
    _results(tmp_path / "bad", [{"architecture": "N2"}])
    with pytest.raises(ValueError, match="results.json: expected 'architectures' rows"):
        rec_lib.advise_from_sweep(tmp_path / "bad")


def _parse_with_sweep_flags(command):
    """The architectures experiments/sweep.py would train for ``command`` (its own flag parser)."""
    from absl import flags
    from binaries import _import_fresh

    from tem_rf.core.parsing import parse_sequences
    from tem_rf.study import sweep

    argv = shlex.split(command)
    assert argv[:3] == ["python3", "-m", "experiments.sweep"]
    _import_fresh("experiments.sweep")
    try:
        flags.FLAGS(["experiments.sweep", *argv[3:]])
        archs = sweep.build_architectures(
            512, pool_sizes=flags.FLAGS.pool_sizes, num_blocks=flags.FLAGS.num_blocks,
            pool_choices=flags.FLAGS.pool_choices, grid=flags.FLAGS.pool_grid,
            dilation_sets=parse_sequences(flags.FLAGS.dilation_grid, "dilation_grid"),
            dilation_pool=flags.FLAGS.dilation_pool)
        default_dilations = parse_sequences(flags.FLAGS["dilation_grid"].default, "dilation_grid")
    finally:
        flags.FLAGS.unparse_flags()
    return {a.name for a in archs}, default_dilations


def test_the_sweep_command_trains_exactly_the_confirming_architectures():
    for rec in (rec_lib.recommend(5.0, HIGH_RES_PX, resolution="high", num_blocks=(2, 3)),
                rec_lib.recommend(20.0, LOW_RES_PX, resolution="low", num_blocks=(2, 3))):
        names, default_dilations = _parse_with_sweep_flags(rec.sweep_command)
        assert names == {r["architecture"] for r in rec.confirm}
    # Dilation networks only: no pool grid.
    dilated = [r for r in rec_lib.depth_rows(2, 512) if r["family"] == "dilation"][:2]
    names, _ = _parse_with_sweep_flags(rec_lib.sweep_command(dilated))
    assert names == {r["architecture"] for r in dilated}
    # The dilation sets searched are the sweep's defaults (its all-ones set is the pool grid's).
    assert tuple(d for d in default_dilations if set(d) != {1}) == rec_lib.DEFAULT_DILATION_SETS


def test_binning_lets_the_lightest_network_span_the_particle():
    lightest = {"architecture": "N2_k2-2_d1-1-1", "trainable_params": 8074, "receptive_field_px": 44}
    # 8 nm particles at 0.1 nm/px are 80 px; RF 44 px spans 95 % of one (76 px) once binned x2.
    advice = rec_lib.binning_advice(lightest, 8.0, 0.1, 0.95)
    assert advice["factor"] == 2 and advice["pixel_size_nm"] == pytest.approx(0.2)
    assert advice["receptive_field_nm"] == pytest.approx(8.8) and advice["particle_diameter_px"] == pytest.approx(40)
    assert advice["fringes_resolved"] is None
    assert rec_lib.binning_advice(lightest, 4.0, 0.1, 0.95) is None  # 40 px: it spans already
    # Au {111} fringes (0.235 nm) at 0.1 nm/px are 2.35 px a period: no binning keeps them resolved.
    fringes = rec_lib.binning_advice(lightest, 8.0, 0.1, 0.95, lattice_spacing_nm=0.235)
    assert fringes["max_factor_for_fringes"] == 1 and fringes["fringes_resolved"] is False


def test_the_recommendation_carries_the_binning_advice():
    rec = rec_lib.recommend(5.0, HIGH_RES_PX, resolution="high", num_blocks=(2,))
    assert rec.binning["factor"] == 6 and rec.binning["architecture"] == "N2_k2-2_d1-1-1"  # 232 px: ceil(221 / 44)
    text = rec_lib.format_recommendation(rec)
    assert "or bin: binned x6 (0.1291 nm/px" in text and "36x fewer pixels" in text and "fringes stay resolved" in text
    assert rec_lib.to_json(rec)["binning"]["factor"] == 6
    assert rec_lib.recommend(20.0, LOW_RES_PX, resolution="low", num_blocks=(2,)).binning is None  # RF does not matter
