"""What a micrograph file holds, as its reader describes it: signals with their axes (names,
units, scales, whether an axis runs over images or within one), and from them the one real-space
2-D image, or what the signal is instead (a stack, a time series, a spectrum image, a diffraction
pattern), named in words.

The readers (`tem_rf.data.tiff_files`, `tem_rf.data.vendor_files`) describe every file this way;
`tem_rf.data.reading` chooses the signal and takes its image. The axes' ``navigate`` flags and
units, never the length of an axis, decide what a signal is.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tem_rf.core.errors import InputError

logger = logging.getLogger("tem_rf.data.reading")  # one logger for everything reading says

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


SECONDS_PER = {"s": 1.0, "sec": 1.0, "second": 1.0, "seconds": 1.0, "ms": 1e-3, "µs": 1e-6, "μs": 1e-6,
                "us": 1e-6, "ns": 1e-9, "min": 60.0, "h": 3600.0}


def unit_to_nm(unit: str | bytes | None) -> float | None:
    """Nanometres per ``unit`` (e.g. ``"µm"`` -> 1000), or None for unknown/empty units.

    ImageJ's escaped form of non-ASCII units (``\\u00C5`` for Å, ``\\u00B5m`` for µm) is understood.
    """
    key = normalise_unit(unit)
    return None if key is None else _UNIT_IN_NM.get(key)


@dataclass(frozen=True)
class Axis:
    """One array axis as the file's reader describes it (rosettasciio's axis dict, or tifffile)."""

    name: str
    size: int
    navigate: bool  # True: an axis *over* images or spectra (frames, time, scan), not within one
    units: str | None = None
    scale: float | None = None


@dataclass(frozen=True)
class Signal:
    """One data set of a file: ``axes`` has one entry per array axis except a trailing colour
    axis (``has_channels``); ``colour`` says those channels are R, G, B(, A) rather than grey plus
    extra samples such as alpha."""

    data: np.ndarray
    axes: tuple[Axis, ...]
    title: str | None = None
    signal_type: str = ""
    has_channels: bool = False
    colour: bool = False


@dataclass(frozen=True)
class Layout:
    """What a signal is, in words, and where its image axes are."""

    kind: str  # "image", "stack", "spectrum image", "diffraction" or "other"
    phrase: str  # e.g. "a stack of 3 frames of 2x16 px"
    spatial: tuple[int, ...] = ()  # array axes of the image (y, x) for images and stacks
    frame_axes: tuple[int, ...] = ()  # array axes over frames, for stacks
    frames: int = 1


@dataclass(frozen=True)
class ImagePlane:
    array: np.ndarray  # 2-D, or 2-D plus a trailing channel axis
    has_channels: bool
    colour: bool
    pixel_size_nm: float | None


def choose_signal(
    signals: list[Signal], path: Path, *, frame: int | None, signal: str | None
) -> tuple[Signal, str | None]:
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
    candidates = [s for s in signals if layout_of(s).kind == wanted]
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


def _signal_name(signal: Signal, signals: list[Signal]) -> str:
    if signal.title is not None:
        return repr(signal.title)
    return f"signal {next(i for i, s in enumerate(signals) if s is signal) + 1} (untitled)"


def _signal_list(signals: list[Signal]) -> str:
    return ", ".join(f"{_signal_name(s, signals)} ({layout_of(s).phrase})" for s in signals)


def layout_of(signal: Signal) -> Layout:
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
        planes = [i for i in image_axes if not is_spectral(axes[i], signal.signal_type)]
        keep = planes[-2:] if len(planes) >= 2 else image_axes[-2:]
        navigation = sorted(navigation + [i for i in image_axes if i not in keep])
        image_axes = keep
    spectral = [i for i in navigation if is_spectral(axes[i], signal.signal_type)]
    over = [i for i in navigation if i not in spectral]
    type_note = f" ({signal.signal_type})" if signal.signal_type else ""

    if len(image_axes) == 2:
        height, width = (axes[i].size for i in image_axes)
        size = f"{height}x{width} px"
        unit_kinds = {unit_kind(axes[i].units) for i in image_axes}
        units = " and ".join(dict.fromkeys(str(axes[i].units) for i in image_axes))
        if unit_kinds & {"reciprocal", "angle"}:
            count = math.prod(shape[i] for i in navigation)
            what = "a diffraction pattern" if count == 1 else f"{count} diffraction patterns"
            return Layout("diffraction", f"{what} of {size} in reciprocal space (axes in {units})")
        if unit_kinds & {"energy", "time"}:
            return Layout("other", f"a 2-D map of {size} with axes in {units}{type_note}")
        if spectral:
            channels = math.prod(shape[i] for i in spectral)
            extra = "".join(f" x {shape[i]}" for i in over)
            return Layout(
                "spectrum image",
                f"a spectrum image of {channels} channels x {height} x {width} px{extra}{type_note}",
            )
        if over:
            frames = math.prod(shape[i] for i in over)
            series = "a time series: " if any(is_time(axes[i]) for i in over) else ""
            return Layout(
                "stack", f"{series}a stack of {frames} frames of {size}",
                spatial=tuple(image_axes), frame_axes=tuple(over), frames=frames,
            )
        return Layout("image", f"a {size} image", spatial=tuple(image_axes))
    if len(image_axes) == 1:
        channels = shape[image_axes[0]] * math.prod(shape[i] for i in spectral)
        scan = [shape[i] for i in over]
        if len(scan) >= 2:
            return Layout(
                "spectrum image",
                f"a spectrum image of {channels} channels x {' x '.join(map(str, scan))} px{type_note}",
            )
        if len(scan) == 1:
            return Layout("other", f"a line scan of {scan[0]} spectra of {channels} channels{type_note}")
        axis = axes[image_axes[0]]
        if signal.signal_type or spectral or is_spectral(axis, signal.signal_type):
            return Layout("other", f"a spectrum of {channels} channels{type_note}")
        return Layout("other", f"a 1-D profile or plot of {channels} points")
    return Layout("other", f"{len(shape)}-D data of shape {tuple(shape)}")


def image_of(signal: Signal, path: Path, *, frame: int | None, what: str) -> ImagePlane:
    """The 2-D image of a signal (frame ``frame`` of a stack), or `InputError` saying what the
    signal is instead."""
    layout = layout_of(signal)
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
    array = stacked[frame or 0]  # of a lazily read stack, still lazy: `tem_rf.data.reading` reads it
    y_axis, x_axis = (signal.axes[i] for i in spatial)
    return ImagePlane(
        array=array,
        has_channels=signal.has_channels,
        colour=signal.colour,
        pixel_size_nm=pixel_size_nm_of(y_axis, x_axis, path),
    )


def pixel_size_nm_of(y_axis: Axis, x_axis: Axis, path: Path) -> float | None:
    """The x pixel size in nm from a length unit and a positive scale, else None."""
    nm_per_unit = unit_to_nm(x_axis.units)
    scale = x_axis.scale or 0.0
    if nm_per_unit is None or not scale > 0:
        if unit_kind(x_axis.units) not in ("undefined", "length"):
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


def decode_unit_escapes(text: str) -> str:
    """ImageJ's literal ``\\uXXXX`` escapes of non-ASCII unit characters, decoded ("\\u00C5" -> "Å")."""
    return _UNICODE_ESCAPE.sub(lambda m: chr(int(m[1], 16)), text)


