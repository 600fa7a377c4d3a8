"""Fourier-filter segmentation: bands, the filter on synthetic lattice images, auto band."""

import numpy as np
import pytest
import scipy.ndimage

from tem_rf.study import fourier
from tem_rf.metrics import dice

FRINGE_PERIOD_PX = 10.0


def amorphous(rng: np.random.Generator, size: int) -> np.ndarray:
    """Amorphous-carbon-like texture: Gaussian-smoothed white noise, unit variance."""
    noise = scipy.ndimage.gaussian_filter(rng.standard_normal((size, size)), 1.5)
    return noise / noise.std()


def lattice_particle(rng: np.random.Generator, size: int = 256, radius: int = 64):
    """A disc of lattice fringes (period 10 px, at an angle) on amorphous background."""
    yy, xx = np.mgrid[:size, :size]
    centre = size / 2 + rng.uniform(-8, 8, size=2)
    disc = (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2
    angle = 0.6
    fringes = np.sin(2 * np.pi * (xx * np.cos(angle) + yy * np.sin(angle)) / FRINGE_PERIOD_PX)
    image = amorphous(rng, size) + 1.2 * disc * fringes
    return ((image - image.mean()) / image.std()).astype(np.float32), disc


def test_band_conversions():
    band = fourier.FourierBand.from_fft_pixels(40, 60, 512)
    assert (band.low, band.high) == (40 / 512, 60 / 512)
    assert band.fft_pixels(512) == pytest.approx((40, 60))
    # Au {111} 0.235 nm and {200} 0.204 nm at the paper's 0.02152 nm/px: periods 10.9, 9.5 px.
    au = fourier.FourierBand.from_lattice_spacings([0.235, 0.204], 0.02152, relative_width=0.1)
    assert au.low == pytest.approx(0.02152 / 0.235 * 0.9)
    assert au.high == pytest.approx(0.02152 / 0.204 * 1.1)
    nm = fourier.FourierBand.from_nm_inv(4.0, 5.0, 0.02152)
    assert nm.nm_inv(0.02152) == pytest.approx((4.0, 5.0))
    assert (nm.low, nm.high) == pytest.approx((0.08608, 0.1076))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"band_px": [40, 60], "band_nm_inv": [4, 5]}, "at most one"),
        ({"band_nm_inv": [4, 5]}, "pixel size"),
        ({"band_px": [60, 40], "fft_size": 512}, "0 < low < high"),
        ({"band_px": [40], "fft_size": 512}, "two values"),
        ({"band_nm_inv": [30, 40], "pixel_size_nm": 0.1}, "Nyquist"),
        # The high edge alone beyond Nyquist, in each unit the user gives it.
        ({"band_px": [20, 60], "fft_size": 64}, r"band 20-60 FFT px reaches beyond Nyquist: .* 64 px patch has radii up to 32 px"),
        ({"band_nm_inv": [4, 6], "pixel_size_nm": 0.1}, r"band 4-6 nm\^-1 reaches beyond Nyquist: at 0.1 nm/px the highest frequency is 5 nm\^-1"),
        ({"lattice_spacings_nm": [0.3, 0.19], "pixel_size_nm": 0.1}, r"spacing\(s\) 0.19 nm are not resolved at 0.1 nm/px"),
    ],
)
def test_bad_bands_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        fourier.resolve_band(**kwargs)


def test_a_widened_spacing_near_nyquist_is_clipped_to_it():
    band = fourier.FourierBand.from_lattice_spacings([0.21], 0.1, relative_width=0.1)
    assert band.high == 0.5 and band.low == pytest.approx(0.1 / 0.21 * 0.9)
    with pytest.raises(ValueError, match="beyond Nyquist"):
        fourier.FourierBand(0.2, 0.51)


