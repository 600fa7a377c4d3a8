"""Reading micrographs and label masks as users have them.

`read_micrograph` returns the image as a 2-D float array at full precision (16-bit camera data is
never squeezed into 8 bits) with the pixel size from the file's metadata when it has one.
`read_mask` returns a binary uint8 mask (0 background, 1 particle) from binary, 0/255 or
instance-id label images. Any problem with a file raises `InputError`, whose message names the file.

TIFF and PNG are read with tifffile and Pillow. DM3/DM4 (Gatan), EMD (Velox, Berkeley) and MRC
are read by rosettasciio / mrcfile, installed with the ``formats`` extra:
``pip install "tem_rf[formats]"``.
"""

from __future__ import annotations

import logging
import math
import os
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tem_rf.core.units import pixel_size_or_none

logger = logging.getLogger(__name__)

TIFF_SUFFIXES = (".tif", ".tiff")
PILLOW_SUFFIXES = (".png",)
ROSETTASCIIO_SUFFIXES = (".dm3", ".dm4", ".emd", ".mrc")
MICROGRAPH_SUFFIXES = TIFF_SUFFIXES + PILLOW_SUFFIXES + ROSETTASCIIO_SUFFIXES
MASK_SUFFIXES = TIFF_SUFFIXES + PILLOW_SUFFIXES

FORMATS_INSTALL_HINT = 'pip install "tem_rf[formats]"'

# Length units met in TIFF/ImageJ/OME/rosettasciio metadata, in nanometres.
_UNIT_IN_NM = {
    "pm": 1e-3,
    "a": 0.1,
    "å": 0.1,
    "\u212b": 0.1,  # ANGSTROM SIGN
    "angstrom": 0.1,
    "angstroms": 0.1,
    "nm": 1.0,
    "nanometer": 1.0,
    "nanometre": 1.0,
    "nanometers": 1.0,
    "nanometres": 1.0,
    "um": 1e3,
    "µm": 1e3,  # MICRO SIGN
    "μm": 1e3,  # GREEK SMALL LETTER MU
    "\\u00b5m": 1e3,  # ImageJ writes the escape literally
    "micron": 1e3,
    "microns": 1e3,
    "micrometer": 1e3,
    "micrometre": 1e3,
    "mm": 1e6,
    "cm": 1e7,
    "m": 1e9,
}

# Instance-id masks are piecewise constant: two touching particles are the only place where two
# neighbouring non-zero pixels differ. A greyscale photo differs almost everywhere.
_MAX_INSTANCE_EDGE_FRACTION = 0.1


class InputError(ValueError):
    """Bad input data. The message always names the file (or folder) and what is wrong with it."""

    def __init__(self, path: str | os.PathLike | None, problem: str):
        self.path = None if path is None else Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}" if path is not None else problem)


@dataclass(frozen=True)
class Micrograph:
    """A grey micrograph: ``data`` is 2-D float (float32 for <=16-bit data, else float64)."""

    data: np.ndarray
    pixel_size_nm: float | None
    path: Path

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.data.shape)  # type: ignore[return-value]


def unit_to_nm(unit: str | None) -> float | None:
    """Nanometres per ``unit`` (e.g. ``"µm"`` -> 1000), or None for unknown/empty units."""
    if unit is None:
        return None
    key = str(unit).strip().lower()
    return _UNIT_IN_NM.get(key)


def read_micrograph(path: str | os.PathLike) -> Micrograph:
    """Reads one micrograph (TIFF, PNG, DM3/DM4/EMD/MRC) as a 2-D float image.

    RGB files holding grey content are reduced to one channel (a note is logged); real colour
    images are converted with luminance weights and a warning. Raises `InputError` for missing,
    unreadable, truncated or non-2-D files and for NaN/inf pixels.
    """
    path = Path(path)
    raw, axes, pixel_size_nm = _read_raw(path, "micrograph", MICROGRAPH_SUFFIXES)
    grey = _to_grey(raw, axes, path)
    data = _to_float(grey, path)
    bad = ~np.isfinite(data)
    if bad.any():
        raise InputError(
            path, f"contains {int(bad.sum())} NaN or infinite pixel(s); fix or mask them first"
        )
    if min(data.shape) < 2:
        raise InputError(path, f"image is {data.shape[0]}x{data.shape[1]} pixels, too small")
    # One rule for every format: a zero, negative or NaN size in the metadata means unknown.
    return Micrograph(data=data, pixel_size_nm=pixel_size_or_none(pixel_size_nm), path=path)


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
    path = Path(path)
    raw, axes, _ = _read_raw(path, "mask", MASK_SUFFIXES)
    values = _mask_to_single_channel(raw, axes, path)
    return binarise_mask(values, path)


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
# Readers


