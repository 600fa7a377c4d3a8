"""Reading micrographs and label masks as users have them.

`read_micrograph` returns the image as a 2-D float array at full precision (16-bit camera data is
never squeezed into 8 bits) with the pixel size from the file's metadata when it has one.
`read_mask` returns a binary uint8 mask (0 background, 1 particle) from binary, 0/255 or
instance-id label images. Any problem with a file raises `InputError`, whose message names the file.

TIFF and PNG are read with tifffile and Pillow. DM3/DM4 (Gatan), EMD (Velox, Berkeley) and MRC
are read by rosettasciio / mrcfile, installed with the ``formats`` extra:
``pip install "tem_rf[formats]"``.

Whether a file holds one real-space 2-D image is decided from its reader's own description of
the data (rosettasciio's axes: ``navigate`` flags, names and units, the signal type; tifffile's
axes string and photometric tag), never from the length of an axis: stacks, time series,
spectrum images and diffraction patterns are refused naming what they are, and a file with
several signals gives its only real-space image (or the one chosen by title).
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import logging
import math
import os
import re
import stat
import warnings
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tem_rf.core.errors import InputError
from tem_rf.core.units import pixel_size_or_none

logger = logging.getLogger(__name__)

TIFF_SUFFIXES = (".tif", ".tiff")
PILLOW_SUFFIXES = (".png",)
ROSETTASCIIO_SUFFIXES = (".dm3", ".dm4", ".emd", ".mrc")
MICROGRAPH_SUFFIXES = TIFF_SUFFIXES + PILLOW_SUFFIXES + ROSETTASCIIO_SUFFIXES
MASK_SUFFIXES = TIFF_SUFFIXES + PILLOW_SUFFIXES

FORMATS_INSTALL_HINT = 'pip install "tem_rf[formats]"'

# Length units met in TIFF/ImageJ/OME/rosettasciio metadata, in nanometres (keys lower case).
_UNIT_IN_NM = {
    "pm": 1e-3,
    "picometer": 1e-3,
    "picometre": 1e-3,
    "a": 0.1,
    "å": 0.1,  # LATIN CAPITAL LETTER A WITH RING ABOVE, lower-cased
    "\u212b": 0.1,  # ANGSTROM SIGN
    "angstrom": 0.1,
    "angstroms": 0.1,
    "ångström": 0.1,
    "ångströms": 0.1,
    "nm": 1.0,
    "nanometer": 1.0,
    "nanometre": 1.0,
    "nanometers": 1.0,
    "nanometres": 1.0,
    "um": 1e3,
    "µm": 1e3,  # MICRO SIGN
    "μm": 1e3,  # GREEK SMALL LETTER MU
    "micron": 1e3,
    "microns": 1e3,
    "micrometer": 1e3,
    "micrometre": 1e3,
    "micrometers": 1e3,
    "micrometres": 1e3,
    "mm": 1e6,
    "cm": 1e7,
    "m": 1e9,
}
# ImageJ writes non-ASCII characters of its unit as literal escapes: "\u00C5" for Å.
_UNICODE_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})")
# Reciprocal lengths (1/nm, nm^-1, nm-1, Å⁻¹): diffraction patterns and FFTs.
_RECIPROCAL_UNIT = re.compile(r"^(1\s*/.+|.+?\s*\^?\s*-\s*1|.+⁻¹)$")
# Scattering angles: diffraction patterns recorded in angular units.
_ANGLE_UNITS = {"rad", "mrad", "µrad", "μrad", "urad", "deg", "degree", "degrees", "°"}
_ENERGY_UNITS = {"ev", "kev", "mev", "gev"}
_TIME_UNITS = {"s", "sec", "second", "seconds", "ms", "µs", "μs", "us", "ns", "min", "h"}
_UNDEFINED_UNITS = {"", "<undefined>", "undefined", "none", "px", "pixel", "pixels", "a.u.", "au"}
# Axis names of a spectral dimension (rosettasciio's DM reader flags a CL wavelength axis as
# navigation, so the name, not the flag, tells a spectrum image from a stack).
_SPECTRAL_AXIS_WORDS = ("wavelength", "energy", "wavenumber", "raman", "frequency")
_SPECTRAL_SIGNAL_TYPES = ("eels", "eds", "edx", "cl", "pl", "luminescence", "raman", "spectrum")
_TIME_AXIS_NAMES = {"time", "t", "frame time"}

# tifffile's axes codes (TiffPageSeries.axes) other than Y, X and S (colour samples).
_TIFF_AXIS_NAMES = {"T": "time", "Z": "z", "C": "channel", "I": "frame", "Q": "frame"}

_ROSETTASCIIO_MODULES = {
    ".dm3": "rsciio.digitalmicrograph",
    ".dm4": "rsciio.digitalmicrograph",
    ".emd": "rsciio.emd",
    ".mrc": "rsciio.mrc",
}

# Instance-id masks are piecewise constant: two touching particles are the only place where two
# neighbouring non-zero pixels differ. A greyscale photo differs almost everywhere.
_MAX_INSTANCE_EDGE_FRACTION = 0.1


@dataclass(frozen=True)
class Micrograph:
    """A grey micrograph: ``data`` is 2-D float (float32 for <=16-bit data, else float64).

    ``signal`` is the title of the signal read from a file that holds several (or the one asked
    for by title), ``frame`` the 0-based frame read from a stack; both None otherwise.
    """

    data: np.ndarray
    pixel_size_nm: float | None
    path: Path
    signal: str | None = None
    frame: int | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.data.shape)  # type: ignore[return-value]


def unit_to_nm(unit: str | bytes | None) -> float | None:
    """Nanometres per ``unit`` (e.g. ``"µm"`` -> 1000), or None for unknown/empty units.

    ImageJ's escaped form of non-ASCII units (``\\u00C5`` for Å, ``\\u00B5m`` for µm) is understood.
    """
    key = _normalise_unit(unit)
    return None if key is None else _UNIT_IN_NM.get(key)


def read_micrograph(
    path: str | os.PathLike, *, frame: int | None = None, signal: str | None = None
) -> Micrograph:
    """Reads one micrograph (TIFF, PNG, DM3/DM4/EMD/MRC) as a 2-D float image.

    ``frame`` (0-based) takes one frame of a stack or time series; it is refused for a file that
    holds a single image. ``signal`` picks a signal by its title in a file that holds several
    (exact match first, then case-insensitive); without it, such a file gives its only 2-D
    real-space image, with a warning naming it. RGB files holding grey content are reduced to one
    channel (a note is logged); real colour images are converted with luminance weights and a
    warning. Raises `InputError` for missing, unreadable, truncated files, for stacks, spectrum
    images, diffraction patterns and other data that is not one real-space 2-D image, and for
    NaN/inf pixels.
    """
    path = Path(path)
    if frame is not None and (isinstance(frame, bool) or not isinstance(frame, (int, np.integer))):
        raise InputError(path, f"--frame must be a whole number, got {frame!r}")
    # a frame of a stack is read without the rest of it
    signals = _read_signals(path, "micrograph", MICROGRAPH_SUFFIXES, calibrate=True, lazy=frame is not None)
    chosen, title = _choose_signal(signals, path, frame=frame, signal=signal)
    image = _image_of(chosen, path, frame=frame, what="micrograph")
    grey = _to_grey(image.array, image.has_channels, image.colour, path)
    data = _to_float(grey, path)
    if isinstance(data, np.memmap) or not data.flags.writeable:  # a frame of a memory-mapped stack
        data = np.array(data)
    bad = ~np.isfinite(data)
    if bad.any():
        raise InputError(
            path, f"contains {int(bad.sum())} NaN or infinite pixel(s); fix or mask them first"
        )
    if min(data.shape) < 2:
        raise InputError(path, f"image is {data.shape[0]}x{data.shape[1]} pixels, too small")
    # One rule for every format: a zero, negative or NaN size in the metadata means unknown.
    return Micrograph(
        data=data,
        pixel_size_nm=pixel_size_or_none(image.pixel_size_nm),
        path=path,
        signal=title,
        frame=frame,
    )


def frame_count(path: str | os.PathLike, *, signal: str | None = None) -> int:
    """How many frames the micrograph file holds: a stack's or time series' frames, 1 for a
    single image. Raises `InputError` like `read_micrograph` for what is not micrographs."""
    return _frames_and_interval(Path(path), signal)[0]


def frame_interval_s(path: str | os.PathLike, *, signal: str | None = None) -> float | None:
    """Seconds between frames as the file records them (a time axis with a scale in time units:
    DigitalMicrograph and Velox series, ImageJ's ``finterval``), else None."""
    return _frames_and_interval(Path(path), signal)[1]


_SECONDS_PER = {"s": 1.0, "sec": 1.0, "second": 1.0, "seconds": 1.0, "ms": 1e-3, "µs": 1e-6, "μs": 1e-6,
                "us": 1e-6, "ns": 1e-9, "min": 60.0, "h": 3600.0}


def _frames_and_interval(path: Path, signal: str | None) -> tuple[int, float | None]:
    signals = _read_signals(path, "micrograph", MICROGRAPH_SUFFIXES, calibrate=False, lazy=True)
    chosen, _ = _choose_signal(signals, path, frame=0, signal=signal)
    layout = _layout(chosen)
    if layout.kind == "image":
        return 1, None
    _image_of(chosen, path, frame=0, what="micrograph")  # refuses what is not a stack of images
    interval = None
    for index in layout.frame_axes:
        axis = chosen.axes[index]
        factor = _SECONDS_PER.get((_normalise_unit(axis.units) or "").lower())
        if _is_time(axis) and factor and axis.scale and axis.scale > 0:
            interval = float(axis.scale) * factor
    return layout.frames, interval


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """Reads a label mask as uint8 0/1 (1 = particle); logs how it was binarised.

    Accepted: 0/1, two-valued 0/N (e.g. 0/255), and instance ids (0 background, 1..n particles).
    Anything else (e.g. a greyscale photo) raises `InputError`.
    """
    mask, rule = read_mask_and_rule(path)
    if rule != "binary 0/1":
        logger.info("%s: %s", path, rule)
    return mask


def read_mask_and_rule(path: str | os.PathLike) -> tuple[np.ndarray, str]:
    """Like `read_mask`, and also returns the binarisation rule that was applied, in words."""
    _, mask, rule = read_mask_values(path)
    return mask, rule


def read_mask_values(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, str]:
    """A label mask as stored (one channel: a colour label image's colours become one value
    each, as `read_mask` reads them), with `read_mask_and_rule`'s binary mask and rule: for
    instance-id masks the values are the ids. The same checks and errors as `read_mask`."""
    path = Path(path)
    (signal,) = _read_signals(path, "mask", MASK_SUFFIXES, calibrate=False)
    image = _image_of(signal, path, frame=None, what="mask")
    values = _mask_to_single_channel(image.array, image.has_channels, path)
    return (values, *binarise_mask(values, path))


def binarise_mask(values: np.ndarray, path: str | os.PathLike | None = None) -> tuple[np.ndarray, str]:
    """Turns a 2-D label image into uint8 0/1 and says which rule applied.

    Rules, in order: all values in {0, 1} -> as is; exactly two values {0, N} -> N is particle;
    non-negative integers with 0 present whose non-zero regions are piecewise constant -> instance
    ids, every id > 0 is particle. Anything else raises `InputError` naming ``path``.
    """
    values = np.asarray(values)
    if values.ndim != 2:
        raise InputError(path, f"mask has shape {values.shape}, expected a 2-D image")
    if values.dtype == bool:
        return values.astype(np.uint8), "binary 0/1"
    if not (np.issubdtype(values.dtype, np.integer) or np.issubdtype(values.dtype, np.floating)):
        raise InputError(path, f"mask has unsupported data type {values.dtype}")
    if np.issubdtype(values.dtype, np.floating):
        if not np.isfinite(values).all():
            raise InputError(path, "mask contains NaN or infinite values")
        if not np.array_equal(values, np.round(values)):
            raise InputError(
                path,
                "mask is neither binary nor instance ids: it has non-integer values "
                "(a greyscale image, or a resampled mask?)",
            )
    unique = np.unique(values)
    if unique.min() < 0:
        raise InputError(path, f"mask has negative values (minimum {unique.min()})")
    if set(unique.tolist()) <= {0, 1}:
        return (values != 0).astype(np.uint8), "binary 0/1"
    if len(unique) == 1:
        # No 0 anywhere: a crop inside one particle, or a blank/inverted export; say so loudly.
        logger.warning(
            "%s: mask is %s everywhere (no 0 background pixel); taken as all particle, check it",
            path, _fmt(unique[0]),
        )
        return np.ones(values.shape, np.uint8), f"binarised constant {_fmt(unique[0])} mask (all particle)"
    if 0 not in unique:
        raise InputError(
            path,
            f"mask is neither binary nor instance ids: no 0 (background) pixels, values "
            f"{_describe_values(unique)}",
        )
    if len(unique) == 2:
        high = unique[1]
        return (values != 0).astype(np.uint8), f"binarised 0/{_fmt(high)} mask ({_fmt(high)} -> particle)"
    fraction = _nonzero_edge_fraction(values)
    if fraction > _MAX_INSTANCE_EDGE_FRACTION:
        raise InputError(
            path,
            f"mask is neither binary nor instance ids: {len(unique)} distinct values "
            f"({_describe_values(unique)}) and {fraction:.0%} of neighbouring particle pixels "
            "differ, which looks like a greyscale image, not a label mask",
        )
    return (
        (values != 0).astype(np.uint8),
        f"binarised instance-id mask ({len(unique) - 1} ids > 0 -> particle)",
    )


# --------------------------------------------------------------------------------------------
# What a file holds: signals with axes, as the readers describe them


@dataclass(frozen=True)
class _Axis:
    """One array axis as the file's reader describes it (rosettasciio's axis dict, or tifffile)."""

    name: str
    size: int
    navigate: bool  # True: an axis *over* images or spectra (frames, time, scan), not within one
    units: str | None = None
    scale: float | None = None


@dataclass(frozen=True)
class _Signal:
    """One data set of a file: ``axes`` has one entry per array axis except a trailing colour
    axis (``has_channels``); ``colour`` says those channels are R, G, B(, A) rather than grey plus
    extra samples such as alpha."""

    data: np.ndarray
    axes: tuple[_Axis, ...]
    title: str | None = None
    signal_type: str = ""
    has_channels: bool = False
    colour: bool = False


@dataclass(frozen=True)
class _Layout:
    """What a signal is, in words, and where its image axes are."""

    kind: str  # "image", "stack", "spectrum image", "diffraction" or "other"
    phrase: str  # e.g. "a stack of 3 frames of 2x16 px"
    spatial: tuple[int, ...] = ()  # array axes of the image (y, x) for images and stacks
    frame_axes: tuple[int, ...] = ()  # array axes over frames, for stacks
    frames: int = 1


@dataclass(frozen=True)
class _Image:
    array: np.ndarray  # 2-D, or 2-D plus a trailing channel axis
    has_channels: bool
    colour: bool
    pixel_size_nm: float | None


def _read_signals(path: Path, what: str, supported: tuple[str, ...], *, calibrate: bool,
                  lazy: bool = False) -> list[_Signal]:
    """Every signal of a file of a supported type; `InputError` naming ``what`` (micrograph,
    mask) for any other type. ``calibrate`` also asks rosettasciio for a TIFF's pixel size when
    tifffile finds none (micrographs; masks need no pixel size). ``lazy``: DM/EMD signals as
    rosettasciio's dask arrays and MRC data memory-mapped, so that one frame of a stack is read
    without the others (TIFF stacks are always read so)."""
    _check_is_file(path)
    suffix = path.suffix.lower()
    if suffix in supported and suffix in TIFF_SUFFIXES:
        return [_read_tiff(path, calibrate=calibrate)]
    if suffix in supported and suffix in PILLOW_SUFFIXES:
        return [_read_pillow(path)]
    if suffix in supported and suffix in ROSETTASCIIO_SUFFIXES:
        return _read_with_formats_extra(path, lazy=lazy)
    raise InputError(
        path, f"unsupported {what} file type {path.suffix!r} (supported: {', '.join(supported)})"
    )


def _check_is_file(path: Path) -> None:
    """Refuses anything but a readable, non-empty regular file, saying what it is instead.

    Named pipes and devices are refused before any reader opens them (opening a FIFO blocks).
    """
    try:
        status = path.stat()
    except FileNotFoundError:
        if path.is_symlink():
            raise InputError(
                path, f"is a broken symbolic link (to {os.readlink(path)}, which does not exist)"
            ) from None
        raise InputError(path, "file does not exist") from None
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise InputError(path, "is a loop of symbolic links (it never reaches a file)") from None
        raise InputError(path, f"cannot be opened: {error.strerror or error}") from None
    if stat.S_ISDIR(status.st_mode):
        raise InputError(path, "is a folder, expected a file")
    if not stat.S_ISREG(status.st_mode):
        kind = (
            "named pipe (FIFO)" if stat.S_ISFIFO(status.st_mode)
            else "socket" if stat.S_ISSOCK(status.st_mode)
            else "device" if stat.S_ISCHR(status.st_mode) or stat.S_ISBLK(status.st_mode)
            else "special file"
        )
        raise InputError(path, f"is a {kind}, not a regular file")
    if status.st_size == 0:
        raise InputError(path, "file is empty (0 bytes)")
    try:
        with open(path, "rb"):
            pass
    except OSError as error:
        raise InputError(path, f"cannot be read: {error.strerror or error}") from None


# --------------------------------------------------------------------------------------------
# TIFF and PNG


def _read_tiff(path: Path, *, calibrate: bool) -> _Signal:
    """The first image series, with tifffile's axes (S: samples of a pixel) and the pixel size."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            if not tif.series:
                raise InputError(path, "TIFF file holds no image")
            series = tif.series[0]
            data = _stack_array(path, series)
            codes = series.axes
            interval = (tif.imagej_metadata or {}).get("finterval") if tif.is_imagej else None
            photometric = int(series.keyframe.photometric)
            calibration = _tiff_calibration(tif, path)
            # rosettasciio's TIFF calibrations (DM, JEOL SightX, Zeiss, TVIPS, Olympus SIS ...)
            # all key on a private tag or the maker's tag: a plain TIFF has nothing for it.
            ask_rosettasciio = calibrate and calibration is None and _has_vendor_tags(tif.pages[0])
    except InputError:
        raise
    except Exception as error:  # tifffile raises many types for corrupt files; report them all
        raise InputError(path, f"cannot be read as TIFF (corrupt or truncated?): {error}") from None
    if ask_rosettasciio:
        calibration = _rosettasciio_tiff_calibration(path)
    scale, units = calibration if calibration is not None else (None, None)
    if len(codes) != data.ndim:  # never seen; fall back to "the last two axes are the image"
        codes = "Q" * (data.ndim - 2) + "YX"
    has_channels = "S" in codes
    if has_channels:
        data = np.moveaxis(data, codes.index("S"), -1)
        codes = codes.replace("S", "")
    timed = isinstance(interval, (int, float)) and interval > 0  # ImageJ's frame interval (s)
    axes = tuple(
        _Axis("yx"["YX".index(code)] if code in "YX" else _TIFF_AXIS_NAMES.get(code, "frame"),
              size, navigate=code not in "YX",
              units=units if code in "YX" else "s" if code == "T" and timed else None,
              scale=scale if code in "YX" else float(interval) if code == "T" and timed else None)
        for code, size in zip(codes, data.shape)
    )
    # YCbCr is decoded to RGB by tifffile; MINISBLACK with extra samples is grey plus alpha.
    colour = photometric in (int(tifffile.PHOTOMETRIC.RGB), int(tifffile.PHOTOMETRIC.YCBCR))
    return _Signal(data, axes, has_channels=has_channels, colour=colour)


def _stack_array(path: Path, series) -> Any:
    """A series' pixels: for a stack, memory-mapped when it is stored uncompressed, else page by
    page as a dask array when dask is installed (``pip install "tem_rf[movies]"``), so that a
    frame is read from disk only when it is used and a movie larger than memory can be read frame
    by frame; a single image, or a stack without dask, is read whole."""
    import tifffile

    image_ndim = 2 + ("S" in series.axes)
    if len(series.shape) > image_ndim:
        try:
            return tifffile.memmap(path, series=0, mode="r")
        except (ValueError, OSError):  # compressed, tiled or not contiguous
            pass
        pages = series.pages
        image_shape = tuple(series.shape[-image_ndim:])
        if (_dask_array() is not None and len(pages) == math.prod(series.shape[:-image_ndim]) and
                all(page is not None for page in pages) and tuple(series.keyframe.shape) == image_shape):
            return _paged_stack(path, len(pages), image_shape, series.dtype).reshape(series.shape)
    return series.asarray()


def _dask_array():
    """``dask.array``, or None when dask is not installed."""
    try:
        import dask.array
    except ImportError:
        return None
    return dask.array


def _paged_stack(path: Path, count: int, image_shape: tuple[int, ...], dtype: np.dtype) -> Any:
    """A dask array of a TIFF's first ``count`` pages, each read (``tifffile.imread(key=)``) only
    when its frame is computed."""
    import dask
    import tifffile

    array = _dask_array()
    read = dask.delayed(lambda key: tifffile.imread(path, key=key), pure=True)
    return array.stack([array.from_delayed(read(key), image_shape, dtype) for key in range(count)])


def _has_vendor_tags(page) -> bool:
    return "Make" in page.tags or any(tag.code >= 32768 for tag in page.tags.values())


def _tiff_calibration(tif, path: Path) -> tuple[float, str] | None:
    """``(scale, units)`` of a pixel from FEI, OME, ImageJ or centimetre resolution tags (nm,
    or ImageJ's own unit when it is not a length, e.g. 1/nm); None when none is present.

    Inch-based resolution tags are ignored: image editors write 72/96/300 dpi as a print size,
    not a physical calibration.
    """
    page = tif.pages[0]
    try:
        fei = tif.fei_metadata
        if fei:
            width_m = float(fei.get("Scan", {}).get("PixelWidth", 0) or 0)
            if width_m > 0:
                return _tiff_nm(width_m * 1e9)
        if tif.is_ome and tif.ome_metadata:
            size = _ome_pixel_size_nm(tif.ome_metadata)
            if size is not None:
                return _tiff_nm(size)
        x_resolution = page.tags.get("XResolution")
        y_resolution = page.tags.get("YResolution")
        if x_resolution is None:
            return None
        numerator, denominator = x_resolution.value
        if numerator <= 0 or denominator <= 0:
            return None
        units_per_pixel = denominator / numerator
        if y_resolution is not None:
            y_num, y_den = y_resolution.value
            if y_num > 0 and not math.isclose(y_den / y_num, units_per_pixel, rel_tol=1e-3):
                logger.warning("%s: pixels are not square; using the x pixel size", path)
        if tif.is_imagej and tif.imagej_metadata and "unit" in tif.imagej_metadata:
            unit = tif.imagej_metadata["unit"]
            nm_per_unit = unit_to_nm(unit)
            if nm_per_unit is not None:
                return _tiff_nm(units_per_pixel * nm_per_unit)
            if _unit_kind(unit) in ("reciprocal", "angle"):  # an FFT or diffraction pattern
                return units_per_pixel, _UNICODE_ESCAPE.sub(lambda m: chr(int(m[1], 16)), str(unit))
            return None
        unit_tag = page.tags.get("ResolutionUnit")
        if unit_tag is not None and int(unit_tag.value) == 3:  # centimetre
            return _tiff_nm(units_per_pixel * 1e7)
    except (AttributeError, KeyError, TypeError, ValueError) as error:
        logger.warning("%s: could not interpret pixel size metadata (%s)", path, error)
    return None


def _tiff_nm(pixel_size_nm: float) -> tuple[float, str]:
    # Rational resolution tags carry rounding noise (0.02151999999976 for 0.02152).
    return float(f"{pixel_size_nm:.9g}"), "nm"


def _ome_pixel_size_nm(ome_xml: str) -> float | None:
    try:
        root = ElementTree.fromstring(ome_xml)
    except ElementTree.ParseError:
        return None
    for element in root.iter():
        if element.tag.endswith("Pixels") and "PhysicalSizeX" in element.attrib:
            nm_per_unit = unit_to_nm(element.attrib.get("PhysicalSizeXUnit", "µm"))
            if nm_per_unit is None:
                return None
            return float(element.attrib["PhysicalSizeX"]) * nm_per_unit
    return None


def _rosettasciio_tiff_calibration(path: Path) -> tuple[float, str] | None:
    """``(scale, units)`` of the x axis from rosettasciio's TIFF reader (DM, JEOL SightX, Zeiss,
    TVIPS, Olympus ... tags), or None when it is not installed or finds no calibration."""
    try:
        from rsciio.tiff import file_reader
    except ImportError:  # optional: without it, such TIFFs have an unknown pixel size
        return None
    try:
        with _quiet_rosettasciio():
            signals = file_reader(str(path))
    except Exception as error:  # a calibration is a bonus; tifffile already read the pixels
        logger.debug("%s: rosettasciio's TIFF reader failed: %r", path, error)
        return None
    if not signals:
        return None
    image_axes = [axis for axis in signals[0].get("axes", []) if not axis.get("navigate", False)]
    if len(image_axes) < 2:
        return None
    x_axis = _axis_from_rosettasciio(image_axes[-1], 0)
    if _unit_kind(x_axis.units) == "undefined" or not (x_axis.scale or 0) > 0:
        return None
    return x_axis.scale, x_axis.units  # type: ignore[return-value]


def _read_pillow(path: Path) -> _Signal:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
            mode = image.mode
            # Palette ("P") images give their indices, which are the label ids in label masks.
            data = np.asarray(image)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise InputError(path, f"cannot be read as an image (corrupt or truncated?): {error}") from None
    has_channels = data.ndim == 3  # Pillow's modes: L/I/F/P are 2-D, LA/RGB/RGBA add channels
    axes = tuple(_Axis(name, size, navigate=False) for name, size in zip("yx", data.shape))
    return _Signal(data, axes, has_channels=has_channels, colour=mode.startswith("RGB"))


# --------------------------------------------------------------------------------------------
# DM3/DM4, EMD, MRC


def _read_with_formats_extra(path: Path, *, lazy: bool = False) -> list[_Signal]:
    """DM3/DM4/EMD via rosettasciio, MRC via mrcfile (or rosettasciio); ``lazy``: see `_read_signals`."""
    suffix = path.suffix.lower()
    if suffix == ".mrc":
        try:
            import mrcfile
        except ImportError:
            mrcfile = None
        if mrcfile is not None:
            return [_read_mrc(path, mrcfile, lazy=lazy)]
    try:
        reader = importlib.import_module(_ROSETTASCIIO_MODULES[suffix])
    except ImportError:
        raise InputError(
            path,
            f"reading {suffix} files needs the optional readers (rosettasciio, mrcfile): "
            f"{FORMATS_INSTALL_HINT}",
        ) from None
    try:
        with _quiet_rosettasciio():
            found = reader.file_reader(str(path), lazy=lazy)
    except ImportError as error:  # a package this particular file needs (e.g. sparse for EDS)
        raise InputError(path, _missing_package_problem(error)) from None
    except MemoryError:
        raise InputError(path, "is too large to read into memory") from None
    except Exception as error:  # third-party reader; report whatever it raises, naming the file
        raise InputError(path, f"cannot be read as {suffix} (corrupt or truncated?): {error}") from None
    signals = [_signal_from_rosettasciio(entry, path) for entry in found or []]
    if not signals:
        raise InputError(path, "holds no data")
    return signals


def _missing_package_problem(error: ImportError) -> str:
    name = getattr(error, "name", None)
    if not name:
        # rosettasciio's own messages name it in quotes: "The 'sparse' library was not found."
        match = re.search(r"No module named '([^']+)'", str(error)) or re.search(
            r"'([A-Za-z_][\w.]*)'", str(error)
        )
        name = match[1] if match else None
    package = (name or "").split(".")[0]
    if package:
        return (
            f"reading this file needs the Python package {package!r}, which is not installed: "
            f'{FORMATS_INSTALL_HINT} (or pip install {package})'
        )
    return f"reading this file needs a Python package that is not installed ({error}): {FORMATS_INSTALL_HINT}"


@contextlib.contextmanager
def _quiet_rosettasciio() -> Iterator[None]:
    """Silences rosettasciio's own warnings and log lines about metadata it cannot map (they are
    about its metadata tree, not the pixels or the calibration this module reads)."""
    rsciio_logger = logging.getLogger("rsciio")
    level = rsciio_logger.level
    rsciio_logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        rsciio_logger.setLevel(level)


def _signal_from_rosettasciio(entry: dict[str, Any], path: Path) -> _Signal:
    """One of rosettasciio's signal dicts (data, axes, metadata) as a `_Signal` (its data left
    a dask array when read lazily, except RGB)."""
    data = entry["data"]
    if not hasattr(data, "shape") or data.dtype.names:
        data = np.asarray(data)
    metadata = entry.get("metadata") or {}
    title = (metadata.get("General") or {}).get("title")
    signal_type = str((metadata.get("Signal") or {}).get("signal_type") or "")
    raw_axes = list(entry.get("axes") or [])
    if all(axis.get("index_in_array") is not None for axis in raw_axes):
        raw_axes.sort(key=lambda axis: axis["index_in_array"])
    has_channels = colour = False
    if data.dtype.names:  # rosettasciio's RGB(A): a structured dtype with fields R, G, B(, A)
        fields = {name.upper(): name for name in data.dtype.names}
        if not {"R", "G", "B"} <= set(fields):
            raise InputError(path, f"has unsupported pixel data type {data.dtype}")
        order = [fields[c] for c in "RGBA" if c in fields]
        data = np.stack([data[name] for name in order], axis=-1)
        has_channels = colour = True
    ndim = data.ndim - has_channels
    if len(raw_axes) == ndim:
        axes = tuple(_axis_from_rosettasciio(axis, size) for axis, size in zip(raw_axes, data.shape))
    else:  # never seen; fall back to "the last two axes are the image"
        axes = tuple(
            _Axis(f"axis {i}", size, navigate=i < ndim - 2) for i, size in enumerate(data.shape[:ndim])
        )
    title_text = str(title) if title not in (None, "") else None
    return _Signal(data, axes, title_text, signal_type, has_channels=has_channels, colour=colour)


def _axis_from_rosettasciio(axis: dict[str, Any], size: int) -> _Axis:
    units = _unit_text(axis.get("units"))
    try:
        scale = float(axis.get("scale"))
    except (TypeError, ValueError):
        scale = None
    if scale is not None and math.isfinite(scale):
        scale = float(f"{scale:.7g}")  # scales are often float32: 7 digits drop the noise
    return _Axis(
        name=str(axis.get("name") or ""),
        size=int(axis.get("size") or size),
        navigate=bool(axis.get("navigate", False)),
        units=units,
        scale=scale,
    )


def _read_mrc(path: Path, mrcfile, *, lazy: bool = False) -> _Signal:
    """An MRC file's data (``lazy``: memory-mapped, read from disk when used)."""
    try:
        with (mrcfile.mmap if lazy else mrcfile.open)(path, permissive=False, mode="r") as mrc:
            data = mrc.data
            # a map of our own: mrcfile's closes with the file
            data = np.memmap(path, data.dtype, "r", data.offset, data.shape) if lazy else np.array(data)
            voxel_x = float(mrc.voxel_size.x)
            volume = bool(mrc.is_volume() or mrc.is_volume_stack())
    except Exception as error:  # mrcfile raises ValueError and others for bad headers/data
        raise InputError(path, f"cannot be read as MRC (corrupt or truncated?): {error}") from None
    # MRC voxel size is float32 Angstrom (0 = not set); 7 digits drop the float32 noise.
    units, scale = ("nm", float(f"{voxel_x * 0.1:.7g}")) if voxel_x > 0 else (None, None)
    over = ["volume", "z"] if volume and data.ndim == 4 else ["z" if volume else "frame"]
    nav_names = over[-(data.ndim - 2):] if data.ndim > 2 else []
    axes = tuple(_Axis(name, size, navigate=True) for name, size in zip(nav_names, data.shape)) + tuple(
        _Axis(name, size, navigate=False, units=units, scale=scale)
        for name, size in zip("yx", data.shape[-2:])
    )
    if len(axes) != data.ndim:
        raise InputError(path, f"holds {data.ndim}-D data of shape {data.shape}, not a 2-D image")
    return _Signal(data, axes)