def test_finds_lattice_particle_with_given_band():
    rng = np.random.default_rng(0)
    image, disc = lattice_particle(rng)
    band = fourier.FourierBand(0.08, 0.12)
    result = fourier.fourier_filter(image, band)
    assert result.used_otsu
    assert dice(result.mask, disc) > 0.8
    # Without the bandpass the same blur-and-Otsu finds nothing: the texture is what is detected.
    low_band = fourier.FourierBand(0.01, 0.04)
    assert dice(fourier.fourier_filter(image, low_band, min_contrast=0).mask, disc) < 0.6


def test_finds_lattice_particle_with_automatic_band():
    rng = np.random.default_rng(1)
    image, disc = lattice_particle(rng)
    band = fourier.auto_band(image)
    # The annulus holds the fringe frequency, 0.1 cycles/px, and is narrow around it.
    assert band.low < 1 / FRINGE_PERIOD_PX < band.high
    assert band.high - band.low < 0.05
    assert dice(fourier.segment(image, band), disc) > 0.8


def test_pure_amorphous_noise_gives_nearly_empty_mask():
    rng = np.random.default_rng(2)
    noise = amorphous(rng, 256).astype(np.float32)
    result = fourier.fourier_filter(noise, fourier.FourierBand(0.08, 0.12))
    assert not result.used_otsu
    assert result.mask.mean() < 0.01
    # Plain Otsu (the paper's recipe) splits pure noise roughly in half: why the floor exists.
    assert fourier.fourier_filter(noise, fourier.FourierBand(0.08, 0.12), min_contrast=0).mask.mean() > 0.2
    with pytest.raises(ValueError, match="no lattice peak"):
        fourier.auto_band(noise)


def test_background_level_matches_pure_noise_envelope():
    # The amorphous envelope predicted from the annulus median is the mean envelope of noise.
    noise = amorphous(np.random.default_rng(3), 256)
    magnitude, level = fourier.bandpass_magnitude(noise, fourier.FourierBand(0.08, 0.12))
    assert magnitude.mean() == pytest.approx(level, rel=0.1)


def test_periodic_component_removes_edge_cross():
    # A ramp does not tile: wrapped around, it jumps by 63 (rows) and 126 (columns), which puts
    # a bright cross along the FFT axes. Its periodic component jumps by at most one ramp step.
    ramp = np.add.outer(np.arange(64.0), 2 * np.arange(64.0))
    periodic = fourier.periodic_component(ramp)
    assert np.abs(periodic[0] - periodic[-1]).max() <= 1.0 + 1e-9
    assert np.abs(periodic[:, 0] - periodic[:, -1]).max() <= 2.0 + 1e-9

    def axis_power(image):
        power = np.abs(np.fft.fft2(image - image.mean())) ** 2
        return power[0, 1:].sum() + power[1:, 0].sum()

    assert axis_power(periodic) < 1e-3 * axis_power(ramp)


def test_batch_segment_and_bad_images():
    rng = np.random.default_rng(4)
    batch = np.stack([lattice_particle(rng, size=128, radius=32)[0] for _ in range(2)])[..., None]
    masks = fourier.segment(batch, fourier.FourierBand(0.08, 0.12))
    assert masks.shape == (2, 128, 128) and masks.dtype == bool
    bad = batch[0, ..., 0].copy()
    bad[3, 4] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fourier.fourier_filter(bad, fourier.FourierBand(0.08, 0.12))
    with pytest.raises(ValueError, match="2-D"):
        fourier.fourier_filter(np.zeros((4, 16, 16)), fourier.FourierBand(0.08, 0.12))


def test_radial_spectrum_peaks_at_fringe_frequency():
    image, _ = lattice_particle(np.random.default_rng(5), size=256)
    spectrum = fourier.radial_spectrum(image)
    search = spectrum.frequency > 0.02
    peak = spectrum.frequency[search][np.argmax(spectrum.peak_excess[search])]
    assert peak == pytest.approx(1 / FRINGE_PERIOD_PX, abs=2 / 256)
