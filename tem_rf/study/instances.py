"""Particle instances scored against instance ground truth, for a network or the Fourier baseline.

`measure_instances` is ``experiments/measure.py``: whole micrographs and their instance-id masks
(0 background, 1..n particles, as EMPS ships them; a binary mask is split into its 8-connected
components: `tem_rf.data.instance_masks.read_instance_labels`) are matched with
`tem_rf.data.dataset.match_masks`; each micrograph is segmented by a network
(`tem_rf.serve.segment.segment_maps`, the same tiling and preprocessing as ``segment``) or by the
Fourier filter (`tem_rf.study.fourier.fourier_filter` on the preprocessed micrograph), its
particles found as ``segment`` finds them (`tem_rf.particles.measure_particles`: from the learned
interiors for a boundary-target network) and scored: the pixel dice of the mask (paper Eq. 2,
pooled over pixels), and with `tem_rf.particles.score_instances` instance precision / recall / F1 at IoU >= 0.5, mean
matched IoU, count error, median diameter error (nm and %) and the two-sample KS statistic of
the diameter distributions (particles touching the image edge left out of the diameters). The
images are pooled with `tem_rf.particles.pool_scores`.

Outputs (``out_dir``): ``instances.csv`` (one row per micrograph) and ``instances.json`` (method,
model or band, options, pooled scores, per-image rows), written atomically once every micrograph
is scored: a bad pair (no mask, a shape mismatch, an unreadable file) stops the run with one
`InputError` naming it, and nothing is written. Existing outputs are replaced only with
``overwrite``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tem_rf.core.errors import InputError
from tem_rf.core.cli import option
from tem_rf.serve.options import MicrographOptions

logger = logging.getLogger(__name__)

METHODS = ("network", "fourier")
CSV_FILE = "instances.csv"
JSON_FILE = "instances.json"
# Per-image CSV columns, in order (the scores of `tem_rf.particles.score_instances`).
SCORE_COLUMNS = (
    "pixel_dice", "predicted_count", "true_count", "matched", "false_positives", "false_negatives", "precision",
    "recall", "f1", "mean_matched_iou", "count_error", "count_error_percent", "diameter_unit",
    "predicted_median_diameter", "true_median_diameter", "median_diameter_error",
    "median_diameter_error_percent", "ks_statistic",
)


@dataclasses.dataclass(frozen=True)
class MeasureOptions(MicrographOptions):
    """`tem_rf.serve.options.MicrographOptions` plus how ``measure`` segments and scores."""

    method: str = option("network", "What segments the micrographs: the network of --model, or the Fourier filter.",
                         choices=METHODS)
    iou_threshold: float = option(0.5, "A predicted and a true particle match at this IoU or more.")
    include_edge: bool = option(False, "Keep edge particles in the diameter distributions.")


@dataclasses.dataclass
class InstanceRun:
    """What `measure_instances` scored and wrote."""

    method: str
    description: str  # the model's line, or the Fourier settings
    rows: list[dict[str, Any]]  # per image: image, mask, pixel size, scores, seconds
    pooled: dict[str, Any]
    csv: Path
    json: Path

    def table_lines(self) -> list[str]:
        """A short table: one line per micrograph, then the pooled scores."""

        def fmt(value: Any, spec: str = ".3f") -> str:
            return "-" if value is None else format(value, spec)

        unit = self.pooled.get("diameter_unit", "nm")
        header = (f"{'micrograph':<28}{'dice':>7}{'true':>6}{'found':>7}{'P':>7}{'R':>7}{'F1':>7}{'IoU':>7}"
                  f"{'median d ' + unit:>13}{'(true)':>8}{'err %':>8}{'KS':>7}")
        lines = [header, "-" * len(header)]
        for row in [*self.rows, {"image": "pooled", **self.pooled}]:
            lines.append(
                f"{Path(str(row['image'])).name[:27]:<28}{fmt(row.get('pixel_dice')):>7}{row['true_count']:>6}"
                f"{row['predicted_count']:>7}"
                f"{fmt(row['precision']):>7}{fmt(row['recall']):>7}{fmt(row['f1']):>7}"
                f"{fmt(row['mean_matched_iou']):>7}{fmt(row['predicted_median_diameter'], '.3g'):>13}"
                f"{fmt(row['true_median_diameter'], '.3g'):>8}{fmt(row['median_diameter_error_percent'], '+.1f'):>8}"
                f"{fmt(row['ks_statistic']):>7}"
            )
        return lines


def _check_out_dir(out_dir: Path, overwrite: bool) -> tuple[Path, Path]:
    from tem_rf.core.outputs import blocking_file

    blocking = blocking_file(out_dir)
    if blocking is not None:
        raise InputError(blocking, "is a file, not a folder (--out_dir)")
    outputs = (out_dir / CSV_FILE, out_dir / JSON_FILE)
    existing = [p.name for p in outputs if p.exists() or p.is_symlink()]
    if existing and not overwrite:
        raise InputError(out_dir, f"already holds {' and '.join(existing)}; pass --overwrite to replace them, "
                                  "or choose another --out_dir")
    return outputs


@dataclasses.dataclass(frozen=True)
class FourierOptions:
    """The Fourier baseline's band and filter settings (as ``experiments/fourier_baseline.py``)."""

    band_px: tuple[float, float] | None = None  # radii in FFT pixels of a band_fft_size FFT
    band_fft_size: int | None = None  # default: each micrograph's smaller side
    band_nm_inv: tuple[float, float] | None = None
    lattice_spacings_nm: tuple[float, ...] | None = None
    relative_width: float = 0.1
    sigma_px: float = 9.0
    min_contrast: float = 1.25
    noise_floor: float = 1.5

    def band(self, image: np.ndarray, pixel_size_nm: float | None):
        from tem_rf.study.fourier import resolve_band

        return resolve_band(
            band_px=self.band_px, band_nm_inv=self.band_nm_inv, lattice_spacings_nm=self.lattice_spacings_nm,
            relative_width=self.relative_width, pixel_size_nm=pixel_size_nm,
            fft_size=self.band_fft_size or min(image.shape), images=image,
        )

    def describe(self) -> str:
        given = ("band_px" if self.band_px else "band_nm_inv" if self.band_nm_inv
                 else "lattice_spacings_nm" if self.lattice_spacings_nm else None)
        band = f"{given}={getattr(self, given)}" if given else "band from each micrograph's power spectrum"
        return (f"Fourier filter: {band}, sigma {self.sigma_px:g} px, min contrast {self.min_contrast:g}, "
                f"noise floor {self.noise_floor:g}")


