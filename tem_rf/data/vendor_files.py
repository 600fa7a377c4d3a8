"""Microscope vendors' files: DM3/DM4 (Gatan DigitalMicrograph) and EMD (Velox, Berkeley) through
rosettasciio, MRC through mrcfile (or rosettasciio), installed with the ``formats`` extra
(``pip install "tem_rf[formats]"``). Read lazily, a stack's frames come from disk one at a time.
"""

from __future__ import annotations

import contextlib
import importlib
import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from tem_rf.core.errors import InputError
from tem_rf.core.quiet import quiet_logger
from tem_rf.data.signals import Axis, Signal, unit_text

FORMATS_INSTALL_HINT = 'pip install "tem_rf[formats]"'


_ROSETTASCIIO_MODULES = {
    ".dm3": "rsciio.digitalmicrograph",
    ".dm4": "rsciio.digitalmicrograph",
    ".emd": "rsciio.emd",
    ".mrc": "rsciio.mrc",
}


def read_vendor_file(path: Path, *, lazy: bool = False) -> list[Signal]:
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
        with quiet_rosettasciio():
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


def quiet_rosettasciio() -> contextlib.AbstractContextManager[None]:
    """Silences rosettasciio's own warnings and log lines about metadata it cannot map (they are
    about its metadata tree, not the pixels or the calibration this module reads)."""
    return quiet_logger("rsciio", python_warnings=True)


def _signal_from_rosettasciio(entry: dict[str, Any], path: Path) -> Signal:
    """One of rosettasciio's signal dicts (data, axes, metadata) as a `Signal` (its data left
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
        axes = tuple(axis_from_rosettasciio(axis, size) for axis, size in zip(raw_axes, data.shape))
    else:  # never seen; fall back to "the last two axes are the image"
        axes = tuple(
            Axis(f"axis {i}", size, navigate=i < ndim - 2) for i, size in enumerate(data.shape[:ndim])
        )
    title_text = str(title) if title not in (None, "") else None
    return Signal(data, axes, title_text, signal_type, has_channels=has_channels, colour=colour)


def axis_from_rosettasciio(axis: dict[str, Any], size: int) -> Axis:
    units = unit_text(axis.get("units"))
    try:
        scale = float(axis.get("scale"))
    except (TypeError, ValueError):
        scale = None
    if scale is not None and math.isfinite(scale):
        scale = float(f"{scale:.7g}")  # scales are often float32: 7 digits drop the noise
    return Axis(
        name=str(axis.get("name") or ""),
        size=int(axis.get("size") or size),
        navigate=bool(axis.get("navigate", False)),
        units=units,
        scale=scale,
    )


def _read_mrc(path: Path, mrcfile, *, lazy: bool = False) -> Signal:
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
    axes = tuple(Axis(name, size, navigate=True) for name, size in zip(nav_names, data.shape)) + tuple(
        Axis(name, size, navigate=False, units=units, scale=scale)
        for name, size in zip("yx", data.shape[-2:])
    )
    if len(axes) != data.ndim:
        raise InputError(path, f"holds {data.ndim}-D data of shape {data.shape}, not a 2-D image")
    return Signal(data, axes)