# --------------------------------------------------------------------------------------------
# From signals to one real-space image


def _choose_signal(
    signals: list[_Signal], path: Path, *, frame: int | None, signal: str | None
) -> tuple[_Signal, str | None]:
    """The signal to read and the title to report (None for a file with one, unnamed by the user).

    With ``signal``, the one of that title (exact, then case-insensitive). Otherwise a file with
    several signals gives its only 2-D real-space image (its only stack when ``frame`` is given),
    with a warning naming it.
    """
    if signal is not None:
        matches = [s for s in signals if s.title == signal] or [
            s for s in signals if s.title is not None and s.title.casefold() == signal.casefold()
        ]
        if not matches:
            raise InputError(
                path, f"has no signal titled {signal!r}; its signals are {_signal_list(signals)}"
            )
        if len(matches) > 1:
            raise InputError(
                path, f"has {len(matches)} signals titled {signal!r} ({_signal_list(signals)}); "
                "cannot tell them apart by title",
            )
        return matches[0], matches[0].title
    if len(signals) == 1:
        return signals[0], None
    wanted = "stack" if frame is not None else "image"
    candidates = [s for s in signals if _layout(s).kind == wanted]
    if len(candidates) == 1:
        chosen = candidates[0]
        name = _signal_name(chosen, signals)
        logger.warning(
            "%s: holds %d signals (%s); using %s, the only %s (choose another with --signal)",
            path, len(signals), _signal_list(signals), name,
            "stack of 2-D images" if wanted == "stack" else "2-D real-space image",
        )
        return chosen, chosen.title if chosen.title is not None else name
    reason = (
        f"{len(candidates)} of them are" if candidates else "none of them is"
    ) + (" stacks of images" if wanted == "stack" and candidates else
         " a stack of images" if wanted == "stack" else
         " 2-D real-space images" if candidates else " a 2-D real-space image")
    raise InputError(
        path,
        f"holds {len(signals)} signals: {_signal_list(signals)}; {reason}, "
        "choose one by title with --signal",
    )


