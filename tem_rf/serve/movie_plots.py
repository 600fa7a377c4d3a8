"""What a movie's particles did, drawn (issue 26, item 4): for ``segment --frames`` beside each
movie's tables,

* ``<stem>_growth.png``: particles per frame, and the median diameter with its quartile band,
  against time;
* ``<stem>_size_map.png``: the size distribution over time, a heat map of each frame's diameter
  histogram;
* ``<stem>_longest_tracks.png``: diameter against time for the longest tracks;
* ``<stem>_montage.png``: frames spread over the movie, each particle outlined in its track's
  colour with its track id, the frame and its time above each, a scale bar below.

Sizes are equivalent-circle diameters in nm when the movie has a pixel size, else in px; particles
cut by the image edge are counted but left out of the size statistics, as in ``segment``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

LONGEST_TRACKS = 8  # tracks drawn in <stem>_longest_tracks.png: more are a tangle
MONTAGE_FRAMES = 9  # frames in the montage, a 3x3 grid
MONTAGE_COLUMNS = 3
MONTAGE_TILE_PX = 360  # each frame at most this wide and high in the montage
SIZE_MAP_BINS = 30


def time_axis(rows: Sequence[Mapping[str, Any]]) -> tuple[np.ndarray, str]:
    """The time of each row (``time_s``, or its ``frame`` when the interval is unknown) and the
    axis label."""
    if rows and all(row.get("time_s") is not None for row in rows):
        return np.array([float(row["time_s"]) for row in rows]), "time (s)"
    return np.array([float(row["frame"]) for row in rows]), "time (frames; the interval is unknown)"


def growth_figure(per_frame: Sequence[Mapping[str, Any]]) -> Any:
    """A matplotlib ``Figure``: particles per frame (all, and those measured: not cut by the
    edge) above the median diameter with the band between its quartiles, against time."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.4, 5.6), dpi=100)
    count_axes, size_axes = figure.subplots(2, 1, sharex=True)
    times, label = time_axis(per_frame)
    count_axes.plot(times, [row["count"] for row in per_frame], label="all particles")
    count_axes.plot(times, [row["count_measured"] for row in per_frame], label="measured (not cut by the edge)")
    count_axes.set_ylabel("particles")
    count_axes.yaxis.get_major_locator().set_params(integer=True)
    count_axes.legend(fontsize="small")
    unit = next((row["diameter_unit"] for row in per_frame if row.get("diameter_unit")), "px")
    nan = float("nan")
    median, low, high = (np.array([nan if row.get(key) is None else row[key] for row in per_frame], np.float64)
                         for key in ("diameter_median", "diameter_q1", "diameter_q3"))
    size_axes.fill_between(times, low, high, alpha=0.3, linewidth=0, label="quartiles (25-75 %)")
    size_axes.plot(times, median, label="median")
    size_axes.set_ylabel(f"diameter ({unit})")
    size_axes.set_xlabel(label)
    size_axes.legend(fontsize="small")
    figure.suptitle("particles over time", fontsize="medium")
    figure.tight_layout()
    return figure


def _diameters(rows: Sequence[Mapping[str, Any]]) -> tuple[list[float], str]:
    """Each row's diameter in nm when every row has one, else in px, and the unit."""
    if rows and all(row.get("diameter_nm") not in (None, "") for row in rows):
        return [float(row["diameter_nm"]) for row in rows], "nm"
    return [float(row["diameter_px"]) for row in rows], "px"


def size_map(detections: Sequence[Mapping[str, Any]], frames: Sequence[int],
             bins: int = SIZE_MAP_BINS) -> tuple[np.ndarray, np.ndarray, str]:
    """The diameter histogram of each of ``frames`` (the particles of ``detections`` not cut by
    the edge), on bins shared by all: ``(counts [bins, frames], bin edges, unit)``."""
    measured = [row for row in detections if not row.get("touches_edge")]
    diameters, unit = _diameters(measured)
    values = np.asarray(diameters, np.float64)
    if values.size:
        low, high = float(values.min()), float(values.max())
        span = max(high - low, 0.02 * abs(high), 1e-6)  # never a bin narrower than 2 % of the sizes
        edges = np.linspace((low + high - span) / 2, (low + high + span) / 2, bins + 1)
    else:
        edges = np.linspace(0.0, 1.0, bins + 1)
    column = {frame: position for position, frame in enumerate(frames)}
    counts = np.zeros((bins, len(frames)), np.int64)
    if values.size:
        where = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, bins - 1)
        np.add.at(counts, (where, [column[int(row["frame"])] for row in measured]), 1)
    return counts, edges, unit