def normalise_unit(unit: Any) -> str | None:
    """A unit as text, lower case, ImageJ's ``\\uXXXX`` escapes decoded (None for none)."""
    text = unit_text(unit)
    if text is None:
        return None
    return decode_unit_escapes(text).strip().lower()


def unit_text(unit: Any) -> str | None:
    """A unit as the file stores it, as text (DM's latin-1 bytes decoded), or None."""
    if unit is None:
        return None
    if isinstance(unit, bytes):  # DM TIFF tags hold latin-1 bytes
        unit = unit.decode("latin-1", errors="replace")
    return str(unit).strip("\0 ")  # traits' Undefined prints as "<undefined>"


def unit_kind(unit: Any) -> str:
    """"length", "reciprocal", "angle", "energy", "time", "undefined" or "other"."""
    key = normalise_unit(unit)
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


def is_time(axis: Axis) -> bool:
    return axis.name.strip().lower() in _TIME_AXIS_NAMES or unit_kind(axis.units) == "time"


def is_spectral(axis: Axis, signal_type: str) -> bool:
    """Whether a navigation axis runs over wavelengths/energies (a spectrum), not over frames."""
    name = axis.name.strip().lower()
    if any(word in name for word in _SPECTRAL_AXIS_WORDS):
        return True
    kind = unit_kind(axis.units)
    if kind in ("energy", "reciprocal"):
        return True
    spectral_type = signal_type.strip().lower().split("_")[0] in _SPECTRAL_SIGNAL_TYPES
    return (
        spectral_type
        and kind not in ("length", "time", "angle")
        and name not in ("x", "y", "z", "width", "height", "frame", "time")
    )