def _signal_name(signal: _Signal, signals: list[_Signal]) -> str:
    if signal.title is not None:
        return repr(signal.title)
    return f"signal {next(i for i, s in enumerate(signals) if s is signal) + 1} (untitled)"


def _signal_list(signals: list[_Signal]) -> str:
    return ", ".join(f"{_signal_name(s, signals)} ({_layout(s).phrase})" for s in signals)


def _layout(signal: _Signal) -> _Layout:
    """What a signal holds, decided from its axes' navigate flags, names and units."""
    axes = signal.axes
    shape = signal.data.shape[: len(axes)]
    # Navigation axes of length 1 (a 1-frame stack) hold nothing.
    navigation = [i for i, axis in enumerate(axes) if axis.navigate and axis.size > 1]
    image_axes = [i for i, axis in enumerate(axes) if not axis.navigate]
    if len(image_axes) > 2:
        # Some writers flag no axis as navigation (Berkeley EMD): the image is the last two axes
        # (the array convention) that are not a spectrum; the others run over images or spectra.
        image_axes = [i for i in image_axes if axes[i].size > 1]
        planes = [i for i in image_axes if not _is_spectral(axes[i], signal.signal_type)]
        keep = planes[-2:] if len(planes) >= 2 else image_axes[-2:]
        navigation = sorted(navigation + [i for i in image_axes if i not in keep])
        image_axes = keep
    spectral = [i for i in navigation if _is_spectral(axes[i], signal.signal_type)]
    over = [i for i in navigation if i not in spectral]
    type_note = f" ({signal.signal_type})" if signal.signal_type else ""

    if len(image_axes) == 2:
        height, width = (axes[i].size for i in image_axes)
        size = f"{height}x{width} px"
        unit_kinds = {_unit_kind(axes[i].units) for i in image_axes}
        units = " and ".join(dict.fromkeys(str(axes[i].units) for i in image_axes))
        if unit_kinds & {"reciprocal", "angle"}:
            count = math.prod(shape[i] for i in navigation)
            what = "a diffraction pattern" if count == 1 else f"{count} diffraction patterns"
            return _Layout("diffraction", f"{what} of {size} in reciprocal space (axes in {units})")
        if unit_kinds & {"energy", "time"}:
            return _Layout("other", f"a 2-D map of {size} with axes in {units}{type_note}")
        if spectral:
            channels = math.prod(shape[i] for i in spectral)
            extra = "".join(f" x {shape[i]}" for i in over)
            return _Layout(
                "spectrum image",
                f"a spectrum image of {channels} channels x {height} x {width} px{extra}{type_note}",
            )
        if over:
            frames = math.prod(shape[i] for i in over)
            series = "a time series: " if any(_is_time(axes[i]) for i in over) else ""
            return _Layout(
                "stack", f"{series}a stack of {frames} frames of {size}",
                spatial=tuple(image_axes), frame_axes=tuple(over), frames=frames,
            )
        return _Layout("image", f"a {size} image", spatial=tuple(image_axes))
    if len(image_axes) == 1:
        channels = shape[image_axes[0]] * math.prod(shape[i] for i in spectral)
        scan = [shape[i] for i in over]
        if len(scan) >= 2:
            return _Layout(
                "spectrum image",
                f"a spectrum image of {channels} channels x {' x '.join(map(str, scan))} px{type_note}",
            )
        if len(scan) == 1:
            return _Layout("other", f"a line scan of {scan[0]} spectra of {channels} channels{type_note}")
        axis = axes[image_axes[0]]
        if signal.signal_type or spectral or _is_spectral(axis, signal.signal_type):
            return _Layout("other", f"a spectrum of {channels} channels{type_note}")
        return _Layout("other", f"a 1-D profile or plot of {channels} points")
    return _Layout("other", f"{len(shape)}-D data of shape {tuple(shape)}")


