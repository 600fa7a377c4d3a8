"""experiments/analyze.py turns a (tiny, fake) sweep directory into the paper's figures and CSVs."""

import csv
import json
from pathlib import Path

import pytest

from binaries import call_main
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# (N, pools, dilations): three pool networks of growing RF and one dilated one.
ARCHITECTURES = [(2, (2, 2), (1, 1, 1)), (2, (2, 4), (1, 1, 1)), (2, (4, 4), (1, 1, 1)), (2, (2, 2), (1, 1, 2))]


def _run(*args):
    return call_main("experiments.analyze", *args)


@pytest.fixture(scope="module")
def fake_sweep(tmp_path_factory) -> tuple[Path, Path]:
    """A dataset of 64 px lattice patches and a sweep of untrained networks laid out as
    docs/design.md says (config.json, best.keras, metrics.json per run)."""
    from tem_rf import data
    from tem_rf.data import synthetic
    from tem_rf.data import dataset
    from tem_rf.models import architecture_name, count_trainable_parameters, residual_unet
    from tem_rf.models.geometry import receptive_field

    root = tmp_path_factory.mktemp("analyze")
    synthetic.write_demo_dataset(root / "demo", num_images=5, size=128, kind="high_res", seed=2,
                                 pixel_size_nm=0.05)
    pairs = dataset.match_masks(dataset.find_image_files(root / "demo" / "images"), root / "demo" / "labels")
    data_dir = root / "data"
    data.build_dataset(pairs, data_dir, patch_size=64, min_particle_pixels=200,
                       split_fractions=(0.6, 0.2, 0.2), num_shards=1, progress=False)
    sweep = root / "sweep"
    for n, pools, dilations in ARCHITECTURES:
        for seed in (3, 4):
            model = residual_unet(n, pools, dilations, seed=seed)
            name = architecture_name(n, pools, dilations)
            run_dir = sweep / "runs" / name / f"seed{seed}"
            run_dir.mkdir(parents=True)
            rf = receptive_field(model).pixels
            config = {
                "num_blocks": n, "pool_sizes": list(pools), "dilations": list(dilations),
                "architecture": name, "seed": seed, "batch_size": 2, "epochs": 1,
                "learning_rate": 1e-4, "precision": "float32", "strategy": "default",
                "data_dir": str(data_dir), "patch_size": 64, "pixel_size_nm": 0.05,
                "receptive_field_px": rf, "receptive_field_nm": rf * 0.05,
                "trainable_params": count_trainable_parameters(model), "size_divisor": pools[0] * pools[1],
                "tem_rf_version": "0.1.0",
            }
            (run_dir / "config.json").write_text(json.dumps(config))
            model.save(run_dir / "best.keras")
            (run_dir / "metrics.json").write_text(json.dumps(
                {"test_hard_dice": 0.5 + rf / 1000 + seed / 100, "test_soft_dice": 0.5, "val_hard_dice": 0.5,
                 "best_epoch": 1, "epochs_trained": 1}))
    return sweep, data_dir


def test_analyze_writes_every_figure_and_table(fake_sweep, tmp_path):
    sweep, data_dir = fake_sweep
    out = tmp_path / "analysis"
    result = _run(f"--sweep_dir={sweep}", f"--out_dir={out}", "--num_examples=2", "--erf_images=2")
    assert result.returncode == 0, result.stderr
    for name in ["dice_vs_receptive_field.png", "segmentation_overlays.png", "pool_vs_dilation.png",
                 "fourier_fn_maps.png", "fn_overlap_summary.png", "effective_receptive_field.png"]:
        assert (out / name).read_bytes()[:8] == PNG_SIGNATURE, name
    report = json.loads((out / "analysis.json").read_text())
    assert report["data_dir"] == str(data_dir)  # read from the runs' config.json
    # Three pool networks of N=2 spanning the RF range, and the closest pool/dilation pair
    # (RF 64 by pooling 2,4 vs RF 60 by dilation 1,1,2), all at the smallest shared seed.
    assert report["architectures"] == ["N2_k2-2_d1-1-1", "N2_k2-4_d1-1-1", "N2_k4-4_d1-1-1"]
    assert report["pool_vs_dilation"] == ["N2_k2-4_d1-1-1", "N2_k2-2_d1-1-2"]
    assert all(path.endswith("seed3") for path in report["runs"].values())

    fn_rows = list(csv.DictReader((out / "fn_overlap.csv").open()))
    assert len(fn_rows) == report["patches"] * 4  # Fourier filter + three networks per patch
    assert all(float(r["fn_overlap_fourier"]) == 1.0 for r in fn_rows if r["method"] == "fourier")
    erf_rows = {r["architecture"]: r for r in csv.DictReader((out / "erf.csv").open())}
    small = erf_rows["N2_k2-2_d1-1-1"]
    assert small["window_clipped"] == "False" and int(small["window_height_px"]) == 44
    assert 0 < float(small["radius_95_px"]) <= 44 / 2 * 2**0.5
    assert erf_rows["N2_k4-4_d1-1-1"]["window_clipped"] == "True"  # 116-124 px window, 64 px patch
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporaries left


