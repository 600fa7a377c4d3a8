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

import errno
import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tem_rf.core.errors import InputError
from tem_rf.core.units import pixel_size_or_none
from tem_rf.data.signals import (  # noqa: F401  (unit_to_nm: part of this module's API)
    SECONDS_PER, Signal, choose_signal, image_of, is_time, layout_of, normalise_unit, unit_to_nm,
)
from tem_rf.data.tiff_files import read_pillow, read_tiff
from tem_rf.data.vendor_files import FORMATS_INSTALL_HINT, quiet_rosettasciio, read_vendor_file  # noqa: F401
# (FORMATS_INSTALL_HINT: part of this module's API)

logger = logging.getLogger(__name__)


TIFF_SUFFIXES = (".tif", ".tiff")


PILLOW_SUFFIXES = (".png",)


ROSETTASCIIO_SUFFIXES = (".dm3", ".dm4", ".emd", ".mrc")


MICROGRAPH_SUFFIXES = TIFF_SUFFIXES + PILLOW_SUFFIXES + ROSETTASCIIO_SUFFIXES


MASK_SUFFIXES = TIFF_SUFFIXES + PILLOW_SUFFIXES


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
    chosen, title = choose_signal(signals, path, frame=frame, signal=signal)
    return _micrograph_of(chosen, title, path, frame)


def _micrograph_of(chosen: Signal, title: str | None, path: Path, frame: int | None) -> Micrograph:
    """`read_micrograph`'s micrograph from the signal it chose."""
    image = image_of(chosen, path, frame=frame, what="micrograph")
    array = image.array
    if not isinstance(array, np.ndarray):  # a frame of a lazily read stack (dask): read it alone
        with quiet_rosettasciio():
            array = np.asarray(array)
    grey = _to_grey(array, image.has_channels, image.colour, path)
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


class MovieFile:
    """The frames of a stack or series (or of a single image: one frame), from a file whose
    signals are read once, lazily: each `frame` reads that frame's pixels only, where
    `read_micrograph(path, frame=i)` would parse the whole file again per frame (a DM or Velox
    file's tags, an MRC header). ``count`` and ``interval_s`` are `frame_count`'s and
    `frame_interval_s`'."""

    def __init__(self, path: str | os.PathLike, *, signal: str | None = None) -> None:
        self.path = Path(path)
        signals = _read_signals(self.path, "micrograph", MICROGRAPH_SUFFIXES, calibrate=True, lazy=True)
        self._chosen, self._title = choose_signal(signals, self.path, frame=0, signal=signal)
        self.count, self.interval_s = _frames_and_interval_of(self._chosen, self.path)
        if self.count == 1:  # a single image: the signal read_micrograph would choose
            self._chosen, self._title = choose_signal(signals, self.path, frame=None, signal=signal)

    def frame(self, index: int | None) -> Micrograph:
        """Frame ``index`` (None for a single image) as `read_micrograph` reads it."""
        return _micrograph_of(self._chosen, self._title, self.path, None if self.count == 1 else index)


def frame_count(path: str | os.PathLike, *, signal: str | None = None) -> int:
    """How many frames the micrograph file holds: a stack's or time series' frames, 1 for a
    single image. Raises `InputError` like `read_micrograph` for what is not micrographs."""
    return _frames_and_interval(Path(path), signal)[0]


def frame_interval_s(path: str | os.PathLike, *, signal: str | None = None) -> float | None:
    """Seconds between frames as the file records them (a time axis with a scale in time units:
    DigitalMicrograph and Velox series, ImageJ's ``finterval``), else None."""
    return _frames_and_interval(Path(path), signal)[1]


def _frames_and_interval(path: Path, signal: str | None) -> tuple[int, float | None]:
    signals = _read_signals(path, "micrograph", MICROGRAPH_SUFFIXES, calibrate=False, lazy=True)
    chosen, _ = choose_signal(signals, path, frame=0, signal=signal)
    return _frames_and_interval_of(chosen, path)


def _frames_and_interval_of(chosen: Signal, path: Path) -> tuple[int, float | None]:
    layout = layout_of(chosen)
    if layout.kind == "image":
        return 1, None
    image_of(chosen, path, frame=0, what="micrograph")  # refuses what is not a stack of images
    interval = None
    for index in layout.frame_axes:
        axis = chosen.axes[index]
        factor = SECONDS_PER.get((normalise_unit(axis.units) or "").lower())
        if is_time(axis) and factor and axis.scale and axis.scale > 0:
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
    image = image_of(signal, path, frame=None, what="mask")
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


def _read_signals(path: Path, what: str, supported: tuple[str, ...], *, calibrate: bool,
                  lazy: bool = False) -> list[Signal]:
    """Every signal of a file of a supported type; `InputError` naming ``what`` (micrograph,
    mask) for any other type. ``calibrate`` also asks rosettasciio for a TIFF's pixel size when
    tifffile finds none (micrographs; masks need no pixel size). ``lazy``: DM/EMD signals as
    rosettasciio's dask arrays and MRC data memory-mapped, so that one frame of a stack is read
    without the others (TIFF stacks are always read so)."""
    _check_is_file(path)
    suffix = path.suffix.lower()
    if suffix in supported and suffix in TIFF_SUFFIXES:
        return [read_tiff(path, calibrate=calibrate)]
    if suffix in supported and suffix in PILLOW_SUFFIXES:
        return [read_pillow(path)]
    if suffix in supported and suffix in ROSETTASCIIO_SUFFIXES:
        return read_vendor_file(path, lazy=lazy)
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