def _image_of(signal: _Signal, path: Path, *, frame: int | None, what: str) -> _Image:
    """The 2-D image of a signal (frame ``frame`` of a stack), or `InputError` saying what the
    signal is instead."""
    layout = _layout(signal)
    if layout.kind == "stack":
        if frame is None:
            hint = (
                f"choose one with --frame (0 to {layout.frames - 1})" if what == "micrograph"
                else "save one image per file"
            )
            raise InputError(path, f"is {layout.phrase}, not a single image; {hint}")
        if not 0 <= frame < layout.frames:
            raise InputError(
                path, f"--frame={frame} is out of range: the stack has {layout.frames} frames "
                f"(0 to {layout.frames - 1})",
            )
    elif layout.kind == "image":
        if frame is not None:
            raise InputError(path, "is a single image, --frame does not apply")
    elif layout.kind == "diffraction":
        raise InputError(path, f"is {layout.phrase}, not a real-space micrograph")
    elif layout.kind == "spectrum image":
        raise InputError(path, f"is {layout.phrase}, not a 2-D micrograph")
    else:
        raise InputError(path, f"holds {layout.phrase}, not a 2-D image")
    data = signal.data
    spatial = list(layout.spatial)
    rest = [i for i in range(len(signal.axes)) if i not in spatial and i not in layout.frame_axes]
    order = rest + list(layout.frame_axes) + spatial + ([data.ndim - 1] if signal.has_channels else [])
    image_shape = tuple(data.shape[i] for i in spatial) + (data.shape[-1:] if signal.has_channels else ())
    stacked = data.transpose(order).reshape((layout.frames,) + image_shape)
    array = stacked[frame or 0]
    if not isinstance(array, np.ndarray):  # a lazily read stack (dask): read this frame only
        with _quiet_rosettasciio():
            array = np.asarray(array)
    y_axis, x_axis = (signal.axes[i] for i in spatial)
    return _Image(
        array=array,
        has_channels=signal.has_channels,
        colour=signal.colour,
        pixel_size_nm=_pixel_size_nm(y_axis, x_axis, path),
    )