def size_map_figure(detections: Sequence[Mapping[str, Any]], per_frame: Sequence[Mapping[str, Any]]) -> Any:
    """A matplotlib ``Figure``: `size_map` as a heat map, time across, diameter up."""
    from matplotlib.figure import Figure

    frames = [int(row["frame"]) for row in per_frame]
    counts, edges, unit = size_map(detections, frames)
    times, label = time_axis(per_frame)
    figure = Figure(figsize=(6.4, 4.2), dpi=100)
    axes = figure.add_subplot()
    # each frame's column spans to the next frame's time (the last one a frame's step on)
    step = float(np.median(np.diff(times))) if len(times) > 1 else 1.0
    columns = np.append(times, times[-1] + step) if len(times) else np.array([0.0, 1.0])
    mesh = axes.pcolormesh(columns, edges, counts, cmap="viridis", shading="flat")
    figure.colorbar(mesh, ax=axes, label="particles")
    axes.set_xlabel(label)
    axes.set_ylabel(f"equivalent-circle diameter ({unit})")
    axes.set_title("size distribution over time (edge particles left out)", fontsize="medium")
    figure.tight_layout()
    return figure


def longest_tracks(track_rows: Sequence[Mapping[str, Any]], count: int = LONGEST_TRACKS) -> list[int]:
    """The ``count`` tracks seen in the most frames, longest first (ties: the earlier id)."""
    lengths: dict[int, int] = {}
    for row in track_rows:
        lengths[int(row["track"])] = lengths.get(int(row["track"]), 0) + 1
    return sorted(lengths, key=lambda track: (-lengths[track], track))[:count]


def longest_tracks_figure(track_rows: Sequence[Mapping[str, Any]], count: int = LONGEST_TRACKS) -> Any:
    """A matplotlib ``Figure``: diameter against time for the `longest_tracks`, each named by
    its id."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.4, 4.2), dpi=100)
    axes = figure.add_subplot()
    chosen = longest_tracks(track_rows, count)
    _, unit = _diameters(track_rows)
    for rank, track in enumerate(chosen):
        rows = [row for row in track_rows if int(row["track"]) == track]
        times, label = time_axis(rows)
        diameters = [float(row[f"diameter_{unit}"]) for row in rows]
        axes.plot(times, diameters, marker=".", color=f"C{rank}", label=f"track {track}")
        axes.set_xlabel(label)
    if chosen:
        axes.legend(fontsize="small", ncols=2)
    else:
        axes.text(0.5, 0.5, "no tracks", ha="center", va="center", transform=axes.transAxes)
    axes.set_ylabel(f"equivalent-circle diameter ({unit})")
    axes.set_title(f"the {len(chosen)} longest tracks", fontsize="medium")
    figure.tight_layout()
    return figure


def track_colour(track: int) -> tuple[int, int, int]:
    """A track's colour (RGB 0-255), the same in every plot: matplotlib's tab20, cycled."""
    return _TAB20()[int(track) % 20]


@functools.cache
def _TAB20() -> tuple[tuple[int, int, int], ...]:
    """matplotlib's tab20 as RGB 0-255, looked up once (the montage asks per particle and frame)."""
    from matplotlib import colormaps

    return tuple(tuple(round(255 * c) for c in colormaps["tab20"](i)[:3]) for i in range(20))


def montage_positions(frames: int, count: int = MONTAGE_FRAMES) -> list[int]:
    """Which of a movie's ``frames`` (positions 0..frames-1) the montage shows: ``count`` spread
    evenly from the first to the last."""
    shown = min(count, frames)
    return sorted({round(i * (frames - 1) / max(shown - 1, 1)) for i in range(shown)})


@dataclasses.dataclass
class MontageTile:
    """One frame of the montage, made while the movie is segmented: the micrograph shrunk to at
    most `MONTAGE_TILE_PX` (`tem_rf.serve.overlay.overlay_background`), its particle labels at
    that scale, and its caption."""

    rgb: np.ndarray
    labels: np.ndarray
    frame: int
    caption: str
    factor: int


def montage_tile(image: np.ndarray, labels: np.ndarray, frame: int, caption: str) -> MontageTile:
    """`MontageTile` of one frame's micrograph and particle labels."""
    from tem_rf.serve.overlay import block_max, overlay_background

    rgb, _, factor = overlay_background(image, labels > 0, max_size=MONTAGE_TILE_PX)
    shown = block_max(labels, factor) if factor > 1 else np.asarray(labels)
    return MontageTile(rgb, shown, frame, caption, factor)


