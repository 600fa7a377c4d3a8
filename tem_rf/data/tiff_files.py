"""TIFF and PNG micrographs and masks: tifffile's first image series with its axes and the pixel
size from ImageJ, OME, resolution tags or (for vendor TIFFs) rosettasciio; Pillow for PNG. A TIFF
stack is read frame by frame: memory-mapped when stored uncompressed, page by page (dask) when
compressed.
"""

from __future__ import annotations

import logging
import math
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

import numpy as np

from tem_rf.core.errors import InputError
from tem_rf.data.signals import Axis, Signal, decode_unit_escapes, unit_kind, unit_to_nm
from tem_rf.data.vendor_files import axis_from_rosettasciio, quiet_rosettasciio

logger = logging.getLogger("tem_rf.data.reading")  # one logger for everything reading says

# tifffile's axes codes (TiffPageSeries.axes) other than Y, X and S (colour samples).
_TIFF_AXIS_NAMES = {"T": "time", "Z": "z", "C": "channel", "I": "frame", "Q": "frame"}


def read_tiff(path: Path, *, calibrate: bool) -> Signal:
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
        Axis("yx"["YX".index(code)] if code in "YX" else _TIFF_AXIS_NAMES.get(code, "frame"),
              size, navigate=code not in "YX",
              units=units if code in "YX" else "s" if code == "T" and timed else None,
              scale=scale if code in "YX" else float(interval) if code == "T" and timed else None)
        for code, size in zip(codes, data.shape)
    )
    # YCbCr is decoded to RGB by tifffile; MINISBLACK with extra samples is grey plus alpha.
    colour = photometric in (int(tifffile.PHOTOMETRIC.RGB), int(tifffile.PHOTOMETRIC.YCBCR))
    return Signal(data, axes, has_channels=has_channels, colour=colour)


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
            if unit_kind(unit) in ("reciprocal", "angle"):  # an FFT or diffraction pattern
                return units_per_pixel, decode_unit_escapes(str(unit))
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
        with quiet_rosettasciio():
            signals = file_reader(str(path))
    except Exception as error:  # a calibration is a bonus; tifffile already read the pixels
        logger.debug("%s: rosettasciio's TIFF reader failed: %r", path, error)
        return None
    if not signals:
        return None
    image_axes = [axis for axis in signals[0].get("axes", []) if not axis.get("navigate", False)]
    if len(image_axes) < 2:
        return None
    x_axis = axis_from_rosettasciio(image_axes[-1], 0)
    if unit_kind(x_axis.units) == "undefined" or not (x_axis.scale or 0) > 0:
        return None
    return x_axis.scale, x_axis.units  # type: ignore[return-value]


def read_pillow(path: Path) -> Signal:
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
    axes = tuple(Axis(name, size, navigate=False) for name, size in zip("yx", data.shape))
    return Signal(data, axes, has_channels=has_channels, colour=mode.startswith("RGB"))
