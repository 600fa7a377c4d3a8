"""experiments/fourier_baseline.py scores the Fourier filter on a split and writes a per-patch CSV."""

import csv
import json
from pathlib import Path

import pytest

from binaries import call_main


def _run(*args):
    return call_main("experiments.fourier_baseline", *args)


@pytest.fixture(scope="module")
def lattice_dataset(tmp_path_factory) -> Path:
    """Synthetic high-resolution micrographs (lattice fringes, 4-5 px period) as 64 px patches."""
    from tem_rf import data
    from tem_rf.data import synthetic
    from tem_rf.data import dataset

    root = tmp_path_factory.mktemp("fourier_data")
    synthetic.write_demo_dataset(root / "demo", num_images=5, size=128, kind="high_res", seed=1,
                                 pixel_size_nm=0.05)
    pairs = dataset.match_masks(dataset.find_image_files(root / "demo" / "images"), root / "demo" / "labels")
    data.build_dataset(pairs, root / "data", patch_size=64, min_particle_pixels=200,
                       split_fractions=(0.6, 0.2, 0.2), num_shards=1, progress=False)
    return root / "data"


def test_automatic_band_scores_every_test_patch(lattice_dataset, tmp_path):
    from tem_rf.data import read_dataset_info

    out_csv = tmp_path / "fourier.csv"
    result = _run(f"--data_dir={lattice_dataset}", "--split=test", f"--out_csv={out_csv}")
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(out_csv.open()))
    assert len(rows) == read_dataset_info(lattice_dataset)["counts"]["test"]
    assert {"source", "patch_row", "patch_col", "hard_dice", "particle_pixels"} <= set(rows[0])
    summary = json.loads(out_csv.with_suffix(".json").read_text())
    assert summary["band_source"] == "automatic"
    # The band holds the Au lattice frequencies (1/0.235 and 1/0.204 nm^-1 = 4.3, 4.9).
    low, high = summary["band_nm_inv"]
    assert low < 4.3 and high > 4.9 and high - low < 3
    assert summary["hard_dice"] > 0.7
    assert "Fourier-filter hard dice" in result.stdout


def test_lattice_spacing_band_in_process(lattice_dataset):
    # The band from Au lattice spacings, scored on the val split through the library calls the
    # binary makes (the binary's own run is covered above), down to the per-patch rows.
    from tem_rf.study import baseline as analysis
    from tem_rf.study import fourier

    band = fourier.resolve_band(lattice_spacings_nm=[0.235, 0.204], pixel_size_nm=0.05)
    summary, rows = analysis.score_fourier_filter(lattice_dataset, "val", band, sigma_px=4.0)
    assert summary["patches"] == len(rows) > 0 and summary["sigma_px"] == 4.0
    assert summary["band_cycles_per_px"][0] == pytest.approx(0.05 / 0.235 * 0.9)
    assert summary["hard_dice"] > 0.7
    # Pooled dice is Eq. 2 over all pixels of all patches, not the mean of per-patch dice.
    intersection = sum(r["hard_dice"] * (r["particle_pixels"] + r["predicted_pixels"]) / 2 for r in rows)
    pixels = sum(r["particle_pixels"] + r["predicted_pixels"] for r in rows)
    assert summary["hard_dice"] == pytest.approx(2 * intersection / pixels)


def test_bad_flags_are_one_clear_line(lattice_dataset, tmp_path):
    bad = _run(f"--data_dir={lattice_dataset}", f"--out_csv={tmp_path / 'x.csv'}", "--band_px=10")
    assert bad.returncode != 0
    assert "--band_px must be two values" in bad.stderr and "Traceback" not in bad.stderr
    assert not (tmp_path / "x.csv").exists()
    missing = _run(f"--data_dir={tmp_path / 'nowhere'}", f"--out_csv={tmp_path / 'y.csv'}")
    assert missing.returncode != 0 and "nowhere" in missing.stderr and "Traceback" not in missing.stderr


def test_reversed_band_and_unwritable_output_are_one_clear_line(lattice_dataset, tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    for flags, message in [
        ([f"--out_csv={tmp_path / 'x.csv'}", "--band_px=60,40"], "error: --band_px must be 'low,high' with 0 < low < high"),
        ([f"--out_csv={tmp_path / 'notes.txt' / 'x.csv'}", "--band_px=20,30"], f"error: {tmp_path / 'notes.txt'}: cannot write"),
    ]:
        result = _run(f"--data_dir={lattice_dataset}", *flags)
        assert result.returncode != 0 and "Traceback" not in result.stderr
        assert result.stderr.strip().splitlines()[-1].startswith(message), result.stderr[-500:]
