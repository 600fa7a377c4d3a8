"""Paper figures of the analysis: overlays (Fig. 5, 6, 8), false-negative maps (Fig. 7, S7) and
effective receptive fields (Fig. S8).

Every function takes arrays, draws on a fresh `matplotlib.figure.Figure` with the Agg canvas
(no pyplot state, no display needed) and writes a PNG atomically. Sizes are shown in nm when the
pixel size is known (and in px alongside), with a scale bar on micrograph panels.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Circle, Patch, Rectangle
from matplotlib.ticker import MaxNLocator

from tem_rf.core.classes import PARTICLE_CLASS
from tem_rf.core.files import atomic_path
from tem_rf.metrics import dice

# Overlay colours (colour-blind safe, after Okabe & Ito): correct particle, missed, spurious.
TRUE_POSITIVE = "#0072B2"
FALSE_NEGATIVE = "#D55E00"
FALSE_POSITIVE = "#F0E442"
LABEL_CONTOUR = "#FFFFFF"
SERIES_COLOURS = ("#E69F00", "#56B4E9", "#009E73", "#CC79A7", "#0072B2", "#D55E00", "#F0E442", "#000000")
DPI = 150
# How method names read in figures (CSV files keep the short names).
DISPLAY_NAMES = {"fourier": "Fourier filter"}


def display_name(name: str) -> str:
    """The figure label of a method name (``fourier`` -> ``Fourier filter``)."""
    return DISPLAY_NAMES.get(name, name)


@dataclass(frozen=True)
class Method:
    """One segmentation method to show: its display name, masks ``[N, H, W]`` and receptive field.

    ``receptive_field_px`` is None for methods without one (the Fourier filter).
    """

    name: str
    masks: np.ndarray
    receptive_field_px: int | None = None


def rf_label(rf_px: int | None, pixel_size_nm: float | None) -> str:
    """``"RF 0.95 nm (44 px)"``, or ``"RF 44 px"`` without a pixel size."""
    if rf_px is None:
        return ""
    if pixel_size_nm:
        return f"RF {rf_px * pixel_size_nm:.2f} nm ({rf_px} px)"
    return f"RF {rf_px} px"


def save_figure(figure: Figure, path: str | os.PathLike) -> None:
    """Writes ``figure`` as PNG to ``path`` atomically (no half-written file on failure)."""
    FigureCanvasAgg(figure)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight")


def _nice_length(target: float) -> float:
    """The 1-2-5 x 10^k value at or below ``target``."""
    exponent = math.floor(math.log10(target))
    for step in (5, 2, 1):
        value = step * 10**exponent
        if value <= target:
            return value
    return 10**exponent


def add_scale_bar(ax, image_width_px: int, pixel_size_nm: float | None, colour: str = "white") -> None:
    """A bar of a round length in nm, about a fifth of the panel wide, bottom right."""
    if not pixel_size_nm:
        return
    length_nm = _nice_length(0.2 * image_width_px * pixel_size_nm)
    length_px = length_nm / pixel_size_nm
    height, width = ax.get_ylim()[0] + 0.5, ax.get_xlim()[1] + 0.5
    margin = 0.05 * image_width_px
    y = height - margin
    ax.plot([width - margin - length_px, width - margin], [y, y], color=colour, linewidth=3,
            solid_capstyle="butt")
    text = f"{length_nm:g} nm"
    ax.text(width - margin - length_px / 2, y - 0.025 * image_width_px, text, color=colour,
            ha="center", va="bottom", fontsize=7, fontweight="bold")


def _show_image(ax, image: np.ndarray) -> None:
    """Grey micrograph, 1-99 % contrast stretch; the axes keep to the image (shapes drawn later
    are clipped to it)."""
    image = np.asarray(image, dtype=np.float32)
    if image.ndim == 3:
        image = image[..., 0]
    low, high = np.percentile(image, [1, 99])
    ax.imshow(image, cmap="gray", vmin=low, vmax=high, interpolation="nearest")
    ax.set_autoscale_on(False)
    ax.set_xticks([])
    ax.set_yticks([])


def _overlay(ax, label: np.ndarray, predicted: np.ndarray, alpha: float = 0.45) -> None:
    """Colours TP / FN / FP pixels over an image already shown on ``ax``."""
    truth = label.astype(bool)
    predicted = predicted.astype(bool)
    classes = np.zeros(truth.shape, dtype=np.int8)
    classes[truth & predicted] = 1
    classes[truth & ~predicted] = 2
    classes[~truth & predicted] = 3
    cmap = ListedColormap([(0, 0, 0, 0), TRUE_POSITIVE, FALSE_NEGATIVE, FALSE_POSITIVE])
    ax.imshow(np.ma.masked_equal(classes, 0), cmap=cmap, vmin=0, vmax=3, alpha=alpha,
              interpolation="nearest")


def _contour(ax, mask: np.ndarray, colour: str = LABEL_CONTOUR, linewidth: float = 0.8) -> None:
    if mask.any() and not mask.all():
        ax.contour(mask.astype(float), levels=[0.5], colors=[colour], linewidths=linewidth)


def _overlay_legend() -> list[Patch]:
    return [
        Patch(color=TRUE_POSITIVE, label="particle, found"),
        Patch(color=FALSE_NEGATIVE, label="particle, missed (FN)"),
        Patch(color=FALSE_POSITIVE, label="background called particle (FP)"),
        Line2D([], [], color="black", linewidth=0.8, label="label outline"),
    ]


def _squeeze(images: np.ndarray) -> np.ndarray:
    array = np.asarray(images)
    return array[..., 0] if array.ndim == 4 else array


def _draw_rf_squares(ax, methods: Sequence[Method], size: int, pixel_size_nm: float | None) -> list:
    """Nested squares of each method's receptive field, anchored at the bottom-left corner."""
    handles = []
    margin = 0.02 * size
    for index, method in enumerate(methods):
        if method.receptive_field_px is None:
            continue
        side = method.receptive_field_px
        colour = SERIES_COLOURS[index % len(SERIES_COLOURS)]
        ax.add_patch(
            Rectangle((margin - 0.5, size - margin - side - 0.5), side, side, fill=False,
                      edgecolor=colour, linewidth=1.6)
        )
        note = " (larger than the patch)" if side > size else ""
        handles.append(Line2D([], [], color=colour, linewidth=1.6,
                              label=f"{method.name}: {rf_label(side, pixel_size_nm)}{note}"))
    return handles


