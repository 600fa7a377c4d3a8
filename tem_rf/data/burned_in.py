"""What a micrograph file holds besides the sample: the info bar microscope software appends, and
regions a user marks (scale bars, panel letters, text burned into a figure).

Pixels there are no particles, yet a network sees bright text and bars as particles. `segment` and
`measure` leave them out (`exclusion_mask`): the particle mask is 0 there, and a particle that
reaches into a left-out region is cut by it as by the field of view's edge, so it is listed with
``touches_edge`` and kept out of the size statistics. An info bar is cut off before the network
sees the micrograph: a black or white strip would otherwise shift the standardisation (mean 0,
std 1) that every pixel of the sample goes through.

**Info bar** (`detect_info_bar`, ``--info_bar=auto``). SEM and TEM software append a full-width
strip to the bottom (sometimes the top) of an exported image: a flat background with text, a
ruler or a logo. It is found by its two traits that sample content lacks together: a straight,
full-width edge (at least `EDGE_FRACTION` of the columns change by more than the tolerance
between two neighbouring rows, where the tolerance is `TOLERANCE_FRACTION` of the image's
0.5-99.5 % intensity range), and a strip beyond it at most `MAX_BAR_FRACTION` of the image
high whose pixels are mostly (`FLAT_FRACTION`) within the tolerance of the strip's median, with
the row next to the edge almost entirely so. The rule is conservative: a bar whose edge melts
into dark sample content is missed (leave it out with ``--exclude_regions``) rather than sample
content ever taken for a bar. On EMPS's 465 literature micrographs it finds 38 strips: 30 bars
of 20-78 rows, each a true info bar by eye, and 8 frame lines of 2-3 rows; EMPS's instance masks
hold 15 particle pixels in all 38 (annotation spilling over the bar's edge), and one SEM bar whose
edge meets dark sample content is missed. Cost: about 0.1 s on a 4096x4096 micrograph (rows are
screened on a sample of columns and the intensity range taken from ~1e6 pixels; a strip's median
is taken only behind a row that passes).

**Regions** (`parse_regions`, ``--exclude_regions``): rectangles in pixels as NumPy slices,
``ROWS,COLS`` separated by ``;``, negative numbers counting from the far edge: ``-60:,:`` is the
bottom 60 rows, ``0:40,0:60`` the top-left corner where a panel letter sits. Every micrograph of
a run gets the same regions (a microscope puts its overlay in the same place).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from tem_rf.core.errors import InputError

INFO_BAR_MODES = ("auto", "keep")
TOLERANCE_FRACTION = 0.06
EDGE_FRACTION = 0.8
FLAT_FRACTION = 0.5
EDGE_ROW_FLAT_FRACTION = 0.9
MAX_BAR_FRACTION = 0.25
MIN_BAR_ROWS = 2
PERCENTILE_SAMPLE = 1_000_000
ROW_SAMPLE = 1024  # columns the per-row screening looks at


@dataclasses.dataclass(frozen=True)
class InfoBar:
    """Rows of an info bar at the top and at the bottom of a micrograph (0: none)."""

    top: int = 0
    bottom: int = 0

    def __bool__(self) -> bool:
        return bool(self.top or self.bottom)


def _bar_rows(rows: np.ndarray, tolerance: float, height: int | None = None) -> int:
    """How many rows from the start of ``rows`` form a bar (0: none); see the module docstring.
    ``height``: the image's, when ``rows`` holds only its first rows (at least the
    `MAX_BAR_FRACTION` a bar may take)."""
    limit = int((len(rows) if height is None else height) * MAX_BAR_FRACTION)
    if limit <= MIN_BAR_ROWS:
        return 0
    head = rows[:limit, :: max(1, rows.shape[1] // ROW_SAMPLE)]  # a bar spans the width: a sample of columns
    # Cheap per-row tests first, so a noisy micrograph (whose rows all differ by more than the
    # tolerance: every row an "edge") costs one pass, not a strip median per row. A bar's row at
    # the edge is nearly all within the tolerance of the strip's value, so within twice it of its
    # own median.
    near_own_median = np.mean(np.abs(head - np.median(head, axis=1)[:, None]) <= 2 * tolerance, axis=1)
    steps = np.mean(np.abs(np.diff(head, axis=0)) > tolerance, axis=1)  # steps[i]: rows i and i + 1
    found = 0
    for edge in range(MIN_BAR_ROWS, limit):
        if steps[edge - 1] < EDGE_FRACTION or near_own_median[edge - 1] < EDGE_ROW_FLAT_FRACTION:
            continue
        strip = rows[:edge]
        value = np.median(strip)
        if (np.mean(np.abs(strip - value) <= tolerance) >= FLAT_FRACTION
                and np.mean(np.abs(rows[edge - 1] - value) <= tolerance) >= EDGE_ROW_FLAT_FRACTION):
            found = edge  # the farthest edge that qualifies: a bar may hold inner lines
    return found


def detect_info_bar(image: np.ndarray) -> InfoBar:
    """The info bar rows at the top and bottom of a 2-D micrograph (module docstring)."""
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"expected a 2-D image, got shape {image.shape}")
    stride = max(1, int(math.sqrt(image.size / PERCENTILE_SAMPLE)))  # the range from ~1e6 pixels is the same
    sample = image[::stride, ::stride].astype(np.float64)
    finite = sample[np.isfinite(sample)]
    if finite.size == 0:
        return InfoBar()
    low, high = np.percentile(finite, [0.5, 99.5])
    if high <= low:
        return InfoBar()
    tolerance = TOLERANCE_FRACTION * (high - low)
    # Only the rows a bar may take are read, in float64 (not a float64 copy of the whole image).
    height, reach = image.shape[0], int(image.shape[0] * MAX_BAR_FRACTION) + 1
    top = _bar_rows(image[:reach].astype(np.float64), tolerance, height)
    bottom = _bar_rows(image[::-1][:reach].astype(np.float64), tolerance, height)
    return InfoBar(top=top, bottom=bottom)


Region = tuple[slice, slice]


def _bound(text: str, region: str) -> int | None:
    text = text.strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise InputError(None, f"--exclude_regions: {text!r} in {region!r} is not a whole number of pixels") from None


def parse_regions(text: str | Sequence[str] | None) -> tuple[Region, ...]:
    """``"ROWS,COLS;ROWS,COLS"`` (NumPy slices in pixels, e.g. ``-60:,:``) as slice pairs;
    `InputError` naming the region that is not one."""
    if not text:
        return ()
    parts = text.split(";") if isinstance(text, str) else list(text)
    regions = []
    for part in (p.strip() for p in parts):
        if not part:
            continue
        axes = part.split(",")
        if len(axes) != 2 or any(axis.count(":") != 1 for axis in axes):
            raise InputError(None, f"--exclude_regions: {part!r} is not ROWS,COLS with a start:stop range each "
                                   "(e.g. -60:,: for the bottom 60 rows)")
        rows, cols = (slice(*(_bound(bound, part) for bound in axis.split(":"))) for axis in axes)
        regions.append((rows, cols))
    return tuple(regions)


def format_regions(regions: Sequence[Region]) -> str:
    """`parse_regions`' input for ``regions``."""
    def axis(s: slice) -> str:
        return f"{'' if s.start is None else s.start}:{'' if s.stop is None else s.stop}"

    return ";".join(f"{axis(rows)},{axis(cols)}" for rows, cols in regions)


