"""Segmentation of full-size micrographs: exact tiling with a halo, stitching, output files.

Why tiling can be exact. With "same" zero padding, an output pixel depends on the input inside
its dependency window and on where the image border (the conv zero padding) is; max pooling
further depends on how the pooling grid is aligned. So the whole micrograph is first padded by
reflection at the bottom and right to a multiple of the *size divisor* (the product of the pool
sizes), the same padding for the single-pass and the tiled path. Tiles are then cut from that
padded image at offsets that are multiples of the divisor (pooling windows line up with the
single pass), each tile's *core* extended by a *halo* on every side that is not the image border.
When the halo is at least the network's one-sided dependency extent, the core's pixels see
exactly the data the single pass sees, and stitching the cores reproduces the single-pass output
to float round-off. Every tile window has the same size (windows at the image edge are shifted
inwards, not clipped), so tiles are batched through one traced graph.

How large the halo must be is computed exactly (`minimum_halo`) by walking the model's layers
with interval arithmetic over every pooling phase, not from the receptive field alone: the paper's
Eq. 1 ignores where a pixel sits inside its pooling windows, and a pixel can depend on input
farther than half the RF on one side (pools (8, 2): RF 152 px, a pixel 82 px from its tile's edge
can still see past it, so ``ceil(RF / 2)`` = 76 rounded to the divisor, 80, is not enough; the
halo is 96). The halo is never below ``ceil(RF / 2)`` and is a multiple of the divisor.

Outputs of `segment_file`: ``<stem>_mask.tif`` (uint8, 0 background, 255 particle),
``<stem>_prob.tif`` (float32 particle probability, optional) and ``<stem>_overlay.png``; TIFFs
carry the micrograph's pixel size (ImageJ resolution, nm).
"""

from __future__ import annotations

import dataclasses
import glob
import json
import logging
import math
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from tem_rf.export import Predictor

logger = logging.getLogger(__name__)

PIXEL_SIZE_TOLERANCE = 0.10  # warn when a micrograph's pixel size is >10 % off the training one
MASK_VALUE = 255  # particle pixels in the written mask (background 0): visible in any viewer
DEFAULT_TILE_SIZE = 1024
OVERLAY_MAX_SIZE = 1024
OVERLAY_COLOUR = (255, 45, 45)


class ProbabilityFunction(Protocol):
    """What the tiling needs of a network (`tem_rf.export.Predictor` is one)."""

    size_divisor: int
    halo_px: int

    def __call__(self, images: np.ndarray) -> np.ndarray: ...