def test_analyze_bad_input_is_one_clear_line(fake_sweep, tmp_path):
    sweep, _ = fake_sweep
    result = _run(f"--sweep_dir={tmp_path}", f"--out_dir={tmp_path / 'out'}")
    assert result.returncode != 0
    assert "not a sweep directory" in result.stderr and "Traceback" not in result.stderr
    result = _run(f"--sweep_dir={sweep}", f"--out_dir={tmp_path / 'out'}", "--architectures=N9_k2-2_d1")
    assert result.returncode != 0
    assert "no finished runs for N9_k2-2_d1" in result.stderr and "Traceback" not in result.stderr
    (tmp_path / "notes.txt").write_text("x")
    for flags, message in [
        ([f"--out_dir={tmp_path / 'notes.txt'}"], f"error: {tmp_path / 'notes.txt'}: is a file, not a folder"),
        ([f"--out_dir={tmp_path / 'out'}", "--example_indices=99"], "error: example indices [99] are outside"),
    ]:
        result = _run(f"--sweep_dir={sweep}", *flags)
        assert result.returncode != 0 and "Traceback" not in result.stderr
        assert result.stderr.strip().splitlines()[-1].startswith(message)
        assert not (tmp_path / "out").exists()  # refused before anything is written


@pytest.mark.large  # runs the binary three times: CI's full suite runs it
def test_an_earlier_analysis_is_replaced_only_with_overwrite_and_as_a_whole(fake_sweep, tmp_path):
    sweep, _ = fake_sweep
    out = tmp_path / "analysis"
    out.mkdir()
    (out / "notes.txt").write_text("my notes beside the analysis")
    (out / "erf.csv").write_text("an erf.csv of mine")
    (out / "pool_vs_dilation.png").write_text("a previous analysis' figure")
    args = (f"--sweep_dir={sweep}", f"--out_dir={out}", "--num_examples=1", "--erf_images=1", "--max_patches=2",
            "--architectures=N2_k2-2_d1-1-1,N2_k2-4_d1-1-1")
    refused = _run(*args)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    # the first of the analysis' files (in `analysis_files` order) that is there
    assert refused.stderr.strip().splitlines()[-1] == (
        f"error: {out / 'pool_vs_dilation.png'}: exists; pass --overwrite to replace it")
    assert sorted(p.name for p in out.iterdir()) == ["erf.csv", "notes.txt", "pool_vs_dilation.png"]
    assert (out / "erf.csv").read_text() == "an erf.csv of mine"

    replaced = _run(*args, "--overwrite")
    assert replaced.returncode == 0, replaced.stderr
    assert (out / "notes.txt").read_text() == "my notes beside the analysis"  # not one of the analysis' files
    assert (out / "erf.csv").read_text().startswith("architecture,")
    assert (out / "pool_vs_dilation.png").read_bytes()[:8] == PNG_SIGNATURE
    report = json.loads((out / "analysis.json").read_text())
    written = {Path(path).name for path in report["outputs"].values()}
    assert sorted(p.name for p in out.iterdir()) == sorted(written | {"notes.txt"})
    assert not [p for p in tmp_path.rglob(".*")]  # no temporaries


@pytest.mark.large  # runs the binary three times: CI's full suite runs it
def test_a_second_analysis_into_the_same_folder_is_refused_and_a_killed_ones_temporaries_go(fake_sweep, tmp_path):
    import os

    from tem_rf.core.locks import output_lock

    sweep, _ = fake_sweep
    out = tmp_path / "analysis"
    args = (f"--sweep_dir={sweep}", f"--out_dir={out}", "--max_patches=2", "--erf_images=1", "--num_examples=1")
    with output_lock(out):  # as another analysis writing there holds it
        result = _run(*args)
    assert result.returncode == 1 and not out.exists()
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: {out}: another tem_rf command (pid {os.getpid()}) is writing this output; wait for it to end or "
        "choose another output")
    out.mkdir()
    (out / ".results.csv.k1lled0x.tmp").write_text("left by a killed analysis")
    (out / ".mine.tmp").write_text("a user's hidden file")
    assert _run(*args).returncode == 0
    assert sorted(p.name for p in out.glob(".*")) == [".mine.tmp"]