def plot_segmentation_overlays(
    images: np.ndarray,
    labels: np.ndarray,
    methods: Sequence[Method],
    path: str | os.PathLike,
    *,
    pixel_size_nm: float | None = None,
    title: str | None = None,
) -> None:
    """Segmentations of the same patches by several networks (paper Fig. 5, 6).

    Rows are patches; the first column is the micrograph with the label outline and every
    network's receptive field drawn as a square to scale; then one column per network with
    found / missed / spurious particle pixels coloured and the patch's hard dice.
    """
    images, labels = _squeeze(images), _squeeze(labels)
    rows, cols = len(images), 1 + len(methods)
    size = images.shape[-1]
    figure = Figure(figsize=(2.3 * cols, 2.3 * rows + 0.9))
    axes = figure.subplots(rows, cols, squeeze=False)
    rf_handles: list = []
    for row in range(rows):
        truth = labels[row] == PARTICLE_CLASS
        ax = axes[row, 0]
        _show_image(ax, images[row])
        _contour(ax, truth)
        handles = _draw_rf_squares(ax, methods, size, pixel_size_nm)
        rf_handles = rf_handles or handles
        add_scale_bar(ax, size, pixel_size_nm)
        if row == 0:
            ax.set_title("micrograph, label,\nreceptive fields to scale", fontsize=8)
        for col, method in enumerate(methods, start=1):
            ax = axes[row, col]
            _show_image(ax, images[row])
            _overlay(ax, truth, method.masks[row])
            _contour(ax, truth, colour="black", linewidth=0.5)
            ax.text(0.03, 0.97, f"dice {dice(method.masks[row], truth):.3f}",
                    transform=ax.transAxes, ha="left", va="top", fontsize=7,
                    bbox={"facecolor": "white", "alpha": 0.8, "pad": 1.5, "linewidth": 0})
            if row == 0:
                detail = rf_label(method.receptive_field_px, pixel_size_nm)
                ax.set_title(f"{method.name}\n{detail}", fontsize=8)
    figure.legend(handles=_overlay_legend() + rf_handles, loc="lower center",
                  ncol=min(4, len(_overlay_legend()) + len(rf_handles)), fontsize=7, frameon=False)
    if title:
        figure.suptitle(title, fontsize=10)
    figure.tight_layout(rect=(0, 0.08 if rows < 3 else 0.05, 1, 1))
    save_figure(figure, path)