def _round_up(value: int, multiple: int) -> int:
    return -(-int(value) // multiple) * multiple


# ---------------------------------------------------------------------------------------------
# Dependency extent of a model (exact halo)


def _pair(value: Any) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def _window_bounds(
    lo: np.ndarray, hi: np.ndarray, size_out: int, kernel: int, stride: int, dilation: int, pad_before: int
) -> tuple[np.ndarray, np.ndarray]:
    """Input-coordinate bounds of each output position of a sliding window over ``(lo, hi)``.

    Positions that fall into the zero padding carry no data and are ignored.
    """
    index = np.arange(size_out)[:, None] * stride - pad_before + dilation * np.arange(kernel)[None, :]
    inside = (index >= 0) & (index < lo.size)
    index = np.clip(index, 0, lo.size - 1)
    return (
        np.where(inside, lo[index], np.inf).min(axis=1),
        np.where(inside, hi[index], -np.inf).max(axis=1),
    )


def _sliding_layer(layer: Any, lo: np.ndarray, hi: np.ndarray, axis: int, kernel, strides, dilation):
    k, s, a = _pair(kernel)[axis], _pair(strides)[axis], _pair(dilation)[axis]
    effective = a * (k - 1) + 1
    size = lo.size
    if layer.padding == "same":
        size_out = -(-size // s)
        pad_before = max((size_out - 1) * s + effective - size, 0) // 2
    else:
        size_out, pad_before = (size - effective) // s + 1, 0
    return _window_bounds(lo, hi, size_out, k, s, a, pad_before)


def _dependency_bounds(model: Any) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, int]]:
    """Per axis: ``(position, lo, hi, divisor)`` of output pixels away from the border.

    ``lo[i]`` and ``hi[i]`` are the lowest and highest input position output ``position[i]``
    depends on, from a walk of the functional graph on a 1-D grid whose length is a multiple of
    the divisor (so position ``i`` has pooling phase ``i % divisor``, as in a padded image).
    """
    import keras

    # The receptive-field walk's layer classification, so the two never disagree.
    from tem_rf.receptive_field import _MERGE, _POINTWISE, max_stride, receptive_field

    rf = receptive_field(model).pixels
    divisor = max_stride(model)
    length = _round_up(3 * rf + 4 * divisor, divisor)
    input_ids = {id(t) for t in model.inputs}
    for axis in (0, 1):
        memo: dict[int, tuple[np.ndarray, np.ndarray]] = {}

        def visit(tensor, axis=axis, memo=memo):
            key = id(tensor)
            if key in memo:
                return memo[key]
            if key in input_ids:
                positions = np.arange(length, dtype=np.float64)
                memo[key] = (positions, positions)
                return memo[key]
            layer, node_index, _ = tensor._keras_history
            inputs = [visit(t) for t in layer._inbound_nodes[node_index].input_tensors]
            if isinstance(layer, _MERGE):
                result = (
                    np.min([lo for lo, _ in inputs], axis=0),
                    np.max([hi for _, hi in inputs], axis=0),
                )
            elif len(inputs) != 1:
                raise NotImplementedError(
                    f"dependency extent: layer {layer.name!r} has {len(inputs)} inputs"
                )
            else:
                ((lo, hi),) = inputs
                if isinstance(layer, keras.layers.Conv2D) and not isinstance(
                    layer, keras.layers.Conv2DTranspose
                ):
                    result = _sliding_layer(
                        layer, lo, hi, axis, layer.kernel_size, layer.strides, layer.dilation_rate
                    )
                elif isinstance(layer, (keras.layers.MaxPooling2D, keras.layers.AveragePooling2D)):
                    result = _sliding_layer(layer, lo, hi, axis, layer.pool_size, layer.strides, 1)
                elif isinstance(layer, keras.layers.UpSampling2D):
                    factor = _pair(layer.size)[axis]
                    source = np.arange(lo.size * factor) // factor
                    result = (lo[source], hi[source])
                elif isinstance(layer, _POINTWISE) or getattr(layer, "pointwise", False):
                    result = (lo, hi)
                else:
                    raise NotImplementedError(
                        f"dependency extent: no rule for layer {layer.name!r} "
                        f"({type(layer).__name__})"
                    )
            memo[key] = result
            return result

        lo, hi = visit(model.outputs[0])
        if lo.size != length:
            raise ValueError(f"model {model.name!r} output size differs from its input size")
        position = np.arange(length)
        # Farther than the RF from both borders, over several full periods of pooling phases.
        central = (position >= rf + divisor) & (position < length - rf - divisor)
        yield position[central], lo[central], hi[central], divisor


def dependency_extent(model: Any) -> int:
    """How far (px, one side) an output pixel's value can depend on the input, exactly.

    The largest distance between an output pixel and the input it depends on, over both axes,
    both sides and all pooling phases (away from the image border).
    """
    return max(
        int(max((position - lo).max(), (hi - position).max()))
        for position, lo, hi, _ in _dependency_bounds(model)
    )