def exclusion_mask(
    shape: tuple[int, int], *, info_bar: InfoBar | None = None, regions: Sequence[Region] = ()
) -> np.ndarray | None:
    """The pixels left out of a micrograph of ``shape`` (bool), or None when there are none."""
    excluded = np.zeros(shape, dtype=bool)
    if info_bar:
        excluded[: info_bar.top] = True
        if info_bar.bottom:
            excluded[shape[0] - info_bar.bottom:] = True
    for rows, cols in regions:
        excluded[rows, cols] = True
    return excluded if excluded.any() else None


def check_info_bar_mode(mode: str) -> str:
    if mode not in INFO_BAR_MODES:
        raise InputError(None, f"--info_bar must be one of {', '.join(INFO_BAR_MODES)}, got {mode!r}")
    return mode


def find_info_bar(image: np.ndarray, mode: str = "auto") -> InfoBar:
    """`detect_info_bar` with ``mode`` ``"auto"``; no bar with ``"keep"``."""
    return detect_info_bar(image) if check_info_bar_mode(mode) == "auto" else InfoBar()


def exclusion_record(info_bar: InfoBar, regions: Sequence[Region], excluded: np.ndarray | None) -> dict:
    """What was left out of a micrograph, for the outputs' records: the info bar rows, the
    regions as given, and how many pixels in all."""
    return {
        "info_bar_rows": {"top": info_bar.top, "bottom": info_bar.bottom},
        "regions": format_regions(regions) or None,
        "pixels": 0 if excluded is None else int(excluded.sum()),
    }


__all__ = [
    "INFO_BAR_MODES", "InfoBar", "Region", "check_info_bar_mode", "detect_info_bar", "exclusion_mask",
    "exclusion_record", "find_info_bar", "format_regions", "parse_regions",
]