def _pixel_size_nm(y_axis: _Axis, x_axis: _Axis, path: Path) -> float | None:
    """The x pixel size in nm from a length unit and a positive scale, else None."""
    nm_per_unit = unit_to_nm(x_axis.units)
    scale = x_axis.scale or 0.0
    if nm_per_unit is None or not scale > 0:
        if _unit_kind(x_axis.units) not in ("undefined", "length"):
            logger.warning(
                "%s: pixel axis is in %r, not a length; pixel size unknown", path, x_axis.units
            )
        return None
    size = scale * nm_per_unit
    y_nm = unit_to_nm(y_axis.units)
    y_scale = y_axis.scale or 0.0
    if y_nm is not None and y_scale > 0 and not math.isclose(y_scale * y_nm, size, rel_tol=1e-3):
        logger.warning("%s: pixels are not square; using the x pixel size", path)
    return float(f"{size:.9g}")


def _normalise_unit(unit: Any) -> str | None:
    text = _unit_text(unit)
    if text is None:
        return None
    return _UNICODE_ESCAPE.sub(lambda m: chr(int(m[1], 16)), text).strip().lower()


def _unit_text(unit: Any) -> str | None:
    if unit is None:
        return None
    if isinstance(unit, bytes):  # DM TIFF tags hold latin-1 bytes
        unit = unit.decode("latin-1", errors="replace")
    return str(unit).strip("\0 ")  # traits' Undefined prints as "<undefined>"