def minimum_halo(model: Any) -> int:
    """The tiling halo that makes tiles exact, rounded up to the size divisor.

    Tile cores start at multiples of the divisor, so a core pixel of pooling phase ``p`` is at
    least ``p`` px from its core's start (and ``divisor - 1 - p`` from its end); the halo must
    cover each pixel's dependency extent minus that. The result is also at least ``ceil(RF / 2)``.
    """
    from tem_rf.receptive_field import max_stride, receptive_field

    needed = -(-receptive_field(model).pixels // 2)
    for position, lo, hi, divisor in _dependency_bounds(model):
        phase = position % divisor
        needed = max(needed, int((position - lo - phase).max()), int((hi - position - (divisor - 1 - phase)).max()))
    return _round_up(needed, max_stride(model))


# ---------------------------------------------------------------------------------------------
# Padding and tiling


def pad_to_divisor(image: np.ndarray, divisor: int) -> np.ndarray:
    """Pads a 2-D image at the bottom and right by reflection to multiples of ``divisor``.

    Reflection keeps the statistics the network saw in training at the edge (zeros would be a
    dark frame). Raises ValueError for images smaller than ``divisor`` (nothing to reflect).
    """
    height, width = image.shape
    if height < divisor or width < divisor:
        raise ValueError(
            f"image {height}x{width} is smaller than the size divisor {divisor} (the product of "
            "the network's pool sizes)"
        )
    pad = ((0, (-height) % divisor), (0, (-width) % divisor))
    return np.pad(image, pad, mode="reflect") if any(p for _, p in pad) else image


@dataclasses.dataclass(frozen=True)
class AxisTile:
    """One tile along one axis: the window fed to the network and the core kept from it."""

    window_start: int
    core_start: int
    core_stop: int


def plan_axis(size: int, tile_size: int, halo: int) -> list[AxisTile]:
    """Tiles along one axis of a padded image (all multiples of the divisor in, aligned out).

    Cores of ``tile_size`` cover ``[0, size)``; every window is ``min(tile_size + 2 * halo, size)``
    long, starting ``halo`` before its core, shifted inwards at the image edges so every window
    has the same length while each core keeps at least ``halo`` of real data on its inner sides.
    """
    window = min(tile_size + 2 * halo, size)
    tiles = []
    for core_start in range(0, size, tile_size):
        window_start = min(max(core_start - halo, 0), size - window)
        tiles.append(AxisTile(window_start, core_start, min(core_start + tile_size, size)))
    return tiles


def predict_probability(
    image: np.ndarray,
    predictor: ProbabilityFunction,
    *,
    tile_size: int | None = DEFAULT_TILE_SIZE,
    batch_size: int = 1,
    halo: int | None = None,
) -> np.ndarray:
    """Particle probability of a preprocessed 2-D image, float32 of the same shape.

    The image is padded to the size divisor (`pad_to_divisor`); with ``tile_size`` None (or at
    least the padded image) it goes through the network in one pass, else in tiles of
    ``tile_size`` (rounded up to the divisor) plus ``halo`` (default: the model's, rounded up to
    the divisor), ``batch_size`` tiles per call. Memory grows with ``batch_size * (tile_size +
    2 * halo)**2``, not with the image.
    """
    image = np.asarray(image, dtype=np.float32)
    if image.ndim != 2:
        raise ValueError(f"expected a 2-D image, got shape {image.shape}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    divisor = int(predictor.size_divisor)
    height, width = image.shape
    padded = pad_to_divisor(image, divisor)
    padded_h, padded_w = padded.shape
    if tile_size is None or tile_size >= max(padded_h, padded_w):
        return predictor(padded[None, :, :, None])[0, :height, :width]
    if tile_size < 1:
        raise ValueError(f"tile_size must be positive, got {tile_size}")
    tile_size = _round_up(tile_size, divisor)
    halo = _round_up(predictor.halo_px if halo is None else halo, divisor)
    rows, cols = plan_axis(padded_h, tile_size, halo), plan_axis(padded_w, tile_size, halo)
    window_h, window_w = min(tile_size + 2 * halo, padded_h), min(tile_size + 2 * halo, padded_w)
    tiles = [(r, c) for r in rows for c in cols]
    probability = np.empty((padded_h, padded_w), np.float32)
    batch = np.empty((min(batch_size, len(tiles)), window_h, window_w, 1), np.float32)
    for first in range(0, len(tiles), batch_size):
        chunk = tiles[first : first + batch_size]
        for i, (r, c) in enumerate(chunk):
            batch[i, :, :, 0] = padded[
                r.window_start : r.window_start + window_h, c.window_start : c.window_start + window_w
            ]
        output = predictor(batch[: len(chunk)])
        for i, (r, c) in enumerate(chunk):
            probability[r.core_start : r.core_stop, c.core_start : c.core_stop] = output[
                i,
                r.core_start - r.window_start : r.core_stop - r.window_start,
                c.core_start - c.window_start : c.core_stop - c.window_start,
            ]
    return probability[:height, :width]


# ---------------------------------------------------------------------------------------------
# Whole micrographs and files


def check_pixel_size(
    path: str | os.PathLike, pixel_size_nm: float | None, training_pixel_size_nm: float | None
) -> bool:
    """Warns (naming the file) when the pixel sizes differ by more than `PIXEL_SIZE_TOLERANCE`.

    The network learnt particle sizes and lattice fringes in pixels; at another magnification it
    sees different features. Returns False when it warned, True otherwise (also when unknown).
    """
    if pixel_size_nm is None or training_pixel_size_nm is None:
        if training_pixel_size_nm is not None:
            logger.info(
                "%s: pixel size unknown; the network was trained at %.4g nm/px",
                path, training_pixel_size_nm,
            )
        return True
    ratio = pixel_size_nm / training_pixel_size_nm
    if abs(ratio - 1.0) > PIXEL_SIZE_TOLERANCE:
        logger.warning(
            "%s: pixel size %.4g nm differs from the training pixel size %.4g nm by %+.0f%% "
            "(more than %.0f%%); segmentation may be poor, resample the micrograph to %.4g nm/px",
            path, pixel_size_nm, training_pixel_size_nm, 100 * (ratio - 1),
            100 * PIXEL_SIZE_TOLERANCE, training_pixel_size_nm,
        )
        return False
    return True


def segment_image(
    image: np.ndarray,
    predictor: Predictor,
    *,
    tile_size: int | None = DEFAULT_TILE_SIZE,
    batch_size: int = 1,
    threshold: float = 0.5,
    path: str | os.PathLike | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Preprocesses a raw 2-D micrograph as in training, then ``(probability, mask)``.

    ``probability`` is float32, ``mask`` uint8 0/1 (``probability > threshold``; 0.5 equals the
    argmax the dice metrics use), both of the image's shape. Raises `tem_rf.io.InputError`
    naming ``path`` for images that are smaller than the size divisor, non-finite or constant.
    """
    from tem_rf.data import preprocess_micrograph
    from tem_rf.io import InputError

    image = np.asarray(image)
    if image.ndim != 2:
        raise InputError(path, f"expected a 2-D grey image, got shape {image.shape}")
    divisor = predictor.size_divisor
    if min(image.shape) < divisor:
        raise InputError(
            path,
            f"image is {image.shape[0]}x{image.shape[1]} px, smaller than the network's size "
            f"divisor {divisor} (product of its pool sizes); it cannot be segmented",
        )
    try:
        standardised = preprocess_micrograph(image, xray_threshold=predictor.xray_threshold)
    except ValueError as error:  # NaN/inf or constant image
        raise InputError(path, str(error)) from None
    probability = predict_probability(
        standardised, predictor, tile_size=tile_size, batch_size=batch_size
    )
    return probability, (probability > threshold).astype(np.uint8)


def _write_tiff(target: Path, data: np.ndarray, pixel_size_nm: float | None) -> None:
    """An ImageJ TIFF, carrying the pixel size (nm) so ImageJ and `read_micrograph` see it."""
    import tifffile

    from tem_rf.io_utils import atomic_path

    kwargs: dict[str, Any] = {"imagej": True}
    if pixel_size_nm is not None:
        kwargs |= {"resolution": (1.0 / pixel_size_nm, 1.0 / pixel_size_nm), "metadata": {"unit": "nm"}}
    with atomic_path(target) as tmp:
        tifffile.imwrite(tmp, data, **kwargs)


def write_overlay(
    target: str | os.PathLike,
    image: np.ndarray,
    mask: np.ndarray,
    *,
    max_size: int = OVERLAY_MAX_SIZE,
) -> None:
    """PNG of the micrograph (contrast 0.5-99.5 percentile) with the mask's outlines in red.

    Images larger than ``max_size`` px are shown block-averaged (mask: block max, so small
    particles keep an outline). Outlines are the mask's inner boundary pixels, drawn directly into
    the image: cost is linear in pixels however many particles (or noisy blobs) there are.
    """
    from PIL import Image
    from skimage.segmentation import find_boundaries
    from skimage.transform import downscale_local_mean

    from tem_rf.io_utils import atomic_path

    factor = max(1, math.ceil(max(image.shape) / max_size))
    shown = np.asarray(image, np.float32)
    shown_mask = np.asarray(mask) > 0
    if factor > 1:
        shown = downscale_local_mean(shown, (factor, factor))
        # Block mean > 0 is block max: a particle smaller than a block still gets an outline.
        shown_mask = downscale_local_mean(shown_mask.astype(np.float32), (factor, factor)) > 0
    low, high = np.percentile(shown, (0.5, 99.5))
    grey = np.clip((shown - low) / max(high - low, 1e-12) * 255, 0, 255).astype(np.uint8)
    rgb = np.repeat(grey[:, :, None], 3, axis=2)
    rgb[find_boundaries(shown_mask, mode="inner")] = OVERLAY_COLOUR
    with atomic_path(target) as tmp:
        Image.fromarray(rgb).save(tmp, format="PNG")


@dataclasses.dataclass
class SegmentationResult:
    """What segmenting one micrograph wrote and found."""

    input: str
    shape: tuple[int, int]
    pixel_size_nm: float | None
    particle_fraction: float
    seconds: float
    mask: str
    probability: str | None = None
    overlay: str | None = None
    pixel_size_warning: bool = False


def output_stem(path: str | os.PathLike) -> str:
    """``dir/sample_01.dm4`` -> ``sample_01``: outputs are ``<stem>_mask.tif`` and so on."""
    return Path(path).stem


def segment_file(
    path: str | os.PathLike,
    predictor: Predictor,
    output_dir: str | os.PathLike,
    *,
    tile_size: int | None = DEFAULT_TILE_SIZE,
    batch_size: int = 1,
    threshold: float = 0.5,
    save_probability: bool = False,
    overlay: bool = True,
    overlay_max_size: int = OVERLAY_MAX_SIZE,
) -> SegmentationResult:
    """Reads, segments and writes one micrograph; every output is written atomically.

    Writes ``<stem>_mask.tif`` (uint8, 0 background / `MASK_VALUE` particle), optionally
    ``<stem>_prob.tif`` (float32 particle probability) and ``<stem>_overlay.png``. TIFFs carry
    the micrograph's pixel size. Raises `tem_rf.io.InputError` for unreadable or unusable files.
    """
    from tem_rf.io import read_micrograph

    start = time.perf_counter()
    micrograph = read_micrograph(path)
    ok = check_pixel_size(path, micrograph.pixel_size_nm, predictor.pixel_size_nm)
    probability, mask = segment_image(
        micrograph.data, predictor, tile_size=tile_size, batch_size=batch_size,
        threshold=threshold, path=path,
    )
    output_dir = Path(output_dir)
    stem = output_stem(path)
    mask_path = output_dir / f"{stem}_mask.tif"
    _write_tiff(mask_path, mask * np.uint8(MASK_VALUE), micrograph.pixel_size_nm)
    result = SegmentationResult(
        input=str(path),
        shape=tuple(int(s) for s in mask.shape),
        pixel_size_nm=micrograph.pixel_size_nm,
        particle_fraction=float(mask.mean()),
        seconds=0.0,
        mask=str(mask_path),
        pixel_size_warning=not ok,
    )
    if save_probability:
        result.probability = str(output_dir / f"{stem}_prob.tif")
        _write_tiff(Path(result.probability), probability, micrograph.pixel_size_nm)
    if overlay:
        result.overlay = str(output_dir / f"{stem}_overlay.png")
        write_overlay(result.overlay, micrograph.data, mask, max_size=overlay_max_size)
    result.seconds = time.perf_counter() - start
    return result


def expand_inputs(patterns: Iterable[str]) -> list[Path]:
    """Files named by paths, glob patterns or folders (their micrographs), sorted, unique.

    Raises `tem_rf.io.InputError` for a pattern that matches nothing, and when two inputs would
    write the same output names (same file stem in different folders).
    """
    from tem_rf.io import MICROGRAPH_SUFFIXES, InputError

    found: list[Path] = []
    for pattern in patterns:
        if glob.has_magic(pattern):
            matches = sorted(Path(p) for p in glob.glob(os.path.expanduser(pattern), recursive=True))
            matches = [p for p in matches if p.is_file()]
        elif Path(pattern).expanduser().is_dir():
            folder = Path(pattern).expanduser()
            matches = sorted(
                p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in MICROGRAPH_SUFFIXES
            )
        else:
            matches = [Path(pattern).expanduser()]  # read_micrograph reports a missing file
        if not matches:
            raise InputError(pattern, "matches no micrograph files")
        found.extend(matches)
    unique = list(dict.fromkeys(found))
    stems: dict[str, Path] = {}
    for path in unique:
        other = stems.setdefault(output_stem(path), path)
        if other != path:
            raise InputError(
                path, f"has the same name stem as {other}; their outputs would overwrite each other"
            )
    return unique


def segment_files(
    paths: Sequence[str | os.PathLike],
    predictor: Predictor,
    output_dir: str | os.PathLike,
    *,
    progress: bool = True,
    **options: Any,
) -> tuple[list[SegmentationResult], list[tuple[str, str]]]:
    """Segments every file (`segment_file` options), with a progress bar over files.

    A bad file does not stop the others: returns ``(results, failures)`` where each failure is
    ``(path, message)``; failures are logged as errors as they happen. A ``segmentation.json``
    summary (model, tiling, per-file results and failures) is written to ``output_dir``.
    """
    from tqdm import tqdm

    from tem_rf.io import InputError
    from tem_rf.io_utils import atomic_write_text

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    results: list[SegmentationResult] = []
    failures: list[tuple[str, str]] = []
    for path in tqdm(paths, desc="segmenting", unit="micrograph", disable=not progress):
        try:
            results.append(segment_file(path, predictor, output_dir, **options))
        except InputError as error:
            logger.error("%s", error)
            failures.append((str(path), str(error)))
    summary = {
        "model": predictor.source,
        "architecture": predictor.metadata.get("architecture"),
        "training_pixel_size_nm": predictor.pixel_size_nm,
        "size_divisor": predictor.size_divisor,
        "halo_px": predictor.halo_px,
        "options": {k: v for k, v in options.items()},
        "results": [dataclasses.asdict(r) for r in results],
        "failures": [{"input": p, "error": m} for p, m in failures],
    }
    atomic_write_text(output_dir / "segmentation.json", json.dumps(summary, indent=2) + "\n")
    return results, failures
