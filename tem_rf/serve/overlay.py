"""The overlay PNG ``segment`` writes beside each mask: the micrograph, what was found, and a key.

The micrograph (contrast 0.5-99.5 percentile, block-averaged to at most `OVERLAY_MAX_SIZE` px)
carries the outlines (inner boundary pixels, drawn into the image: cost linear in pixels however
many particles there are): each counted particle in red (`OVERLAY_COLOUR`), particles touching
the image edge or a left-out region in cyan (`EDGE_COLOUR`: counted, but left out of the size
statistics), and mask regions that are not particles (below the minimum area, filled holes) in
amber (`MASK_OUTLINE_COLOUR`). Particle ids, the ``id`` column of ``<stem>_particles.csv`` and the
values of ``<stem>_labels.tif``, are written inside particles large enough to hold them. Below the
image a black strip holds a scale bar (nm, µm or px when the pixel size is unknown) and the
legend, so nothing on the micrograph is hidden. `write_overlay` returns what it drew
(`OverlayKey`), which ``segmentation.json`` records.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any

import numpy as np

OVERLAY_MAX_SIZE = 1024
OVERLAY_COLOUR = (255, 45, 45)  # particle outlines (instances when measuring, else the mask's)
EDGE_COLOUR = (0, 210, 255)  # particles cut by the image edge or a left-out region
MASK_OUTLINE_COLOUR = (255, 190, 0)  # mask regions not counted as particles (below the minimum area)
TEXT_COLOUR = (255, 255, 255)
KEY_BACKGROUND = (0, 0, 0)
SCALE_BAR_COLOUR = (255, 255, 255)
MAX_IDS = 400  # more ids than this are unreadable on a 1024 px overlay: labels.tif holds them all
SCALE_BAR_FRACTION = 0.2  # the bar's target length, of the shown width
_NICE = (1.0, 2.0, 5.0)


@dataclasses.dataclass(frozen=True)
class ScaleBar:
    """A scale bar: ``length_px`` pixels of the overlay stand for ``value`` ``unit``."""

    value: float
    unit: str
    length_px: int

    @property
    def label(self) -> str:
        return f"{self.value:g} {self.unit}"


@dataclasses.dataclass
class OverlayKey:
    """What an overlay shows beyond the micrograph: the block factor of the shown image, the
    scale bar, and the particle ids written (id -> shown row, col of the text's centre)."""

    factor: int
    scale_bar: ScaleBar | None
    ids: dict[int, tuple[int, int]]
    image_shape: tuple[int, int]  # the shown micrograph, above the key strip

    def record(self) -> dict[str, Any]:
        """JSON-clean, for ``segmentation.json``."""
        return {
            "block_factor": self.factor,
            "scale_bar": None if self.scale_bar is None else self.scale_bar.label,
            "scale_bar_px": None if self.scale_bar is None else self.scale_bar.length_px,
            "ids_shown": len(self.ids),
        }


def scale_bar(shown_width: int, pixel_size_nm: float | None, factor: int) -> ScaleBar | None:
    """A bar of a round length (1, 2 or 5 x 10^k nm, µm from 1000 nm, or px without a pixel size)
    near `SCALE_BAR_FRACTION` of ``shown_width``; None when not even one shown pixel fits."""
    per_shown_px = factor * (pixel_size_nm if pixel_size_nm else 1.0)  # nm (or px) per overlay pixel
    target = SCALE_BAR_FRACTION * shown_width * per_shown_px
    if target <= 0 or shown_width < 8:
        return None
    exponent = math.floor(math.log10(target))
    value = max(n * 10.0 ** exponent for n in _NICE if n * 10.0 ** exponent <= target)
    length = int(round(value / per_shown_px))
    if length < 1:
        return None
    unit = "nm" if pixel_size_nm else "px"
    shown_value = value
    if unit == "nm" and value >= 1000:
        unit, shown_value = "µm", value / 1000
    return ScaleBar(float(f"{shown_value:.6g}"), unit, length)


def blocks(image: np.ndarray, factor: int, combine: np.ufunc) -> np.ndarray:
    """``image`` reduced by ``factor`` in both axes, each block's pixels combined by ``combine``
    (edge blocks padded with 0). Strided views combined along the rows, then down the columns:
    several times faster than a reduction over a short reshaped axis."""
    height, width = image.shape
    rows, cols = -(-height // factor), -(-width // factor)
    if (rows * factor, cols * factor) != (height, width):
        padded = np.zeros((rows * factor, cols * factor), dtype=image.dtype)
        padded[:height, :width] = image
        image = padded
    columns = image[:, 0::factor].copy()
    for offset in range(1, factor):
        combine(columns, image[:, offset::factor], out=columns)
    blocks = columns[0::factor].copy()
    for offset in range(1, factor):
        combine(blocks, columns[offset::factor], out=blocks)
    return blocks


def block_max(image: np.ndarray, factor: int) -> np.ndarray:
    """``image`` reduced by ``factor`` in both axes, each block to its maximum (edge blocks padded
    with 0): a particle smaller than a block keeps a pixel."""
    return blocks(image, factor, np.maximum)


def overlay_background(
    image: np.ndarray, mask: np.ndarray, *, max_size: int = OVERLAY_MAX_SIZE
) -> tuple[np.ndarray, np.ndarray, int]:
    """The overlay's micrograph as RGB (contrast 0.5-99.5 percentile, block-averaged to at most
    ``max_size`` px) and the mask's outline (inner boundary pixels) at that scale, of the mask's
    block max: ``(rgb, outline, factor)``. It needs no particle, so ``segment`` draws it while
    the particles are found."""
    from skimage.segmentation import find_boundaries

    factor = max(1, math.ceil(max(image.shape) / max_size))
    shown = np.asarray(image, np.float32)
    shown_mask = np.asarray(mask) > 0
    if factor > 1:
        # Block means (edge blocks padded with 0, as skimage's downscale_local_mean).
        shown = blocks(shown, factor, np.add) / np.float32(factor * factor)
        # Block max: a particle smaller than a block still gets an outline.
        shown_mask = block_max(shown_mask, factor)
    low, high = np.percentile(shown, (0.5, 99.5))
    grey = np.clip((shown - low) / max(high - low, 1e-12) * 255, 0, 255).astype(np.uint8)
    return np.repeat(grey[:, :, None], 3, axis=2), find_boundaries(shown_mask, mode="inner"), factor


def load_font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow built without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _text_size(draw, text: str, font) -> tuple[int, int]:
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    return right - left, bottom - top


def _draw_ids(rgb: np.ndarray, labels: np.ndarray, font_size: int) -> dict[int, tuple[int, int]]:
    """Writes each particle's id at its box centre where the text fits inside the box (at most
    `MAX_IDS`, largest particles first); returns id -> (row, col) of each text centre."""
    from PIL import Image, ImageDraw
    from scipy import ndimage

    boxes = ndimage.find_objects(labels)
    candidates = [(ident, box) for ident, box in enumerate(boxes, start=1) if box is not None]
    candidates.sort(key=lambda item: -((item[1][0].stop - item[1][0].start) * (item[1][1].stop - item[1][1].start)))
    image = Image.fromarray(rgb)
    draw = ImageDraw.Draw(image)
    font = load_font(font_size)
    written: dict[int, tuple[int, int]] = {}
    for ident, (rows, cols) in candidates[:MAX_IDS]:
        width, height = _text_size(draw, str(ident), font)
        # inside the circle the box holds, so the text stays off the outline of a round particle
        if math.hypot(width, height) + 4 > min(rows.stop - rows.start, cols.stop - cols.start):
            continue
        row, col = (rows.start + rows.stop) // 2, (cols.start + cols.stop) // 2
        draw.text((col, row), str(ident), fill=TEXT_COLOUR, font=font, anchor="mm")
        written[ident] = (row, col)
    rgb[...] = np.asarray(image)
    return written


def key_strip(width: int, bar: ScaleBar | None, entries: list[tuple[tuple[int, int, int], str]],
               font_size: int) -> np.ndarray:
    """The black strip below the image: the scale bar, then a swatch and text per legend entry,
    laid out left to right and wrapped onto more lines when the image is narrow."""
    from PIL import Image, ImageDraw

    font = load_font(font_size)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    line_height = _text_size(probe, "Ag", font)[1] + 8
    gap, swatch = font_size, max(6, font_size - 2)
    items = []  # (width, draw(draw, x, y))
    if bar is not None:
        text_width = _text_size(probe, bar.label, font)[0]

        def draw_bar(draw, x, y, bar=bar, text_width=text_width):
            middle = y + line_height // 2
            draw.rectangle((x, middle - 2, x + bar.length_px - 1, middle + 1), fill=SCALE_BAR_COLOUR)
            draw.text((x + bar.length_px + 4, middle), bar.label, fill=TEXT_COLOUR, font=font, anchor="lm")

        items.append((bar.length_px + 4 + text_width, draw_bar))
    for colour, text in entries:
        text_width = _text_size(probe, text, font)[0]

        def draw_entry(draw, x, y, colour=colour, text=text):
            middle = y + line_height // 2
            draw.rectangle((x, middle - swatch // 2, x + swatch - 1, middle + swatch // 2), outline=colour, width=2)
            draw.text((x + swatch + 4, middle), text, fill=TEXT_COLOUR, font=font, anchor="lm")

        items.append((swatch + 4 + text_width, draw_entry))
    lines: list[list[tuple[int, Any]]] = [[]]
    used = gap // 2
    for item in items:
        if lines[-1] and used + item[0] > width:
            lines.append([])
            used = gap // 2
        lines[-1].append((used, item[1]))
        used += item[0] + gap
    strip = Image.new("RGB", (width, line_height * len(lines)), KEY_BACKGROUND)
    draw = ImageDraw.Draw(strip)
    for number, line in enumerate(lines):
        for x, paint in line:
            paint(draw, x, number * line_height)
    return np.asarray(strip)


def write_overlay(
    target: str | os.PathLike,
    image: np.ndarray,
    mask: np.ndarray,
    *,
    labels: np.ndarray | None = None,
    pixel_size_nm: float | None = None,
    excluded: np.ndarray | None = None,
    max_size: int = OVERLAY_MAX_SIZE,
    background: tuple[np.ndarray, np.ndarray, int] | None = None,
) -> OverlayKey:
    """Writes the overlay PNG (module docstring) atomically and returns what it drew.

    Without ``labels`` only the mask's outlines (red) are drawn. With ``labels`` (the instance ids
    of `tem_rf.particles.measure_particles`) each particle's outline, so touching particles that
    were split show the line between them, the edge particles (``excluded``: the left-out pixels)
    and the mask regions that are no particle, and the ids. ``background``: `overlay_background`
    of the same image, mask and ``max_size``, when made already.
    """
    from PIL import Image
    from skimage.segmentation import find_boundaries

    from tem_rf.core.files import atomic_path

    rgb, mask_outline, factor = background or overlay_background(image, mask, max_size=max_size)
    font_size = int(np.clip(round(max(rgb.shape[:2]) / 70), 10, 16))
    ids: dict[int, tuple[int, int]] = {}
    if labels is None:
        rgb[mask_outline] = OVERLAY_COLOUR
        entries = [(OVERLAY_COLOUR, "particle mask")]
    else:
        labels = np.asarray(labels)
        from tem_rf.particles import edge_particles

        edge = edge_particles(labels, excluded)
        shown_labels = block_max(labels, factor) if factor > 1 else labels
        outlines = find_boundaries(shown_labels, mode="inner") & (shown_labels > 0)
        rgb[mask_outline] = MASK_OUTLINE_COLOUR
        rgb[outlines] = OVERLAY_COLOUR
        if edge.size:
            rgb[outlines & np.isin(shown_labels, edge)] = EDGE_COLOUR
        ids = _draw_ids(rgb, shown_labels, font_size)
        entries = [(OVERLAY_COLOUR, "particle, id as in particles.csv"),
                   (EDGE_COLOUR, "touches the edge: not in size statistics"),
                   (MASK_OUTLINE_COLOUR, "not counted (below the minimum area)")]
    bar = scale_bar(rgb.shape[1], pixel_size_nm, factor)
    strip = key_strip(rgb.shape[1], bar, entries, font_size)
    with atomic_path(target) as tmp:
        # zlib level 1: on micrographs 4x faster than the default 6, and the file is smaller.
        Image.fromarray(np.concatenate([rgb, strip], axis=0)).save(tmp, format="PNG", compress_level=1)
    return OverlayKey(factor, bar, ids, tuple(rgb.shape[:2]))


__all__ = [
    "EDGE_COLOUR", "MASK_OUTLINE_COLOUR", "OVERLAY_COLOUR", "OVERLAY_MAX_SIZE", "OverlayKey", "ScaleBar",
    "block_max", "blocks", "overlay_background", "scale_bar", "write_overlay",
]