def disagreement_centre(labels: np.ndarray, mask_a: np.ndarray, mask_b: np.ndarray, box: int) -> tuple[int, int]:
    """Centre (row, col) of the ``box``-px square (inside the image) where two masks disagree
    most near the label's particle edges, where pooling and dilation artefacts show; without
    such disagreement, where they disagree most anywhere, else the most particle edge."""
    import scipy.ndimage

    labels = labels.astype(bool)
    disagreement = (mask_a.astype(bool) ^ mask_b.astype(bool)).astype(float)
    edges = labels ^ scipy.ndimage.binary_erosion(labels)
    near_edges = scipy.ndimage.binary_dilation(edges, iterations=max(2, box // 8))
    score = (
        scipy.ndimage.uniform_filter(disagreement * near_edges, box, mode="constant")
        + 1e-3 * scipy.ndimage.uniform_filter(disagreement, box, mode="constant")
        + 1e-6 * scipy.ndimage.uniform_filter(edges.astype(float), box, mode="constant")
    )
    half = box // 2
    height, width = labels.shape
    inner = np.full_like(score, -1.0)
    inner[half : height - half or None, half : width - half or None] = score[
        half : height - half or None, half : width - half or None
    ]
    row, col = np.unravel_index(np.argmax(inner), inner.shape)
    return int(row), int(col)


def plot_pool_vs_dilation(
    images: np.ndarray,
    labels: np.ndarray,
    pool: Method,
    dilation: Method,
    path: str | os.PathLike,
    *,
    pixel_size_nm: float | None = None,
    zoom_px: int = 96,
) -> None:
    """Max pooling vs dilation at a matched receptive field (paper Fig. 8).

    Columns: micrograph with both receptive fields to scale, each network's segmentation, and a
    zoom (box drawn on the overlays) where the two differ most, to show blocky (pooling) and
    gridding (dilation) edges.
    """
    images, labels = _squeeze(images), _squeeze(labels)
    rows = len(images)
    size = images.shape[-1]
    zoom_px = min(zoom_px, size)
    figure = Figure(figsize=(2.3 * 5, 2.3 * rows + 0.9))
    axes = figure.subplots(rows, 5, squeeze=False)
    handles: list = []
    for row in range(rows):
        truth = labels[row] == PARTICLE_CLASS
        centre = disagreement_centre(truth, pool.masks[row], dilation.masks[row], zoom_px)
        r0 = int(np.clip(centre[0] - zoom_px // 2, 0, size - zoom_px))
        c0 = int(np.clip(centre[1] - zoom_px // 2, 0, size - zoom_px))
        ax = axes[row, 0]
        _show_image(ax, images[row])
        _contour(ax, truth)
        handles = _draw_rf_squares(ax, [pool, dilation], size, pixel_size_nm) or handles
        add_scale_bar(ax, size, pixel_size_nm)
        for col, method in ((1, pool), (2, dilation)):
            ax = axes[row, col]
            _show_image(ax, images[row])
            _overlay(ax, truth, method.masks[row])
            _contour(ax, truth, colour="black", linewidth=0.5)
            ax.add_patch(Rectangle((c0 - 0.5, r0 - 0.5), zoom_px, zoom_px, fill=False,
                                   edgecolor="white", linewidth=1.0, linestyle="--"))
            ax.text(0.03, 0.97, f"dice {dice(method.masks[row], truth):.3f}", transform=ax.transAxes,
                    ha="left", va="top", fontsize=7,
                    bbox={"facecolor": "white", "alpha": 0.8, "pad": 1.5, "linewidth": 0})
            zoom_ax = axes[row, col + 2]
            crop = (slice(r0, r0 + zoom_px), slice(c0, c0 + zoom_px))
            _show_image(zoom_ax, images[row][crop])
            _overlay(zoom_ax, truth[crop], method.masks[row][crop], alpha=0.4)
            _contour(zoom_ax, truth[crop], colour="black", linewidth=0.8)
            add_scale_bar(zoom_ax, zoom_px, pixel_size_nm)
        if row == 0:
            axes[row, 0].set_title("micrograph, label,\nreceptive fields to scale", fontsize=8)
            for col, method in ((1, pool), (2, dilation)):
                kind = "max pooling" if col == 1 else "dilation"
                axes[row, col].set_title(
                    f"{kind}: {method.name}\n{rf_label(method.receptive_field_px, pixel_size_nm)}",
                    fontsize=8,
                )
                axes[row, col + 2].set_title(f"zoom ({kind})", fontsize=8)
    figure.legend(handles=_overlay_legend() + handles, loc="lower center", ncol=3, fontsize=7,
                  frameon=False)
    figure.suptitle("Receptive field grown by max pooling vs by dilation", fontsize=10)
    figure.tight_layout(rect=(0, 0.1 if rows < 3 else 0.06, 1, 1))
    save_figure(figure, path)


def plot_false_negative_maps(
    images: np.ndarray,
    labels: np.ndarray,
    methods: Sequence[Method],
    path: str | os.PathLike,
    *,
    reference: str = "fourier",
    pixel_size_nm: float | None = None,
) -> None:
    """False-negative maps of several methods on the same patches (paper Fig. 7).

    Missed particle pixels are drawn in colour over the faded micrograph; each panel of a
    network states its FN overlap (dice of the FN regions) with the ``reference`` method.
    """
    images, labels = _squeeze(images), _squeeze(labels)
    names = [m.name for m in methods]
    if reference not in names:
        raise ValueError(f"reference {reference!r} is not among the methods {names}")
    reference_masks = methods[names.index(reference)].masks
    rows, cols = len(images), 1 + len(methods)
    size = images.shape[-1]
    figure = Figure(figsize=(2.3 * cols, 2.3 * rows + 0.7))
    axes = figure.subplots(rows, cols, squeeze=False)
    fn_cmap = ListedColormap([(0, 0, 0, 0), FALSE_NEGATIVE])
    for row in range(rows):
        truth = labels[row] == PARTICLE_CLASS
        reference_fn = truth & ~reference_masks[row].astype(bool)
        ax = axes[row, 0]
        _show_image(ax, images[row])
        _contour(ax, truth)
        add_scale_bar(ax, size, pixel_size_nm)
        if row == 0:
            ax.set_title("micrograph and label", fontsize=8)
        for col, method in enumerate(methods, start=1):
            ax = axes[row, col]
            fn = truth & ~method.masks[row].astype(bool)
            ax.imshow(np.where(truth, 0.75, 1.0), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.imshow(fn.astype(np.int8), cmap=fn_cmap, vmin=0, vmax=1, interpolation="nearest")
            _contour(ax, truth, colour="black", linewidth=0.5)
            ax.set_xticks([])
            ax.set_yticks([])
            text = f"FN {fn.sum() / max(truth.sum(), 1):.0%} of particle"
            if method.name != reference:
                text += f"\nFN overlap with {display_name(reference)}: {dice(fn, reference_fn):.2f}"
            ax.text(0.03, 0.97, text, transform=ax.transAxes, ha="left", va="top", fontsize=6.5,
                    bbox={"facecolor": "white", "alpha": 0.85, "pad": 1.5, "linewidth": 0})
            if row == 0:
                detail = rf_label(method.receptive_field_px, pixel_size_nm)
                shown = display_name(method.name)
                ax.set_title(f"{shown}\n{detail}" if detail else shown, fontsize=8)
    figure.legend(
        handles=[Patch(color=FALSE_NEGATIVE, label="false negative (missed particle)"),
                 Patch(color="#BFBFBF", label="labelled particle"),
                 Line2D([], [], color="black", linewidth=0.8, label="label outline")],
        loc="lower center", ncol=3, fontsize=7, frameon=False,
    )
    figure.suptitle(f"False-negative regions: networks vs {display_name(reference)}", fontsize=10)
    figure.tight_layout(rect=(0, 0.06 if rows < 3 else 0.04, 1, 1))
    save_figure(figure, path)


def plot_fn_overlap_summary(
    rows: Sequence[Mapping[str, Any]],
    summary: Sequence[Mapping[str, Any]],
    path: str | os.PathLike,
    *,
    reference: str = "fourier",
    method_labels: Mapping[str, str] | None = None,
) -> None:
    """Statistics of the FN overlap with ``reference`` over all patches (paper Fig. S7).

    Left: per-patch FN overlap of each network with the reference (points, mean +- std bar).
    Right: on how many patches each network's FN map is the most similar to the reference's.
    Methods appear in the order of ``summary`` (e.g. by receptive field).
    """
    key = f"fn_overlap_{reference}"
    reference_name = display_name(reference)
    methods = [s["method"] for s in summary if s["method"] != reference]
    labels = [(method_labels or {}).get(m, m) for m in methods]
    tick_style = {"fontsize": 7} if len(methods) <= 4 else {"fontsize": 7, "rotation": 25, "ha": "right"}
    figure = Figure(figsize=(max(8.0, 3.2 * len(methods)), 3.8), layout="constrained")
    left, right = figure.subplots(1, 2)
    rng = np.random.default_rng(0)  # jitter only; fixed so figures are reproducible
    for index, method in enumerate(methods):
        values = np.array([float(r[key]) for r in rows if r["method"] == method])
        colour = SERIES_COLOURS[index % len(SERIES_COLOURS)]
        left.scatter(index + rng.uniform(-0.15, 0.15, len(values)), values, s=9, alpha=0.6,
                     color=colour, edgecolors="none")
        if len(values):
            std = values.std(ddof=1) if len(values) > 1 else 0.0
            left.errorbar(index + 0.3, values.mean(), yerr=std, fmt="o", color="black", capsize=3,
                          markersize=4)
    left.set_xticks(range(len(methods)), labels, **tick_style)
    left.set_xlim(-0.6, len(methods) - 0.2)
    left.set_ylim(-0.03, 1.03)
    left.set_ylabel(f"FN overlap with {reference_name} (dice)")
    left.set_title("per patch (black: mean ± std)", fontsize=9)
    left.grid(axis="y", alpha=0.3)
    by_method = {s["method"]: s for s in summary}
    counts = [by_method[m]["closest_count"] or 0 for m in methods]
    compared = max([by_method[m]["images_compared"] or 0 for m in methods] + [0])
    right.bar(range(len(methods)), counts,
              color=[SERIES_COLOURS[i % len(SERIES_COLOURS)] for i in range(len(methods))])
    right.set_xticks(range(len(methods)), labels, **tick_style)
    right.yaxis.set_major_locator(MaxNLocator(integer=True))
    right.set_ylabel("patches")
    right.set_title(f"FN map most similar to the {reference_name}'s\n"
                    f"(of {compared} patches where the {reference_name} misses particle)", fontsize=9)
    right.grid(axis="y", alpha=0.3)
    save_figure(figure, path)


def plot_effective_receptive_fields(
    erfs: Sequence[tuple[str, Any]],
    path: str | os.PathLike,
    *,
    pixel_size_nm: float | None = None,
    dynamic_range: float = 1e-4,
) -> None:
    """Effective receptive fields (paper Fig. S8) of several networks, to one scale.

    Top row: the mean |input gradient| of the centre pixel's particle score, normalised to its
    maximum, on a log scale over ``dynamic_range``; the theoretical window (exact, from
    ``tem_rf.models.geometry.receptive_window``) as a solid square and the radius holding 95 % of the gradient
    as a dashed circle. All maps share one crop, so sizes compare directly. Bottom: the radial
    profile (normalised) and the cumulative gradient fraction, with RF/2 and the 95 % radius.
    """
    if not erfs:
        raise ValueError("no effective receptive fields to plot")
    unit = "nm" if pixel_size_nm else "px"
    scale = pixel_size_nm or 1.0
    count = len(erfs)
    half = max(
        max(e.position[0] - e.window.row_start, e.window.row_stop - e.position[0],
            e.position[1] - e.window.col_start, e.window.col_stop - e.position[1])
        for _, e in erfs
    ) + 6
    figure = Figure(figsize=(max(2.8 * count, 8.0), 6.4), layout="constrained")
    grid = figure.add_gridspec(2, 1)
    top = grid[0].subgridspec(1, count)
    bottom = grid[1].subgridspec(1, 2)
    image_artist = None
    map_axes = []
    for index, (name, erf) in enumerate(erfs):
        ax = figure.add_subplot(top[0, index])
        map_axes.append(ax)
        row, col = erf.position
        height, width = erf.gradient.shape
        r0, r1 = max(row - half, 0), min(row + half + 1, height)
        c0, c1 = max(col - half, 0), min(col + half + 1, width)
        crop = erf.gradient[r0:r1, c0:c1]
        peak = crop.max() if crop.max() > 0 else 1.0
        logged = np.log10(np.maximum(crop / peak, dynamic_range))
        # Extent in physical units relative to the output pixel (pixel edges at +-0.5).
        extent = ((c0 - col - 0.5) * scale, (c1 - col - 0.5) * scale,
                  (r1 - row - 0.5) * scale, (r0 - row - 0.5) * scale)
        image_artist = ax.imshow(logged, cmap="magma", vmin=math.log10(dynamic_range), vmax=0,
                                 extent=extent, interpolation="nearest")
        window = erf.window
        ax.add_patch(Rectangle(((window.col_start - col - 0.5) * scale, (window.row_start - row - 0.5) * scale),
                               window.width * scale, window.height * scale, fill=False,
                               edgecolor="#56B4E9", linewidth=1.3))
        if math.isfinite(erf.radius_95):
            ax.add_patch(Circle((0, 0), erf.radius_95 * scale, fill=False, edgecolor="white",
                                linestyle="--", linewidth=1.0))
        note = "\nwindow clipped by the patch" if window.clipped else ""
        ax.set_title(f"{name}\n{rf_label(erf.theoretical_rf_px, pixel_size_nm)}{note}", fontsize=8)
        ax.set_xlabel(f"x ({unit})", fontsize=7)
        if index == 0:
            ax.set_ylabel(f"y ({unit})", fontsize=7)
        ax.tick_params(labelsize=6)
    if image_artist is not None:
        bar = figure.colorbar(image_artist, ax=map_axes, fraction=0.025, pad=0.02)
        bar.set_label("log10 |∂score/∂input| / max", fontsize=7)
        bar.ax.tick_params(labelsize=6)
    profile_ax = figure.add_subplot(bottom[0, 0])
    cumulative_ax = figure.add_subplot(bottom[0, 1])
    for index, (name, erf) in enumerate(erfs):
        colour = SERIES_COLOURS[index % len(SERIES_COLOURS)]
        profile = erf.profile / erf.profile.max() if erf.profile.max() > 0 else erf.profile
        radius = erf.radius * scale
        limit = erf.radius <= half * math.sqrt(2)
        profile_ax.semilogy(radius[limit], np.maximum(profile[limit], 1e-8), color=colour, label=name)
        cumulative_ax.plot(radius[limit], erf.cumulative[limit], color=colour,
                           label=f"{name}: r95 = {erf.radius_95 * scale:.2f} {unit}" if pixel_size_nm
                           else f"{name}: r95 = {erf.radius_95:.0f} px")
        for target in (profile_ax, cumulative_ax):
            target.axvline(erf.theoretical_rf_px / 2 * scale, color=colour, linestyle=":", linewidth=1)
        cumulative_ax.axvline(erf.radius_95 * scale, color=colour, linestyle="--", linewidth=0.8)
    profile_ax.set_ylim(1e-5, 1.5)
    profile_ax.set_xlabel(f"distance from output pixel ({unit})")
    profile_ax.set_ylabel("mean |gradient| per ring / max")
    profile_ax.set_title("radial profile (dotted: RF/2)", fontsize=9)
    profile_ax.grid(alpha=0.3)
    profile_ax.legend(fontsize=7, frameon=False)
    cumulative_ax.axhline(0.95, color="grey", linewidth=0.8)
    cumulative_ax.set_ylim(0, 1.02)
    cumulative_ax.set_xlabel(f"distance from output pixel ({unit})")
    cumulative_ax.set_ylabel("fraction of gradient within radius")
    cumulative_ax.set_title("cumulative (dashed: 95 % radius)", fontsize=9)
    cumulative_ax.grid(alpha=0.3)
    cumulative_ax.legend(fontsize=7, frameon=False, loc="lower right")
    figure.suptitle("Effective receptive field: |∂ particle score(centre) / ∂ input|, mean over images\n"
                    "blue square: theoretical window; dashed circle: 95 % of the gradient",
                    fontsize=9)
    save_figure(figure, path)
