"""Fourier-filter segmentation of crystalline particles (paper "Fourier Filtering", Table S3).

The classical, texture-only baseline the networks are compared with::

    image -> FFT -> annular bandpass around the first-order lattice peaks -> inverse FFT
          -> magnitude -> Gaussian blur (sigma 9 px) -> Otsu threshold -> particle mask

Lattice fringes put sharp peaks into the FFT at the lattice spatial frequencies; amorphous
background spreads its power evenly around each ring. The annulus keeps the fringes, the
magnitude of the filtered image is an envelope that is large where fringes are, the blur merges
the fringe maxima into one blob per particle, and Otsu splits blob from background.

Frequencies are handled in **cycles per pixel** (``FourierBand.low``/``high``, 0 to 0.5). A band
can be made from FFT pixels (``from_fft_pixels``: radius ``r`` in an FFT of side ``n`` is ``r/n``
cycles/px), from nm^-1 (``from_nm_inv``: times the pixel size in nm), from lattice spacings
(``from_lattice_spacings``: ``1/d`` in nm^-1, widened by a relative margin; Au {111} 0.235 nm and
{200} 0.204 nm), or found automatically (``auto_band``) from the radial power spectrum.

Two details beyond the paper's recipe, both documented where they act:

* The FFT is taken of the image's *periodic component* (Moisan 2011, periodic plus smooth
  decomposition). A plain FFT of a patch that does not tile treats the edge jump as signal, a
  bright cross through the spectrum that crosses the annulus and paints stripes along the edges.
* Otsu always splits an image into two classes, also one that holds no particle at all. The
  envelope amorphous background alone would give is known from the data (its mean, ``level``,
  follows from the median power in the annulus, which lattice spots barely move). Otsu's
  threshold is kept when the bright class it separates averages at least ``min_contrast`` x
  ``level`` (on pure amorphous background that class averages about 1.1-1.2 x ``level``);
  otherwise no class stands out (no particle, or one too small or faint for Otsu) and the
  threshold becomes ``noise_floor`` x ``level`` (pure background exceeds 1.5 x ``level`` at
  about 0.1 % of pixels), so a patch of amorphous carbon gives a (nearly) empty mask rather
  than half of it. ``min_contrast=0`` is the paper's plain Otsu.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
import scipy.ndimage
import skimage.filters

from tem_rf.core.units import require_pixel_size

DEFAULT_SIGMA_PX = 9.0
DEFAULT_NOISE_FLOOR = 1.5
DEFAULT_MIN_CONTRAST = 1.25
DEFAULT_RELATIVE_WIDTH = 0.1
# auto_band looks for peaks between these frequencies (cycles/px): periods of 50 px down to 2.2 px.
DEFAULT_MIN_FREQUENCY = 0.02
DEFAULT_MAX_FREQUENCY = 0.45
# Reflections within this factor of the strongest one count as "first order" (fcc {200} sits at
# 1.155x {111}; the next, {220}, at 1.63x, is left out).
FIRST_ORDER_RATIO = 1.35
# What a pixel size is needed for, in the message when it is missing.
_PIXEL_SIZE_NEEDED = "the pixel size (needed to convert nm^-1 or lattice spacings)"


@dataclasses.dataclass(frozen=True)
class FourierBand:
    """An annulus in the FFT, as spatial frequencies in cycles per pixel (0 < low < high <= 0.5)."""

    low: float
    high: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            raise ValueError(f"band limits must be finite, got {self.low}, {self.high}")
        if not 0.0 < self.low < self.high:
            raise ValueError(f"band must satisfy 0 < low < high, got low={self.low}, high={self.high}")
        if self.high > 0.5:
            # Above Nyquist there are no frequencies: a band reaching there is a unit mistake.
            raise ValueError(
                f"band {self.low:.4g}-{self.high:.4g} cycles/px reaches beyond Nyquist "
                "(0.5 cycles/px, the highest frequency a pixel grid holds)"
            )

    @classmethod
    def from_fft_pixels(cls, low_px: float, high_px: float, fft_size: int) -> "FourierBand":
        """Radii in pixels of an FFT of side ``fft_size`` (the patch size the band was read from)."""
        if fft_size <= 0:
            raise ValueError(f"fft_size must be positive, got {fft_size}")
        if high_px > fft_size / 2:
            raise ValueError(
                f"band {low_px:g}-{high_px:g} FFT px reaches beyond Nyquist: the FFT of a "
                f"{fft_size} px patch has radii up to {fft_size / 2:g} px"
            )
        return cls(low_px / fft_size, high_px / fft_size)

    @classmethod
    def from_nm_inv(cls, low_nm_inv: float, high_nm_inv: float, pixel_size_nm: float) -> "FourierBand":
        """Spatial frequencies in nm^-1 (cycles/nm), converted with the pixel size in nm."""
        pixel_size_nm = require_pixel_size(pixel_size_nm, _PIXEL_SIZE_NEEDED)
        nyquist = 0.5 / pixel_size_nm
        if high_nm_inv > nyquist:
            raise ValueError(
                f"band {low_nm_inv:g}-{high_nm_inv:g} nm^-1 reaches beyond Nyquist: at "
                f"{pixel_size_nm:g} nm/px the highest frequency is {nyquist:.4g} nm^-1"
            )
        return cls(low_nm_inv * pixel_size_nm, high_nm_inv * pixel_size_nm)

    @classmethod
    def from_lattice_spacings(
        cls,
        spacings_nm: Sequence[float],
        pixel_size_nm: float,
        relative_width: float = DEFAULT_RELATIVE_WIDTH,
    ) -> "FourierBand":
        """The annulus spanning ``1/d`` of every spacing, widened by ``relative_width`` each side.

        E.g. Au {111} 0.235 nm and {200} 0.204 nm at 0.02152 nm/px: 4.26 and 4.90 nm^-1, i.e.
        0.0916 and 0.1055 cycles/px (fringe periods 10.9 and 9.5 px); with 10 %: 0.082-0.116.
        """
        pixel_size_nm = require_pixel_size(pixel_size_nm, _PIXEL_SIZE_NEEDED)
        if not spacings_nm or any(not d > 0 for d in spacings_nm):
            raise ValueError(f"lattice spacings must be positive nm values, got {list(spacings_nm)}")
        if not 0 <= relative_width < 1:
            raise ValueError(f"relative_width must be in [0, 1), got {relative_width}")
        unresolved = [d for d in spacings_nm if pixel_size_nm / d >= 0.5]
        if unresolved:
            raise ValueError(
                f"lattice spacing(s) {', '.join(f'{d:g}' for d in unresolved)} nm are not resolved at "
                f"{pixel_size_nm:g} nm/px (Nyquist: spacings of at least {2 * pixel_size_nm:g} nm)"
            )
        frequencies = [pixel_size_nm / d for d in spacings_nm]
        # The widening may pass Nyquist for a spacing close to it; the grid holds nothing beyond.
        high = min(max(frequencies) * (1 + relative_width), 0.5)
        return cls(min(frequencies) * (1 - relative_width), high)

    def fft_pixels(self, fft_size: int) -> tuple[float, float]:
        """The band as radii in pixels of an FFT of side ``fft_size``."""
        return self.low * fft_size, self.high * fft_size

    def nm_inv(self, pixel_size_nm: float) -> tuple[float, float]:
        """The band in nm^-1."""
        pixel_size_nm = require_pixel_size(pixel_size_nm, _PIXEL_SIZE_NEEDED)
        return self.low / pixel_size_nm, self.high / pixel_size_nm


def _as_image(image: np.ndarray) -> np.ndarray:
    """A 2-D float64 image from ``[H, W]`` or ``[H, W, 1]``; NaNs and wrong ranks are refused."""
    array = np.asarray(image, dtype=np.float64)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim != 2:
        raise ValueError(f"expected one 2-D image ([H, W] or [H, W, 1]), got shape {np.shape(image)}")
    if min(array.shape) < 8:
        raise ValueError(f"image of shape {array.shape} is too small to Fourier filter")
    if not np.isfinite(array).all():
        raise ValueError("image contains NaN or infinite values")
    return array


def _as_stack(images: np.ndarray) -> np.ndarray:
    """``[N, H, W]`` float64 from one image ``[H, W]`` or a batch ``[N, H, W]`` / ``[N, H, W, 1]``."""
    array = np.asarray(images, dtype=np.float64)
    if array.ndim == 4 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3:
        raise ValueError(f"expected images [N, H, W] or [N, H, W, 1], got shape {np.shape(images)}")
    return np.stack([_as_image(a) for a in array])


def periodic_component(image: np.ndarray) -> np.ndarray:
    """The periodic part of Moisan's periodic + smooth decomposition (J. Math. Imaging Vis. 2011).

    Equal to the image minus the smooth image whose Laplacian matches the jumps across the
    image borders; its FFT has no edge-discontinuity cross. The mean is removed as well.
    """
    u = _as_image(image)
    rows, cols = u.shape
    boundary = np.zeros_like(u)
    boundary[0, :] += u[-1, :] - u[0, :]
    boundary[-1, :] += u[0, :] - u[-1, :]
    boundary[:, 0] += u[:, -1] - u[:, 0]
    boundary[:, -1] += u[:, 0] - u[:, -1]
    q = np.arange(rows).reshape(-1, 1)
    r = np.arange(cols).reshape(1, -1)
    denominator = 2 * np.cos(2 * np.pi * q / rows) + 2 * np.cos(2 * np.pi * r / cols) - 4
    denominator[0, 0] = 1.0  # the smooth part's mean is free; set to 0 below
    smooth_fft = np.fft.fft2(boundary) / denominator
    smooth_fft[0, 0] = 0.0
    periodic = u - np.real(np.fft.ifft2(smooth_fft))
    return periodic - periodic.mean()


def frequency_radius(shape: tuple[int, int]) -> np.ndarray:
    """Spatial frequency (cycles/px) of every coefficient of ``numpy.fft.fft2`` for ``shape``."""
    fy = np.fft.fftfreq(shape[0]).reshape(-1, 1)
    fx = np.fft.fftfreq(shape[1]).reshape(1, -1)
    return np.hypot(fy, fx)


def annulus_mask(shape: tuple[int, int], band: FourierBand) -> np.ndarray:
    """Boolean ``fft2`` mask of the annulus ``band.low <= |f| <= band.high`` (centro-symmetric)."""
    radius = frequency_radius(shape)
    return (radius >= band.low) & (radius <= band.high)


@dataclasses.dataclass(frozen=True)
class FourierFilterResult:
    """What the Fourier filter computed for one image.

    ``envelope`` is the blurred magnitude of the band-passed image; ``mask`` is
    ``envelope > threshold``. ``background_level`` is the mean envelope amorphous background
    alone would give; ``contrast`` is the mean of Otsu's bright class over it; ``used_otsu``
    says whether Otsu's threshold was kept (else ``threshold`` is the noise floor).
    """

    mask: np.ndarray
    envelope: np.ndarray
    threshold: float
    otsu_threshold: float
    background_level: float
    contrast: float
    used_otsu: bool


def bandpass_magnitude(image: np.ndarray, band: FourierBand) -> tuple[np.ndarray, float]:
    """``|IFFT(FFT(image) * annulus)|`` and the mean magnitude amorphous background would give.

    The second value: amorphous power is spread evenly around a ring, so the median of ``|F|^2``
    over the annulus (divided by ln 2, since ``|F|^2`` of noise is exponentially distributed)
    estimates its mean power per coefficient even when lattice spots sit in the ring. By Parseval
    the band-passed background is then Gaussian with variance ``n * power / (H W)^2`` (``n``
    coefficients in the annulus), whose magnitude has mean ``sigma * sqrt(2/pi)``.
    """
    periodic = periodic_component(image)
    spectrum = np.fft.fft2(periodic)
    mask = annulus_mask(periodic.shape, band)
    count = int(mask.sum())
    if count == 0:
        raise ValueError(
            f"band {band.low:.4g}-{band.high:.4g} cycles/px holds no FFT pixel of a "
            f"{periodic.shape[0]}x{periodic.shape[1]} image; widen it"
        )
    filtered = np.fft.ifft2(np.where(mask, spectrum, 0))
    magnitude = np.abs(filtered)
    background_power = np.median(np.abs(spectrum[mask]) ** 2) / math.log(2)
    sigma = math.sqrt(count * background_power) / periodic.size
    return magnitude, sigma * math.sqrt(2 / math.pi)


def fourier_filter(
    image: np.ndarray,
    band: FourierBand,
    *,
    sigma_px: float = DEFAULT_SIGMA_PX,
    min_contrast: float = DEFAULT_MIN_CONTRAST,
    noise_floor: float = DEFAULT_NOISE_FLOOR,
) -> FourierFilterResult:
    """Segments one image ``[H, W]`` (or ``[H, W, 1]``) by Fourier filtering; see the module doc.

    Args:
      image: the micrograph (any scale; the method is scale-free).
      band: the annulus, in cycles/px.
      sigma_px: standard deviation of the Gaussian blur of the magnitude, in pixels.
      min_contrast: Otsu's threshold is kept when its bright class averages at least this many
        times the amorphous envelope; 0 always keeps it (the paper's plain Otsu).
      noise_floor: otherwise the threshold is this many times the amorphous envelope.
    """
    if not sigma_px >= 0:
        raise ValueError(f"sigma_px must be >= 0, got {sigma_px}")
    if not (min_contrast >= 0 and noise_floor >= 0):
        raise ValueError(f"min_contrast and noise_floor must be >= 0, got {min_contrast}, {noise_floor}")
    magnitude, level = bandpass_magnitude(image, band)
    # mode="reflect": a blur that wrapped around would bleed one edge's particle into the other.
    envelope = scipy.ndimage.gaussian_filter(magnitude, sigma_px, mode="reflect") if sigma_px else magnitude
    if np.ptp(envelope) <= 1e-12 * max(float(np.abs(envelope).max()), 1e-300):
        otsu = float(envelope.max())  # a flat envelope (e.g. a constant image): nothing above it
    else:
        otsu = float(skimage.filters.threshold_otsu(envelope))
    bright = envelope[envelope > otsu]
    contrast = float(bright.mean() / level) if bright.size and level > 0 else 0.0
    used_otsu = contrast >= min_contrast
    threshold = otsu if used_otsu else max(otsu, noise_floor * level)
    return FourierFilterResult(
        mask=envelope > threshold,
        envelope=envelope.astype(np.float32),
        threshold=float(threshold),
        otsu_threshold=otsu,
        background_level=float(level),
        contrast=contrast,
        used_otsu=bool(used_otsu),
    )


def segment(images: np.ndarray, band: FourierBand, **options: float) -> np.ndarray:
    """Particle masks (bool): ``[H, W]`` for one image ``[H, W]``, ``[N, H, W]`` for a batch;
    ``options`` (sigma_px, min_contrast, noise_floor) are `fourier_filter`'s."""
    single = np.ndim(images) == 2
    masks = np.stack([fourier_filter(img, band, **options).mask for img in _as_stack(images)])
    return masks[0] if single else masks


@dataclasses.dataclass(frozen=True)
class RadialSpectrum:
    """Ring statistics of the power spectrum, averaged over images.

    ``frequency``: ring centres in cycles/px (rings one FFT pixel wide). ``mean_power``: the
    radially averaged power. ``peak_excess``: ``log(max / median)`` of the power in the ring minus
    what amorphous background (exponentially distributed power) would give for a ring of that
    many coefficients; near 0 for isotropic texture, large where lattice spots are.
    ``num_images``: how many images were averaged (``combine_spectra`` weights by it).
    """

    frequency: np.ndarray
    mean_power: np.ndarray
    peak_excess: np.ndarray
    num_images: int = 1


def combine_spectra(spectra: Sequence[RadialSpectrum]) -> RadialSpectrum:
    """The average of spectra of same-size images, weighted by their image counts (streaming)."""
    if not spectra:
        raise ValueError("no spectra to combine")
    first = spectra[0]
    if any(s.frequency.shape != first.frequency.shape or not np.allclose(s.frequency, first.frequency)
           for s in spectra):
        raise ValueError("spectra of different image sizes cannot be combined")
    counts = np.array([s.num_images for s in spectra], dtype=np.float64)
    total = counts.sum()
    return RadialSpectrum(
        first.frequency,
        sum(c * s.mean_power for c, s in zip(counts, spectra)) / total,
        sum(c * s.peak_excess for c, s in zip(counts, spectra)) / total,
        int(total),
    )


def _expected_log_peak_ratio(count: np.ndarray) -> np.ndarray:
    # For n iid exponential values, E[max] = H_n * mean and median = ln 2 * mean.
    harmonic = np.log(np.maximum(count, 1)) + 0.5772156649 + 1 / (2 * np.maximum(count, 1))
    return np.log(harmonic / math.log(2))


def radial_spectrum(images: np.ndarray) -> RadialSpectrum:
    """Ring statistics of the FFT power of one image or a batch of same-shape images."""
    stack = _as_stack(images)
    shape = stack.shape[1:]
    # Half plane (rfft2): the other half mirrors it and would count every spot twice.
    fy = np.fft.fftfreq(shape[0]).reshape(-1, 1)
    fx = np.fft.rfftfreq(shape[1]).reshape(1, -1)
    radius = np.hypot(fy, fx)
    ring_width = 1.0 / min(shape)
    ring = np.rint(radius / ring_width).astype(np.int64)
    num_rings = int(0.5 / ring_width) + 1
    valid = ring < num_rings
    labels = np.where(valid, ring + 1, 0)  # 0 = outside the Nyquist circle (corners), ignored
    index = np.arange(1, num_rings + 1)
    count = np.bincount(labels.ravel(), minlength=num_rings + 1)[1:]
    mean_power = np.zeros(num_rings)
    excess = np.zeros(num_rings)
    expected = _expected_log_peak_ratio(count)
    for image in stack:
        power = np.abs(np.fft.rfft2(periodic_component(image))) ** 2
        mean_power += scipy.ndimage.mean(power, labels, index)
        peak = scipy.ndimage.maximum(power, labels, index)
        median = scipy.ndimage.median(power, labels, index)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.log(np.asarray(peak) / np.asarray(median))
        excess += np.where(np.isfinite(ratio), ratio - expected, 0.0)
    frequency = np.arange(num_rings) * ring_width
    return RadialSpectrum(frequency, mean_power / len(stack), excess / len(stack), len(stack))


def auto_band(
    images: np.ndarray | RadialSpectrum,
    *,
    min_frequency: float = DEFAULT_MIN_FREQUENCY,
    max_frequency: float = DEFAULT_MAX_FREQUENCY,
    min_excess: float = 1.0,
    min_z: float = 4.0,
    pad_rings: int = 2,
) -> FourierBand:
    """The first-order lattice band read from the radial power spectrum of ``images``.

    The strongest ring (largest ``peak_excess`` between ``min_frequency`` and ``max_frequency``
    cycles/px) marks the lattice; every ring within a factor ``FIRST_ORDER_RATIO`` of it whose
    excess is at least half the strongest joins the band (so Au {111} and {200} both do), and
    the band is padded by ``pad_rings`` rings each side because spots of a finite crystal are
    a few FFT pixels wide. Give a batch of images (or their ``radial_spectrum``, e.g. combined
    over a whole split with ``combine_spectra``): averaging over patches steadies the choice.

    The strongest ring must stand out by ``min_excess`` (natural-log units) and by ``min_z``
    robust standard deviations (median/MAD over the searched rings); on amorphous background
    alone the largest of ~200 rings reaches about 0.9 (z up to about 5). Otherwise the images
    show no lattice fringes and ValueError asks for the band explicitly.
    """
    spectrum = images if isinstance(images, RadialSpectrum) else radial_spectrum(images)
    freq, excess = spectrum.frequency, spectrum.peak_excess
    search = (freq >= min_frequency) & (freq <= max_frequency)
    if search.sum() < 5:
        raise ValueError(
            f"too few FFT rings between {min_frequency} and {max_frequency} cycles/px "
            f"(images of {2 * (len(freq) - 1)} px are too small)"
        )
    searched = excess[search]
    median = float(np.median(searched))
    spread = 1.4826 * float(np.median(np.abs(searched - median))) or 1e-12
    peak = int(np.argmax(np.where(search, excess, -np.inf)))
    z = (excess[peak] - median) / spread
    if excess[peak] < min_excess or z < min_z:
        raise ValueError(
            f"no lattice peak found in the radial power spectrum (the strongest ring, at "
            f"{freq[peak]:.4g} cycles/px, stands out by {excess[peak]:.2f} (z {z:.1f}); needed "
            f"{min_excess} and z {min_z}); give the band explicitly (in FFT pixels, nm^-1 or "
            "lattice spacings)"
        )
    first_order = (
        search
        & (freq >= freq[peak] / FIRST_ORDER_RATIO)
        & (freq <= freq[peak] * FIRST_ORDER_RATIO)
        & (excess >= 0.5 * excess[peak])
    )
    chosen = np.flatnonzero(first_order)
    ring_width = freq[1] - freq[0]
    low = max(freq[chosen.min()] - (pad_rings + 0.5) * ring_width, ring_width)
    high = min(freq[chosen.max()] + (pad_rings + 0.5) * ring_width, 0.5)
    return FourierBand(float(low), float(high))


def resolve_band(
    *,
    band_px: Sequence[float] | None = None,
    band_nm_inv: Sequence[float] | None = None,
    lattice_spacings_nm: Sequence[float] | None = None,
    relative_width: float = DEFAULT_RELATIVE_WIDTH,
    pixel_size_nm: float | None = None,
    fft_size: int | None = None,
    images: np.ndarray | RadialSpectrum | None = None,
) -> FourierBand:
    """One band from whichever description is given (at most one); automatic when none is.

    ``band_px`` needs ``fft_size``; ``band_nm_inv`` and ``lattice_spacings_nm`` need
    ``pixel_size_nm``; the automatic band needs ``images`` (or their radial spectrum).
    """
    given = [name for name, value in (("band_px", band_px), ("band_nm_inv", band_nm_inv),
                                      ("lattice_spacings_nm", lattice_spacings_nm)) if value]
    if len(given) > 1:
        raise ValueError(f"give at most one band description, got {', '.join(given)}")

    def pair(values: Sequence[float], what: str) -> tuple[float, float]:
        if len(values) != 2:
            raise ValueError(f"{what} must be two values 'low,high', got {list(values)}")
        return float(values[0]), float(values[1])

    if band_px:
        if fft_size is None:
            raise ValueError("a band in FFT pixels needs the FFT (patch) size")
        return FourierBand.from_fft_pixels(*pair(band_px, "band_px"), fft_size)
    if band_nm_inv:
        return FourierBand.from_nm_inv(*pair(band_nm_inv, "band_nm_inv"), pixel_size_nm)
    if lattice_spacings_nm:
        return FourierBand.from_lattice_spacings(lattice_spacings_nm, pixel_size_nm, relative_width)
    if images is None:
        raise ValueError("the automatic band needs images or their radial spectrum")
    return auto_band(images)