def _unit_kind(unit: Any) -> str:
    """"length", "reciprocal", "angle", "energy", "time", "undefined" or "other"."""
    key = _normalise_unit(unit)
    if key is None or key in _UNDEFINED_UNITS:
        return "undefined"
    if key in _UNIT_IN_NM:
        return "length"
    if _RECIPROCAL_UNIT.match(key.replace(" ", "")):
        return "reciprocal"
    if key in _ANGLE_UNITS:
        return "angle"
    if key in _ENERGY_UNITS:
        return "energy"
    if key in _TIME_UNITS:
        return "time"
    return "other"


def _is_time(axis: _Axis) -> bool:
    return axis.name.strip().lower() in _TIME_AXIS_NAMES or _unit_kind(axis.units) == "time"


def _is_spectral(axis: _Axis, signal_type: str) -> bool:
    """Whether a navigation axis runs over wavelengths/energies (a spectrum), not over frames."""
    name = axis.name.strip().lower()
    if any(word in name for word in _SPECTRAL_AXIS_WORDS):
        return True
    kind = _unit_kind(axis.units)
    if kind in ("energy", "reciprocal"):
        return True
    spectral_type = signal_type.strip().lower().split("_")[0] in _SPECTRAL_SIGNAL_TYPES
    return (
        spectral_type
        and kind not in ("length", "time", "angle")
        and name not in ("x", "y", "z", "width", "height", "frame", "time")
    )