def montage(tiles: Sequence[MontageTile], track_of: Mapping[tuple[int, int], int],
            pixel_size_nm: float | None) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """The montage image (RGB) of ``tiles``: each particle outlined in its track's colour
    (``track_of``: (frame, particle id) -> track; particles with none in white) with its track id,
    the caption above each tile, a scale bar below; and each tile's (row, col) in it."""
    from PIL import Image, ImageDraw
    from skimage.segmentation import find_boundaries

    from tem_rf.serve.overlay import key_strip, load_font, scale_bar

    height = max(tile.rgb.shape[0] for tile in tiles)
    width = max(tile.rgb.shape[1] for tile in tiles)
    font_size = 12
    caption_px = font_size + 8
    columns = min(MONTAGE_COLUMNS, len(tiles))
    rows = math.ceil(len(tiles) / columns)
    canvas = np.zeros((rows * (height + caption_px), columns * width, 3), np.uint8)
    placements = []
    for index, tile in enumerate(tiles):
        rgb = tile.rgb.copy()
        outlines = find_boundaries(tile.labels, mode="inner") & (tile.labels > 0)
        tracks = np.zeros(int(tile.labels.max(initial=0)) + 1, np.int64) - 1
        for particle in range(1, tracks.size):
            tracks[particle] = track_of.get((tile.frame, particle), -1)
        colours = np.array([track_colour(t) if t >= 0 else (255, 255, 255) for t in tracks], np.uint8)
        rgb[outlines] = colours[tile.labels[outlines]]
        rgb = _write_track_ids(rgb, tile.labels, tracks, colours, font_size)
        top, left = (index // columns) * (height + caption_px) + caption_px, (index % columns) * width
        canvas[top:top + rgb.shape[0], left:left + rgb.shape[1]] = rgb
        placements.append((top, left))
    image = Image.fromarray(canvas)
    draw = ImageDraw.Draw(image)
    for tile, (top, left) in zip(tiles, placements):
        draw.text((left + 4, top - caption_px // 2), tile.caption, fill=(255, 255, 255), font=load_font(font_size),
                  anchor="lm")
    bar = scale_bar(tiles[0].rgb.shape[1], pixel_size_nm, tiles[0].factor)
    strip = key_strip(canvas.shape[1], bar, [((255, 255, 255), "outline and number: the particle's track")],
                       font_size)
    return np.concatenate([np.asarray(image), strip], axis=0), placements


def _write_track_ids(rgb: np.ndarray, labels: np.ndarray, tracks: np.ndarray, colours: np.ndarray,
                     font_size: int) -> np.ndarray:
    """``rgb`` with each tracked particle's track id in its colour just above its top right
    corner (beside it rather than on it: most particles of a movie are smaller than the text)."""
    from PIL import Image, ImageDraw
    from scipy import ndimage

    from tem_rf.serve.overlay import MAX_IDS, load_font

    image = Image.fromarray(rgb)
    draw = ImageDraw.Draw(image)
    font = load_font(font_size)
    boxes = [(particle, box) for particle, box in enumerate(ndimage.find_objects(labels), start=1)
             if box is not None and tracks[particle] >= 0]
    for particle, (rows, cols) in boxes[:MAX_IDS]:
        colour = tuple(int(c) for c in colours[particle])
        draw.text((cols.stop, max(rows.start, font_size)), str(tracks[particle]), fill=colour, font=font, anchor="lb",
                  stroke_width=1, stroke_fill=(0, 0, 0))
    return np.asarray(image).copy()


def write_movie_plots(files: Mapping[str, os.PathLike], per_frame: Sequence[Mapping[str, Any]],
                      detections: Sequence[Mapping[str, Any]], track_rows: Sequence[Mapping[str, Any]],
                      tiles: Sequence[MontageTile], pixel_size_nm: float | None) -> None:
    """Writes the four plots of the module docstring to ``files`` (keys ``growth``,
    ``size_map``, ``longest_tracks``, ``montage``; the caller's temporary names)."""
    from PIL import Image

    growth_figure(per_frame).savefig(files["growth"], format="png")
    size_map_figure(detections, per_frame).savefig(files["size_map"], format="png")
    longest_tracks_figure(track_rows).savefig(files["longest_tracks"], format="png")
    track_of = {(int(row["frame"]), int(row["particle"])): int(row["track"]) for row in track_rows}
    image, _ = montage(tiles, track_of, pixel_size_nm)
    Image.fromarray(image).save(files["montage"], format="PNG", compress_level=1)


__all__ = [
    "LONGEST_TRACKS", "MONTAGE_FRAMES", "MontageTile", "growth_figure", "longest_tracks", "longest_tracks_figure",
    "montage", "montage_positions", "montage_tile", "size_map", "size_map_figure", "time_axis", "track_colour",
    "write_movie_plots",
]
