"""From a sweep directory to the paper's interpretation figures (``experiments/analyze.py``).

Reads the finished runs of ``SWEEP_DIR/runs/<architecture>/seed<seed>/`` (docs/design.md),
the unaugmented patches of a dataset split, and writes into ``OUT_DIR``:

* ``dice_vs_receptive_field.png`` (+ ``results.csv``), unless the sweep already drew it;
* ``segmentation_overlays.png``: the same patches segmented by networks of growing receptive
  field, receptive fields drawn to scale (paper Fig. 5/6);
* ``pool_vs_dilation.png``: max pooling vs dilation at the closest pair of receptive fields
  (Fig. 8), when the sweep has both families;
* ``fourier_fn_maps.png``, ``fn_overlap.csv``, ``fn_overlap_summary.csv``,
  ``fn_overlap_summary.png``: false negatives of the networks vs Fourier filtering (Fig. 7, S7);
* ``effective_receptive_field.png``, ``erf.csv``, ``erf_profiles.csv``: Fig. S8;
* ``analysis.json``: what was chosen (architectures, seed, patches, band) and every file.

Which networks: by default the pool-family networks with the fewest residual blocks present
(the paper's N = 2), three of them spanning the receptive-field range (smallest, the one
closest to the geometric middle, largest), each at one seed (the smallest seed every one of
them has). Example patches: those on which these networks' dice differ most (most telling).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tem_rf.core.files import write_csv, write_json
from tem_rf.core.locks import output_lock, remove_stale_temporaries
from tem_rf.core.outputs import check_new_files, new_files
from tem_rf.core.progress import progress_bar
from tem_rf.core.units import pixel_size_or_none
from tem_rf.study import false_negatives, fourier, plots
from tem_rf.study.patches import load_patches
from tem_rf.train.rundir import RunDir, find_runs as find_run_dirs

logger = logging.getLogger(__name__)
REFERENCE = "fourier"


@dataclasses.dataclass(frozen=True)
class RunInfo:
    """A finished run of the sweep."""

    architecture: str
    seed: int
    run: RunDir
    num_blocks: int
    pool_sizes: tuple[int, ...]
    dilations: tuple[int, ...]
    receptive_field_px: int
    data_dir: str | None

    @classmethod
    def from_run(cls, run: RunDir) -> RunInfo:
        """Architecture and seed from the sweep layout (``<architecture>/seed<seed>``), the rest
        from the run's config."""
        config = run.config()
        try:
            return cls(
                architecture=run.path.parent.name,
                seed=int(run.path.name.removeprefix("seed")),
                run=run,
                num_blocks=int(config["num_blocks"]),
                pool_sizes=tuple(int(p) for p in config["pool_sizes"]),
                dilations=tuple(int(d) for d in config["dilations"]),
                receptive_field_px=int(config["receptive_field_px"]),
                data_dir=config.get("data_dir"),
            )
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"{run.config_file}: cannot read the run's config ({error})") from None

    @property
    def family(self) -> str:
        """How the receptive field was grown: ``pool`` (no dilation) or ``dilation``."""
        return "pool" if all(d == 1 for d in self.dilations) else "dilation"


def find_runs(sweep_dir: str | os.PathLike) -> list[RunInfo]:
    """Every finished run (``metrics.json`` present) under ``sweep_dir/runs``."""
    sweep_dir = Path(sweep_dir)
    if not (sweep_dir / "runs").is_dir():
        raise ValueError(f"{sweep_dir}: not a sweep directory (no runs/ folder)")
    runs = [RunInfo.from_run(run) for run in find_run_dirs(sweep_dir)]
    if not runs:
        raise ValueError(f"{sweep_dir}: no finished runs (no runs/*/seed*/metrics.json)")
    return runs


def _by_architecture(runs: Sequence[RunInfo]) -> dict[str, list[RunInfo]]:
    grouped: dict[str, list[RunInfo]] = {}
    for run in runs:
        grouped.setdefault(run.architecture, []).append(run)
    return grouped