def _read_raw(
    path: Path, what: str, supported: tuple[str, ...]
) -> tuple[np.ndarray, str | None, float | None]:
    """``(pixels as stored, TIFF axes or None, pixel size nm or None)`` of a file of a supported
    type; `InputError` naming ``what`` (micrograph, mask) for any other type."""
    _check_is_file(path)
    suffix = path.suffix.lower()
    if suffix in supported and suffix in TIFF_SUFFIXES:
        return _read_tiff(path)
    if suffix in supported and suffix in PILLOW_SUFFIXES:
        return _read_pillow(path), None, None
    if suffix in supported and suffix in ROSETTASCIIO_SUFFIXES:
        raw, pixel_size_nm = _read_with_formats_extra(path)
        return raw, None, pixel_size_nm
    raise InputError(
        path, f"unsupported {what} file type {path.suffix!r} (supported: {', '.join(supported)})"
    )


def _check_is_file(path: Path) -> None:
    if not path.exists():
        raise InputError(path, "file does not exist")
    if path.is_dir():
        raise InputError(path, "is a folder, expected a file")
    if path.stat().st_size == 0:
        raise InputError(path, "file is empty (0 bytes)")


def _read_tiff(path: Path) -> tuple[np.ndarray, str, float | None]:
    """Returns the first image series, its tifffile axes string, and the pixel size in nm."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            if not tif.series:
                raise InputError(path, "TIFF file holds no image")
            series = tif.series[0]
            data = series.asarray()
            axes = series.axes
            pixel_size_nm = _tiff_pixel_size_nm(tif, path)
            if pixel_size_nm is not None:
                # Rational resolution tags carry rounding noise (0.02151999999976 for 0.02152).
                pixel_size_nm = float(f"{pixel_size_nm:.9g}")
    except InputError:
        raise
    except Exception as error:  # tifffile raises many types for corrupt files; report them all
        raise InputError(path, f"cannot be read as TIFF (corrupt or truncated?): {error}") from None
    return data, axes, pixel_size_nm


def _tiff_pixel_size_nm(tif, path: Path) -> float | None:
    """Pixel size from FEI, OME, ImageJ or centimetre resolution tags; None when none is present.

    Inch-based resolution tags are ignored: image editors write 72/96/300 dpi as a print size,
    not a physical calibration.
    """
    page = tif.pages[0]
    try:
        fei = tif.fei_metadata
        if fei:
            width_m = float(fei.get("Scan", {}).get("PixelWidth", 0) or 0)
            if width_m > 0:
                return width_m * 1e9
        if tif.is_ome and tif.ome_metadata:
            size = _ome_pixel_size_nm(tif.ome_metadata)
            if size is not None:
                return size
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
            nm_per_unit = unit_to_nm(tif.imagej_metadata["unit"])
            if nm_per_unit is None:
                return None
            return units_per_pixel * nm_per_unit
        unit_tag = page.tags.get("ResolutionUnit")
        if unit_tag is not None and int(unit_tag.value) == 3:  # centimetre
            return units_per_pixel * 1e7
    except (AttributeError, KeyError, TypeError, ValueError) as error:
        logger.warning("%s: could not interpret pixel size metadata (%s)", path, error)
    return None


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


def _read_pillow(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
            # Palette ("P") images give their indices, which are the label ids in label masks.
            return np.asarray(image)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise InputError(path, f"cannot be read as an image (corrupt or truncated?): {error}") from None


def _read_with_formats_extra(path: Path) -> tuple[np.ndarray, float | None]:
    """DM3/DM4/EMD via rosettasciio, MRC via mrcfile (or rosettasciio)."""
    suffix = path.suffix.lower()
    if suffix == ".mrc":
        try:
            import mrcfile
        except ImportError:
            mrcfile = None
        if mrcfile is not None:
            return _read_mrc(path, mrcfile)
    module_name = {
        ".dm3": "rsciio.digitalmicrograph",
        ".dm4": "rsciio.digitalmicrograph",
        ".emd": "rsciio.emd",
        ".mrc": "rsciio.mrc",
    }[suffix]
    try:
        import importlib

        reader = importlib.import_module(module_name)
    except ImportError:
        raise InputError(
            path,
            f"reading {suffix} files needs the optional readers (rosettasciio, mrcfile): "
            f"{FORMATS_INSTALL_HINT}",
        ) from None
    try:
        signals = reader.file_reader(str(path))
    except Exception as error:  # third-party reader; report whatever it raises, naming the file
        raise InputError(path, f"cannot be read as {suffix} (corrupt or truncated?): {error}") from None
    for signal in signals:
        data = np.asarray(signal["data"])
        if data.ndim == 2 or (data.ndim == 3 and data.shape[-1] in (3, 4)):
            return data, _axes_pixel_size_nm(signal.get("axes", []), path)
    shapes = ", ".join(str(np.shape(s["data"])) for s in signals) or "nothing"
    raise InputError(path, f"holds no single 2-D image (found data of shape {shapes})")


def _axes_pixel_size_nm(axes: list[dict], path: Path) -> float | None:
    spatial = [axis for axis in axes if not axis.get("navigate", False)]
    if not spatial:
        return None
    x_axis = spatial[-1]
    nm_per_unit = unit_to_nm(x_axis.get("units"))
    scale = float(x_axis.get("scale", 0) or 0)
    if nm_per_unit is None or scale <= 0:
        if x_axis.get("units") not in (None, "", "<undefined>"):
            logger.warning(
                "%s: pixel axis is in %r, not a length; pixel size unknown", path, x_axis.get("units")
            )
        return None
    return float(f"{scale * nm_per_unit:.7g}")


def _read_mrc(path: Path, mrcfile) -> tuple[np.ndarray, float | None]:
    try:
        with mrcfile.open(path, permissive=False, mode="r") as mrc:
            data = np.array(mrc.data)
            voxel_x = float(mrc.voxel_size.x)
    except Exception as error:  # mrcfile raises ValueError and others for bad headers/data
        raise InputError(path, f"cannot be read as MRC (corrupt or truncated?): {error}") from None
    if data.ndim == 3 and data.shape[0] == 1:
        data = data[0]
    # MRC voxel size is float32 Angstrom (0 = not set); 7 digits drop the float32 noise.
    return data, (float(f"{voxel_x * 0.1:.7g}") if voxel_x > 0 else None)


# --------------------------------------------------------------------------------------------
# Shapes, channels and data types


def _channel_layout(raw: np.ndarray, axes: str | None, path: Path) -> tuple[np.ndarray, bool]:
    """Returns the array with any colour channels last, and whether it has channels."""
    if raw.ndim == 2:
        return raw, False
    squeezed = raw
    if axes is not None and len(axes) == raw.ndim:
        # Drop singleton non-spatial axes (e.g. a 1-frame stack) reported by tifffile.
        keep = [i for i, axis in enumerate(axes) if raw.shape[i] != 1 or axis in "YX"]
        squeezed = raw.reshape([raw.shape[i] for i in keep])
        axes = "".join(axes[i] for i in keep)
        if squeezed.ndim == 2:
            return squeezed, False
        if squeezed.ndim == 3 and "S" in axes:
            return np.moveaxis(squeezed, axes.index("S"), -1), True
    else:
        squeezed = np.squeeze(raw) if raw.ndim > 2 else raw
        if squeezed.ndim == 2:
            return squeezed, False
        if squeezed.ndim == 3 and squeezed.shape[-1] in (2, 3, 4):  # grey+alpha, RGB, RGBA
            return squeezed, True
    raise InputError(
        path,
        f"holds data of shape {raw.shape}" + (f" (axes {axes})" if axes else "")
        + ", expected a single 2-D grey (or RGB) image; save one frame per file",
    )


def _to_grey(raw: np.ndarray, axes: str | None, path: Path) -> np.ndarray:
    array, has_channels = _channel_layout(np.asarray(raw), axes, path)
    if not has_channels:
        return array
    if array.shape[-1] == 2:  # grey + alpha: the alpha channel carries no intensity
        return array[..., 0]
    colour = array[..., :3]
    if colour.shape[-1] == 1 or all(
        np.array_equal(colour[..., 0], colour[..., c]) for c in range(1, colour.shape[-1])
    ):
        logger.info("%s: saved as RGB with identical channels; using one channel as grey", path)
        return colour[..., 0]
    logger.warning(
        "%s: RGB channels differ (a false-colour or annotated image?); converted to grey with "
        "luminance weights 0.2125 R + 0.7154 G + 0.0721 B; check this is the raw micrograph",
        path,
    )
    weights = np.array([0.2125, 0.7154, 0.0721])
    return colour.astype(np.float64) @ weights


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


def _mask_to_single_channel(raw: np.ndarray, axes: str | None, path: Path) -> np.ndarray:
    array, has_channels = _channel_layout(np.asarray(raw), axes, path)
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