def _fourier_mask(image: np.ndarray, pixel_size_nm: float | None, options: FourierOptions, path: Path):
    from tem_rf.data import preprocess_micrograph
    from tem_rf.study.fourier import fourier_filter

    try:
        standardised = preprocess_micrograph(image)
        band = options.band(standardised, pixel_size_nm)
        result = fourier_filter(standardised, band, sigma_px=options.sigma_px,
                                min_contrast=options.min_contrast, noise_floor=options.noise_floor)
    except InputError:
        raise
    except ValueError as error:  # NaN or constant image, a band it cannot have
        raise InputError(path, str(error)) from None
    return result.mask, None, {"band_cycles_per_px": [band.low, band.high]}


def split_pairs(data_dir: str | os.PathLike, split: str = "test") -> list[tuple[Path, Path]]:
    """(micrograph, mask) paths of a dataset's ``split``, as dataset.json records them; a file
    moved or deleted since the dataset was built is refused naming it."""
    from tem_rf.data.dataset_info import DATASET_JSON, read_dataset_info

    info = read_dataset_info(data_dir)
    names = set(info["splits"][split].get("sources", []))
    pairs = []
    for source in info.get("sources", []):
        if source.get("image") in names:
            image, mask = Path(source["image_path"]), Path(source["mask_path"])
            for path in (image, mask):
                if not path.is_file():
                    raise InputError(Path(data_dir) / DATASET_JSON, f"lists {path} ({split} split), which no longer exists")
            pairs.append((image, mask))
    return pairs