def choose_series(runs: Sequence[RunInfo], count: int = 3) -> list[str]:
    """Architectures spanning the receptive field: pool family, fewest blocks, ``count`` of them."""
    grouped = _by_architecture(runs)
    pool = [rs[0] for rs in grouped.values() if rs[0].family == "pool"] or [rs[0] for rs in grouped.values()]
    fewest = min(r.num_blocks for r in pool)
    candidates = sorted((r for r in pool if r.num_blocks == fewest), key=lambda r: (r.receptive_field_px, r.architecture))
    if len(candidates) <= count:
        return [r.architecture for r in candidates]
    chosen = [candidates[0], candidates[-1]]
    # Fill in between at evenly spaced log receptive fields.
    logs = np.log([r.receptive_field_px for r in candidates])
    for target in np.linspace(logs[0], logs[-1], count)[1:-1]:
        remaining = [r for r in candidates if r not in chosen]
        chosen.append(min(remaining, key=lambda r: abs(math.log(r.receptive_field_px) - target)))
    return [r.architecture for r in sorted(chosen, key=lambda r: r.receptive_field_px)]


def choose_pool_dilation_pair(runs: Sequence[RunInfo]) -> tuple[str, str] | None:
    """A max-pooling network (pools > 2 somewhere, no dilation) and a dilation network (pools all
    2) with the same number of blocks and the closest receptive fields; None if there is none."""
    heads = [rs[0] for rs in _by_architecture(runs).values()]
    pooled = [r for r in heads if r.family == "pool" and any(p > 2 for p in r.pool_sizes)]
    dilated = [r for r in heads if r.family == "dilation" and all(p == 2 for p in r.pool_sizes)]
    pairs = [(p, d) for p in pooled for d in dilated if p.num_blocks == d.num_blocks]
    if not pairs:
        return None
    pool, dilation = min(
        pairs,
        key=lambda pd: (abs(math.log(pd[0].receptive_field_px / pd[1].receptive_field_px)),
                        -pd[0].receptive_field_px, pd[0].architecture, pd[1].architecture),
    )
    return pool.architecture, dilation.architecture


def common_seed(runs: Sequence[RunInfo], architectures: Sequence[str], seed: int | None = None) -> dict[str, RunInfo]:
    """One run per architecture: ``seed`` if given, else the smallest seed all of them have
    (falling back to each one's smallest seed)."""
    grouped = _by_architecture(runs)
    missing = [a for a in architectures if a not in grouped]
    if missing:
        raise ValueError(f"no finished runs for {', '.join(missing)}; have {', '.join(sorted(grouped))}")
    seeds = [{r.seed: r for r in grouped[a]} for a in architectures]
    if seed is not None:
        lacking = [a for a, s in zip(architectures, seeds) if seed not in s]
        if lacking:
            raise ValueError(f"seed {seed} is not finished for {', '.join(lacking)}")
        return {a: s[seed] for a, s in zip(architectures, seeds)}
    shared = set.intersection(*(set(s) for s in seeds)) if seeds else set()
    if shared:
        chosen = min(shared)
        return {a: s[chosen] for a, s in zip(architectures, seeds)}
    return {a: s[min(s)] for a, s in zip(architectures, seeds)}


def choose_examples(labels: np.ndarray, masks: Sequence[np.ndarray], count: int) -> list[int]:
    """Patches where the networks' hard dice differ most (ties: more particle pixels first)."""
    from tem_rf.metrics import dice

    truth = labels == 1
    spread = []
    for index in range(len(labels)):
        scores = [dice(m[index], truth[index]) for m in masks]
        spread.append((-(max(scores) - min(scores)) if scores else 0.0, -int(truth[index].sum()), index))
    return [index for _, _, index in sorted(spread)[:count]]


def analysis_files() -> list[str]:
    """Every file `analyze_sweep` may write into its folder (some only for some sweeps)."""
    from tem_rf.study import sweep as sweep_lib

    return ["results.csv", sweep_lib.FIGURE, "segmentation_overlays.png", "pool_vs_dilation.png",
            "fn_overlap.csv", "fn_overlap_summary.csv", "fourier_fn_maps.png", "fn_overlap_summary.png",
            "effective_receptive_field.png", "erf.csv", "erf_profiles.csv", "analysis.json"]