# --------------------------------------------------------------------------------------------
# Channels and data types


def _to_grey(array: np.ndarray, has_channels: bool, colour: bool, path: Path) -> np.ndarray:
    """One grey channel: identical RGB channels -> one; differing -> luminance, with a warning;
    grey plus extra samples (alpha) -> the grey one."""
    if not has_channels:
        return array
    if not colour or array.shape[-1] < 3:  # grey + alpha: the alpha channel carries no intensity
        return array[..., 0]
    rgb = array[..., :3]
    if all(np.array_equal(rgb[..., 0], rgb[..., c]) for c in (1, 2)):
        logger.info("%s: saved as RGB with identical channels; using one channel as grey", path)
        return rgb[..., 0]
    logger.warning(
        "%s: RGB channels differ (a false-colour or annotated image?); converted to grey with "
        "luminance weights 0.2125 R + 0.7154 G + 0.0721 B; check this is the raw micrograph",
        path,
    )
    weights = np.array([0.2125, 0.7154, 0.0721])
    return rgb.astype(np.float64) @ weights


def _to_float(array: np.ndarray, path: Path) -> np.ndarray:
    """float32 when exact (<=16-bit integers, float16/32), float64 otherwise."""
    dtype = array.dtype
    if dtype == bool:
        return array.astype(np.float32)
    if np.issubdtype(dtype, np.complexfloating):
        raise InputError(path, "holds complex data (an FFT or exit wave?), expected real intensities")
    if np.issubdtype(dtype, np.integer):
        return array.astype(np.float32 if dtype.itemsize <= 2 else np.float64)
    if np.issubdtype(dtype, np.floating):
        return array.astype(np.float32 if dtype.itemsize <= 4 else np.float64)
    raise InputError(path, f"has unsupported pixel data type {dtype}")