def measure_instances(
    images: str | os.PathLike | None,
    labels: str | os.PathLike | None,
    out_dir: str | os.PathLike,
    *,
    pairs: Sequence[tuple[Path, Path]] | None = None,
    method: str = "network",
    model: str | os.PathLike | None = None,
    predictor: Any = None,
    fourier: FourierOptions | None = None,
    tile_size: int | None = 1024,
    batch_size: int = 1,
    threshold: float = 0.5,
    min_particle_area_nm2: float | None = None,
    min_particle_area_px: float | None = None,
    pixel_size_nm: float | None = None,
    override_pixel_size: bool = False,
    resample: str = "auto",
    rescale: str = "never",
    info_bar: str = "auto",
    exclude_regions: str | Sequence[str] | None = None,
    iou_threshold: float = 0.5,
    include_edge: bool = False,
    overwrite: bool = False,
    progress: bool = False,
    on_ready: Callable[[str], Any] | None = None,
) -> InstanceRun:
    """Segments every micrograph of ``images`` (folder, glob or file), finds its particles and
    scores them against its instance mask in ``labels``; writes ``instances.csv`` and
    ``instances.json`` to ``out_dir`` (module docstring). ``pairs`` of (micrograph, mask) paths
    replace ``images`` and ``labels`` (a dataset's test split, `split_pairs`).

    ``method``: ``network`` (``model``: SavedModel, run directory or ``.keras``, or a ready
    ``predictor``) or ``fourier`` (``fourier``: the band and filter settings). ``pixel_size_nm``
    is used for micrographs whose file records none; diameters are in nm when every micrograph
    has a pixel size, else in px. The network sees each micrograph at its training pixel size
    (``resample``: ``"auto"`` or ``"never"``, `tem_rf.serve.scale`), or, trained without one, with
    its particles at the trained sizes in px (``rescale``). ``include_edge`` keeps particles touching the image edge in the
    diameter distributions. ``info_bar`` and ``exclude_regions`` leave out what is not sample
    (`tem_rf.data.burned_in`), as ``segment`` does. ``on_ready`` gets a one-line description of the method before the
    first micrograph. Raises `tem_rf.data.reading.InputError` (or
    `tem_rf.train.rundir.ModelLoadError`) for bad input, before anything is written.
    """
    from tem_rf.core.files import json_safe, os_error_text, write_csv, write_json
    from tem_rf.core.locks import output_lock, remove_stale_temporaries
    from tem_rf.core.outputs import new_files
    from tem_rf.core.progress import progress_bar
    from tem_rf.data.source_files import find_image_files, match_masks
    from tem_rf.data.instance_masks import read_instance_labels
    from tem_rf.data.reading import read_micrograph
    from tem_rf.metrics.dice import dice_from_counts
    from tem_rf.particles import measure_particles, pool_scores, score_instances
    from tem_rf.serve.scale import check_scale_options, micrograph_pixel_size, plan_scale, trained_min_area_px
    from tem_rf.data.burned_in import find_info_bar, parse_regions
    from tem_rf.serve.options import check_burned_in_options, min_particle_area
    from tem_rf.serve.segment import (
        PixelMaps, check_not_a_mask, check_threshold, leave_out, segment_sample, trained_particles,
    )
    from tem_rf.serve.segment_command import describe_predictor, frozen_heap

    if method not in METHODS:
        raise InputError(None, f"--method must be one of {', '.join(METHODS)}, got {method!r}")
    if not 0.0 < iou_threshold <= 1.0:
        raise InputError(None, f"--iou_threshold must lie in (0, 1], got {iou_threshold}")
    threshold = check_threshold(threshold)
    check_scale_options(pixel_size_nm, resample, rescale, override_pixel_size)
    check_burned_in_options({"info_bar": info_bar, "exclude_regions": exclude_regions})
    min_particle_area(None, None if min_particle_area_nm2 is None else 1.0, min_particle_area_nm2,
                       min_particle_area_px)  # option mistakes, before anything is read
    out_dir = Path(out_dir)
    _check_out_dir(out_dir, overwrite)  # a file in the way is named before the lock is made
    # One writer per output folder (a second measure into it is refused at once); under the lock
    # a killed run's temporaries go.
    with output_lock(out_dir):
        csv_path, json_path = _check_out_dir(out_dir, overwrite)
        remove_stale_temporaries([csv_path, json_path])
        pairs = list(pairs) if pairs is not None else match_masks(find_image_files(images), labels)
        if method == "network":
            if predictor is None:
                if model is None:
                    raise InputError(None, "--model is needed with --method=network (or use --method=fourier)")
                from tem_rf.serve.predictor import load_predictor

                predictor = load_predictor(model)
            description = describe_predictor(predictor)
        else:
            fourier = fourier or FourierOptions()
            if model is not None:
                logger.warning("--model %s is not used by --method=fourier", model)
            description = fourier.describe()
        if on_ready is not None:
            on_ready(description)

        scored = []
        with frozen_heap():  # a loaded model's objects stay out of full garbage collections
            for image_path, mask_path in progress_bar(pairs, desc="measuring", unit="micrograph", enabled=progress):
                start = time.perf_counter()
                micrograph = read_micrograph(image_path)
                check_not_a_mask(image_path, micrograph.data)
                true = read_instance_labels(mask_path)
                if true.shape != micrograph.data.shape:
                    raise InputError(
                        mask_path, f"is {true.shape[0]}x{true.shape[1]} px, but its micrograph {image_path.name} is "
                        f"{micrograph.data.shape[0]}x{micrograph.data.shape[1]} px"
                    )
                pixel_size, source = micrograph_pixel_size(image_path, micrograph.pixel_size_nm, pixel_size_nm,
                                                           override_pixel_size)
                min_area = min_particle_area(image_path, pixel_size, min_particle_area_nm2, min_particle_area_px)
                extra: dict[str, Any] = {}
                if method == "network":  # at the network's training pixel size (`tem_rf.serve.scale`)
                    def plan_for(shape, image_path=image_path, pixel_size=pixel_size, source=source):
                        return plan_scale(image_path, shape, pixel_size, source, predictor.pixel_size_nm, resample,
                                          predictor.particle_diameter_px)

                    maps, plan, excluded, record = segment_sample(
                        micrograph.data, predictor, plan_for, info_bar=info_bar, exclude_regions=exclude_regions,
                        rescale=rescale, tile_size=tile_size, batch_size=batch_size, threshold=threshold,
                        path=image_path)
                    extra = {"resample_factor": plan.factor}
                    if pixel_size is None and min_particle_area_nm2 is None and min_particle_area_px is None:
                        min_area = trained_min_area_px(trained_particles(predictor), plan.factor) or min_area
                else:  # the filter works on the whole micrograph; what is not sample is left out after
                    mask, probability, extra = _fourier_mask(micrograph.data, pixel_size, fourier, image_path)
                    maps, excluded, record = leave_out(PixelMaps(probability, mask),
                                                       find_info_bar(micrograph.data, info_bar),
                                                       parse_regions(exclude_regions))
                mask = maps.mask
                extra["excluded_pixels"] = record["pixels"]
                _, predicted = measure_particles(mask, pixel_size, probability=maps.probability, boundary=maps.boundary,
                                                 instance_rule=maps.rule, exclude=excluded, min_area_px=min_area,
                                                 return_labels=True)
                # the pixel overlap of the segmentation itself (paper Eq. 2), before particles are found
                counts = (int(np.count_nonzero(mask.astype(bool) & (true > 0))), int(np.count_nonzero(mask)),
                          int(np.count_nonzero(true)))
                extra = {**extra, "pixel_counts": counts}
                scored.append((image_path, mask_path, pixel_size, predicted, true, extra, time.perf_counter() - start))

        known = all(item[2] is not None for item in scored)
        if not known and any(item[2] is not None for item in scored):
            logger.warning("some micrographs have no pixel size: every diameter is compared in px")
        rows, scores, pixel_totals = [], [], [0, 0, 0]
        for image_path, mask_path, pixel_size, predicted, true, extra, seconds in scored:
            score = score_instances(predicted, true, pixel_size if known else None, iou_threshold=iou_threshold,
                                    exclude_edge=not include_edge, return_samples=True)
            counts = extra.pop("pixel_counts")
            score["pixel_dice"] = dice_from_counts(*counts)
            pixel_totals = [a + b for a, b in zip(pixel_totals, counts)]
            scores.append(score)
            rows.append({
                "image": str(image_path), "mask": str(mask_path), "pixel_size_nm": pixel_size,
                **{column: score[column] for column in SCORE_COLUMNS}, **extra, "seconds": round(seconds, 3),
            })
        pooled = {"pixel_dice": dice_from_counts(*pixel_totals), **pool_scores(scores)}  # dice pooled over pixels
        summary = {
            "method": method,
            "description": description,
            "model": None if method != "network" else getattr(predictor, "source", None),
            "fourier": dataclasses.asdict(fourier) if method == "fourier" else None,
            "images": str(images),
            "labels": str(labels),
            "options": {
                "tile_size": tile_size, "batch_size": batch_size, "threshold": threshold,
                "min_particle_area_nm2": min_particle_area_nm2, "min_particle_area_px": min_particle_area_px,
                "pixel_size_nm": pixel_size_nm, "iou_threshold": iou_threshold, "include_edge": include_edge,
                "info_bar": info_bar, "exclude_regions": exclude_regions,
            },
            "pooled": pooled,
            "per_image": rows,
        }
        try:  # the two files are one result: a full disk leaves the previous pair (or nothing)
            with new_files((csv_path, json_path), overwrite=overwrite) as temporary:
                write_csv(temporary[csv_path], [{k: (v if not isinstance(v, list) else " ".join(map(str, v)))
                                                 for k, v in row.items()} for row in rows])
                write_json(temporary[json_path], json_safe(summary))
        except OSError as error:
            raise InputError(out_dir, f"cannot write the results: {os_error_text(error)}") from None
        return InstanceRun(method, description, rows, pooled, csv_path, json_path)


__all__ = ["FourierOptions", "InstanceRun", "METHODS", "MeasureOptions", "measure_instances", "split_pairs"]
