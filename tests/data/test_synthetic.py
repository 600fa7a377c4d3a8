"""tem_rf.data.synthetic: TEM-like demo micrographs whose masks match the particles drawn."""

import time

import numpy as np
import pytest
import tifffile

from tem_rf.data.reading import read_mask, read_micrograph
from tem_rf.core.files import read_csv
from tem_rf.data import synthetic
from tem_rf.data.synthetic import Particle, make_micrograph, particle_records, write_demo_dataset


@pytest.mark.parametrize("kind", ["high_res", "low_res"])
def test_mask_is_exactly_the_drawn_particles(kind):
    image, mask, particles = make_micrograph(kind, 256, rng=3, return_particles=True)
    assert image.shape == mask.shape == (256, 256) and mask.dtype == np.uint8
    assert particles
    rows, cols = np.mgrid[:256, :256].astype(np.float64)
    drawn = np.zeros((256, 256), bool)
    for particle in particles:
        drawn |= particle.inside(rows, cols) <= 1.0
    np.testing.assert_array_equal(mask, drawn)
    assert 0.05 < mask.mean() < 0.6


def test_low_res_particles_are_darker():
    image, mask = make_micrograph("low_res", 256, rng=0)
    inside, outside = image[mask == 1].mean(), image[mask == 0].mean()
    assert inside < 0.9 * outside


def _band_power(image, weights, period_px):
    """Spectral power of the weighted image in an annulus around 1/period_px."""
    spectrum = np.abs(np.fft.fft2((image - image[weights > 0].mean()) * weights)) ** 2
    freq = np.hypot(*np.meshgrid(np.fft.fftfreq(image.shape[0]), np.fft.fftfreq(image.shape[1]), indexing="ij"))
    band = np.abs(freq - 1 / period_px) < 0.15 / period_px
    return spectrum[band].sum() / weights.sum()


def test_high_res_particles_carry_lattice_fringes_and_weak_contrast():
    pixel_size = 0.05  # fringe period 0.20-0.24 nm = 4-4.8 px
    image, mask = make_micrograph("high_res", 256, pixel_size, rng=1, dose_e_per_a2=0)
    inside = _band_power(image, mask.astype(float), 0.22 / pixel_size)
    outside = _band_power(image, 1.0 - mask, 0.22 / pixel_size)
    assert inside > 20 * outside
    # Amplitude contrast is weak: texture, not brightness, marks a particle.
    assert abs(image[mask == 1].mean() / image[mask == 0].mean() - 1) < 0.1


def test_seeded_fast_and_noisy():
    start = time.perf_counter()
    first = make_micrograph("high_res", 512, rng=5)
    assert time.perf_counter() - start < 2.0  # well under a second on a laptop; slack for shared CI
    second = make_micrograph("high_res", 512, rng=5)
    np.testing.assert_array_equal(first[0], second[0])
    assert not np.array_equal(first[0], make_micrograph("high_res", 512, rng=6)[0])
    image, mask = first
    background = image[mask == 0]
    assert background.std() > 0.05 * background.mean()  # shot noise at the paper's dose


def test_write_demo_dataset_like_a_microscope_export(tmp_path):
    info = write_demo_dataset(tmp_path / "demo", num_images=2, size=128, kind="low_res", seed=1)
    tif = tmp_path / "demo" / info["images"][0]
    assert tifffile.imread(tif).dtype == np.uint16
    micrograph = read_micrograph(tif)
    assert micrograph.pixel_size_nm == pytest.approx(0.1243)
    rng = np.random.default_rng(1)
    image, mask = make_micrograph("low_res", 128, 0.1243, rng)
    np.testing.assert_array_equal(micrograph.data, np.rint(image))
    np.testing.assert_array_equal(read_mask(tmp_path / "demo" / info["labels"][0]), mask)
    with pytest.raises(ValueError, match="already holds a demo dataset"):
        write_demo_dataset(tmp_path / "demo", num_images=1, size=96)


def test_demo_dataset_progress_counts_the_micrographs(tmp_path, capsys):
    write_demo_dataset(tmp_path / "quiet", num_images=2, size=128, kind="low_res", seed=1)
    assert "micrographs" not in capsys.readouterr().err
    write_demo_dataset(tmp_path / "shown", num_images=3, size=128, kind="low_res", seed=1, progress=True)
    assert "micrographs: 100% 3/3 micrograph" in capsys.readouterr().err  # one line when stderr is no terminal


def test_demo_dataset_records_the_particles_drawn(tmp_path):
    info = write_demo_dataset(tmp_path / "demo", num_images=2, size=128, kind="low_res", seed=4, pixel_size_nm=0.5)
    assert info["particles"] == ["particles/low_res_000.csv", "particles/low_res_001.csv"]
    rng = np.random.default_rng(4)
    for csv_path, label_path in zip(info["particles"], info["labels"]):
        image, mask, particles = make_micrograph("low_res", 128, 0.5, rng, return_particles=True)
        np.testing.assert_array_equal(read_mask(tmp_path / "demo" / label_path), mask)
        rows = read_csv(tmp_path / "demo" / csv_path)
        assert len(rows) == len(particles) > 0
        assert sum(int(r["area_px"]) for r in rows) == mask.sum()  # disjoint: the areas add up
        border = np.zeros_like(mask, dtype=bool)
        border[[0, -1], :] = border[:, [0, -1]] = True
        cells = np.mgrid[:128, :128].astype(np.float64)
        for row, particle in zip(rows, particles):
            drawn = particle.inside(*cells) <= 1.0
            assert int(row["area_px"]) == drawn.sum()
            assert row["touches_edge"] == str(bool((drawn & border).any()))
            assert float(row["row_px"]) == particle.row and float(row["col_nm"]) == pytest.approx(particle.col * 0.5)
            diameter = 2 * np.sqrt(particle.semi_major * particle.semi_minor)
            assert float(row["diameter_nm"]) == pytest.approx(diameter * 0.5)
            # the equivalent-circle diameter of what was drawn, for particles inside the field
            if row["touches_edge"] == "False":
                assert np.sqrt(4 * drawn.sum() / np.pi) == pytest.approx(diameter, rel=0.03)


def test_particle_records_of_a_cut_particle():
    (record,) = particle_records([Particle(1.0, 30.0, 10.0, 10.0, 0.0)], 64, 0.2)
    assert record["touches_edge"] is True and record["diameter_px"] == pytest.approx(20.0)
    assert 0 < record["area_px"] < np.pi * 100


def test_overwrite_replaces_a_demo_dataset_and_nothing_else(tmp_path):
    from tem_rf.core.errors import InputError

    out = tmp_path / "demo"
    synthetic.write_demo_dataset(out, num_images=2, size=64, kind="low_res", seed=0, pixel_size_nm=0.5)
    with pytest.raises(InputError, match="already holds a demo dataset; pass --overwrite"):
        synthetic.write_demo_dataset(out, num_images=1, size=64, kind="low_res", seed=1, pixel_size_nm=0.5)
    (out / "particles" / "my_counts.csv").write_text("counted by hand\n")
    before = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    with pytest.raises(InputError, match=r"holds particles/my_counts\.csv, which tem_rf did not write \(not listed in its demo\.json\)"):
        synthetic.write_demo_dataset(out, num_images=1, size=64, kind="low_res", seed=1, pixel_size_nm=0.5, overwrite=True)
    assert {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    (out / "particles" / "my_counts.csv").unlink()
    info = synthetic.write_demo_dataset(out, num_images=1, size=64, kind="low_res", seed=1, pixel_size_nm=0.5, overwrite=True)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == sorted(synthetic.demo_files(info))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]  # no temporaries