def analyze_sweep(
    sweep_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    data_dir: str | os.PathLike | None = None,
    split: str = "test",
    architectures: Sequence[str] | None = None,
    seed: int | None = None,
    weights: str = "best",
    num_examples: int = 3,
    example_indices: Sequence[int] | None = None,
    max_patches: int | None = None,
    erf_images: int = 8,
    band: fourier.FourierBand | None = None,
    band_options: dict[str, Any] | None = None,
    pixel_size_nm: float | None = None,
    redraw_dice_vs_rf: bool = False,
    batch_size: int = 4,
    overwrite: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """Writes the analysis figures and tables of a sweep into ``out_dir``; returns analysis.json
    (``progress``: a progress bar over the networks that segment the patches).

    The files (`analysis_files`) are one result: an existing one is replaced only with
    ``overwrite`` (then the whole previous analysis is), and a failure leaves ``out_dir`` as it was.

    ``band`` (or ``band_options`` for ``fourier.resolve_band``: band_px, band_nm_inv,
    lattice_spacings_nm, relative_width) sets the Fourier filter's annulus; by default it is read
    from the patches' radial power spectrum.
    """
    from tem_rf.study import sweep as sweep_lib
    from tem_rf.data import read_dataset_info

    sweep_dir, out_dir = Path(sweep_dir), Path(out_dir)
    runs = find_runs(sweep_dir)
    # Choose (and check) the networks before any slow work.
    series = list(architectures) if architectures else choose_series(runs)
    pair = choose_pool_dilation_pair(runs)
    needed = list(dict.fromkeys(series + (list(pair) if pair else [])))
    chosen_runs = common_seed(runs, needed, seed)
    if data_dir is None:
        known = sorted({r.data_dir for r in runs if r.data_dir})
        if not known:
            raise ValueError(f"{sweep_dir}: the runs' config.json name no data_dir; give --data_dir")
        if len(known) > 1:
            raise ValueError(f"{sweep_dir}: runs were trained on several datasets ({', '.join(known)}); give --data_dir")
        data_dir = known[0]
    info = read_dataset_info(data_dir)
    pixel_size = pixel_size_or_none(pixel_size_nm if pixel_size_nm is not None else info.get("pixel_size_nm"))
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"{out_dir}: is a file, not a folder (--out_dir)")
    check_new_files([out_dir / name for name in analysis_files()], overwrite)
    # One writer per output folder (a second analysis into it is refused at once); under the lock
    # a killed run's temporaries go.
    with output_lock(out_dir):
        remove_stale_temporaries([out_dir / name for name in analysis_files()])
        check_new_files([out_dir / name for name in analysis_files()], overwrite)
        # TensorFlow only now, once the input is known to be usable.
        from tem_rf.study import erf as erf_lib

        # Data: the unaugmented patches of the split; example indices checked before any output.
        patches = load_patches(data_dir, split, max_patches=max_patches)
        if example_indices:
            bad = [i for i in example_indices if not 0 <= i < len(patches.images)]
            if bad:
                raise ValueError(f"example indices {bad} are outside the {len(patches.images)} patches")

        # Every file of the analysis is written as one result: none replaces a file without
        # overwrite, and a failure half-way leaves the folder as it was.
        with new_files([out_dir / name for name in analysis_files()], overwrite=overwrite) as temporary:

            def staged(name: str) -> Path:
                return temporary[out_dir / name]

            outputs: dict[str, str] = {}
            report: dict[str, Any] = {"sweep_dir": str(sweep_dir), "split": split, "outputs": outputs}

            # Dice vs receptive field: the sweep's own figure when it exists.
            existing = sweep_dir / sweep_lib.FIGURE
            if existing.exists() and not redraw_dice_vs_rf:
                outputs["dice_vs_receptive_field"] = str(existing)
            else:
                rows = sweep_lib.aggregate(sweep_dir)
                write_csv(staged("results.csv"), rows)
                sweep_lib.plot_dice_vs_receptive_field(rows, staged(sweep_lib.FIGURE))
                outputs["results_csv"] = str(out_dir / "results.csv")
                outputs["dice_vs_receptive_field"] = str(out_dir / sweep_lib.FIGURE)

            report |= {"data_dir": str(data_dir), "patches": len(patches.images), "pixel_size_nm": pixel_size}

            # Networks.
            report["architectures"] = series
            report["pool_vs_dilation"] = list(pair) if pair else None
            report["runs"] = {a: str(info.run.path) for a, info in chosen_runs.items()}
            masks: dict[str, np.ndarray] = {}
            models = {}
            for name, info in progress_bar(chosen_runs.items(), desc="networks", total=len(chosen_runs),
                                           unit="network", enabled=progress):
                logger.info("predicting with %s", info.run.path)
                models[name] = info.run.load_model(weights)
                masks[name] = false_negatives.predict_masks(models[name], patches.images, batch_size=batch_size)
            rf_px = {name: run.receptive_field_px for name, run in chosen_runs.items()}

            # Fourier filter.
            if band is None:
                options = dict(band_options or {})
                if not any(options.get(k) for k in ("band_px", "band_nm_inv", "lattice_spacings_nm")):
                    options["images"] = fourier.radial_spectrum(patches.images)
                band = fourier.resolve_band(pixel_size_nm=pixel_size, fft_size=patches.images.shape[-1], **options)
            masks[REFERENCE] = fourier.segment(patches.images, band)
            report["fourier_band_cycles_per_px"] = [band.low, band.high]
            report["fourier_band_nm_inv"] = list(band.nm_inv(pixel_size)) if pixel_size else None

            # Examples for the figures.
            if example_indices:
                examples = list(example_indices)
            else:
                examples = choose_examples(patches.labels, [masks[a] for a in series], num_examples)
            report["example_patches"] = [{"index": i} | patches.info[i] for i in examples]
            ex_images, ex_labels = patches.images[examples], patches.labels[examples]

            def method(name: str, subset: list[int] | None = examples) -> plots.Method:
                selected = masks[name] if subset is None else masks[name][subset]
                return plots.Method(name, selected, rf_px.get(name))

            plots.plot_segmentation_overlays(
                ex_images, ex_labels, [method(a) for a in series], staged("segmentation_overlays.png"),
                pixel_size_nm=pixel_size, title=f"Segmentations of the same {split} patches, growing receptive field",
            )
            outputs["segmentation_overlays"] = str(out_dir / "segmentation_overlays.png")
            if pair:
                pair_examples = examples
                if not example_indices:
                    pair_examples = choose_examples(patches.labels, [masks[pair[0]], masks[pair[1]]], num_examples)
                plots.plot_pool_vs_dilation(
                    patches.images[pair_examples], patches.labels[pair_examples],
                    method(pair[0], pair_examples), method(pair[1], pair_examples),
                    staged("pool_vs_dilation.png"), pixel_size_nm=pixel_size,
                    zoom_px=max(32, patches.images.shape[-1] // 4),
                )
                outputs["pool_vs_dilation"] = str(out_dir / "pool_vs_dilation.png")
            else:
                logger.warning("no max-pooling/dilation pair with the same N in the sweep: "
                               "pool_vs_dilation.png skipped")

            # False negatives vs Fourier filtering.
            compared = {REFERENCE: masks[REFERENCE]} | {a: masks[a] for a in series}
            fn_rows = false_negatives.compare_false_negatives(patches.labels, compared, REFERENCE, patches.info)
            for row in fn_rows:
                row["receptive_field_px"] = rf_px.get(row["method"])
                known = pixel_size and row["method"] in rf_px
                row["receptive_field_nm"] = rf_px[row["method"]] * pixel_size if known else None
            fn_summary = false_negatives.summarize_fn_overlap(fn_rows, REFERENCE)
            for row in fn_summary:
                row["receptive_field_px"] = rf_px.get(row["method"])
                known = pixel_size and row["method"] in rf_px
                row["receptive_field_nm"] = rf_px[row["method"]] * pixel_size if known else None
            write_csv(staged("fn_overlap.csv"), fn_rows)
            write_csv(staged("fn_overlap_summary.csv"), fn_summary)
            plots.plot_false_negative_maps(
                ex_images, ex_labels, [method(REFERENCE)] + [method(a) for a in series],
                staged("fourier_fn_maps.png"), reference=REFERENCE, pixel_size_nm=pixel_size,
            )
            labels_for = {a: f"{a}\n{plots.rf_label(rf_px[a], pixel_size)}" for a in series}
            plots.plot_fn_overlap_summary(fn_rows, fn_summary, staged("fn_overlap_summary.png"),
                                          reference=REFERENCE, method_labels=labels_for)
            outputs |= {
                "fn_overlap_csv": str(out_dir / "fn_overlap.csv"),
                "fn_overlap_summary_csv": str(out_dir / "fn_overlap_summary.csv"),
                "fourier_fn_maps": str(out_dir / "fourier_fn_maps.png"),
                "fn_overlap_summary": str(out_dir / "fn_overlap_summary.png"),
            }
            report["fn_overlap_summary"] = fn_summary

            # Effective receptive fields at the patch centre, averaged over the first erf_images patches.
            erf_rows, profile_rows, erfs = [], [], []
            erf_set = patches.images[: max(1, erf_images)]
            for name in series:
                field = erf_lib.effective_receptive_field(models[name], erf_set, batch_size=batch_size)
                if field.window.clipped:
                    logger.warning(
                        "%s: the theoretical window does not fit in a %dx%d patch; its effective receptive "
                        "field is clipped (radius_95 underestimates)", name, *erf_set.shape[1:3],
                    )
                erfs.append((name, field))
                erf_rows.append(
                    {
                        "architecture": name,
                        "receptive_field_px": field.theoretical_rf_px,
                        "receptive_field_nm": field.theoretical_rf_px * pixel_size if pixel_size else None,
                        "window_height_px": field.window.height,
                        "window_width_px": field.window.width,
                        "window_clipped": field.window.clipped,
                        "radius_95_px": field.radius_95,
                        "radius_95_nm": field.radius_95 * pixel_size if pixel_size else None,
                        "radius_95_over_half_rf": field.radius_95 / (field.theoretical_rf_px / 2),
                        "images": field.num_images,
                    }
                )
                for radius, value, cumulative in zip(field.radius, field.profile, field.cumulative):
                    profile_rows.append(
                        {"architecture": name, "radius_px": int(radius),
                         "radius_nm": radius * pixel_size if pixel_size else None,
                         "mean_abs_gradient": float(value), "cumulative_fraction": float(cumulative)}
                    )
            plots.plot_effective_receptive_fields(erfs, staged("effective_receptive_field.png"),
                                                  pixel_size_nm=pixel_size)
            write_csv(staged("erf.csv"), erf_rows)
            write_csv(staged("erf_profiles.csv"), profile_rows)
            outputs |= {
                "effective_receptive_field": str(out_dir / "effective_receptive_field.png"),
                "erf_csv": str(out_dir / "erf.csv"),
                "erf_profiles_csv": str(out_dir / "erf_profiles.csv"),
            }
            report["erf"] = erf_rows
            outputs["analysis_json"] = str(out_dir / "analysis.json")
            write_json(staged("analysis.json"), report, default=str)
        return report


def report_lines(report: dict[str, Any]) -> list[str]:
    """What `analyze_sweep`'s report says, for a terminal: the patches and networks, each
    network's false-negative overlap with Fourier filtering and its effective receptive field,
    then every file written."""
    lines = [f"analysed {report['patches']} {report['split']} patches of {report['data_dir']} "
             f"with {', '.join(report['architectures'])}"]
    for summary in report["fn_overlap_summary"]:
        if summary["method"] != REFERENCE:
            lines.append(
                f"  {summary['method']}: hard dice {summary['hard_dice_mean']:.3f}, FN overlap with "
                f"Fourier filtering {summary['fn_overlap_fourier_mean']:.3f} (the most similar to "
                f"Fourier's false negatives on {summary['closest_count']} of "
                f"{summary['images_compared']} patches)"
            )
    for row in report["erf"]:
        clipped = ", window clipped by the patch" if row["window_clipped"] else ""
        lines.append(f"  {row['architecture']}: 95 % of the input gradient within "
                     f"{row['radius_95_px']:.0f} px (RF {row['receptive_field_px']} px{clipped})")
    return lines + [f"{name}: {path}" for name, path in report["outputs"].items()]