def _mask_to_single_channel(array: np.ndarray, has_channels: bool, path: Path) -> np.ndarray:
    if not has_channels:
        return array
    colour = array[..., :-1] if array.shape[-1] in (2, 4) else array[..., :3]
    if array.shape[-1] in (2, 4):
        alpha = array[..., -1]
        # Some tools paint labels into the alpha channel of an otherwise constant image.
        if np.ptp(colour) == 0 and np.ptp(alpha) > 0:
            logger.info("%s: mask with constant colour; using the alpha channel", path)
            return alpha
    if all(np.array_equal(colour[..., 0], colour[..., c]) for c in range(1, colour.shape[-1])):
        return colour[..., 0]
    # Colour label images: each colour is one instance/class; black is background.
    logger.info("%s: colour mask; every non-black colour is treated as particle", path)
    encoded = colour.astype(np.int64)
    return (encoded[..., 0] << 32) | (encoded[..., 1] << 16) | encoded[..., 2]


def _nonzero_edge_fraction(values: np.ndarray) -> float:
    """Fraction of horizontally/vertically adjacent non-zero pixel pairs that differ."""
    differ = 0
    total = 0
    for a, b in ((values[:, 1:], values[:, :-1]), (values[1:, :], values[:-1, :])):
        both = (a != 0) & (b != 0)
        total += int(both.sum())
        differ += int((both & (a != b)).sum())
    return differ / total if total else 0.0


def _describe_values(unique: np.ndarray) -> str:
    shown = ", ".join(_fmt(v) for v in unique[:6])
    return f"{shown}, ..." if len(unique) > 6 else shown


def _fmt(value) -> str:
    value = float(value)
    return str(int(value)) if value.is_integer() else f"{value:g}"

