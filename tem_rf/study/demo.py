"""The whole study in miniature on built-in synthetic data: no download, minutes on a laptop.

demo data -> TFRecords -> a small receptive-field sweep -> test dice and the dice-vs-RF plot ->
SavedModel export of the best network -> segmentation of a new, larger micrograph, its particles
counted and measured, against the particles the demo drew (`particle_report`).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class DemoConfig:
    """Sizes of the demo; the defaults finish in a few minutes on 2 CPU cores."""

    out_dir: str
    kind: str = "high_res"
    num_images: int = 10
    image_size: int = 256
    pixel_size_nm: float = 0.05
    patch_size: int = 128
    min_particle_pixels: int = 400
    pools: tuple[tuple[int, ...], ...] = ((2, 2), (4, 4))
    dilations: tuple[tuple[int, ...], ...] = ()
    seeds: tuple[int, ...] = (752, 2245)
    epochs: int = 8
    batch_size: int = 8
    learning_rate: float = 1e-3
    segment_size: int = 768
    seed: int = 0
    overwrite: bool = False


def run_demo(config: DemoConfig, progress: bool = True) -> dict[str, Any]:
    """Runs every stage; returns (and writes to ``summary.json``) where each result is."""
    from tem_rf import serve as export
    from tem_rf import serve as inference
    from tem_rf.study import sweep
    from tem_rf.data import synthetic
    from tem_rf.data import dataset as dataset_lib
    from tem_rf.core.files import write_json

    out = Path(config.out_dir)
    if out.exists() and any(out.iterdir()) and not config.overwrite:
        if not (out / "summary.json").exists() and not (out / "raw").exists():
            raise ValueError(f"{out} exists and is not a demo output folder; choose another --out_dir")
    timings: dict[str, float] = {}

    def stage(name: str):
        timings[name] = time.perf_counter()
        logger.info("demo: %s", name)

    stage("data")
    raw = out / "raw"
    if not (raw / "demo.json").exists() or config.overwrite:
        synthetic.write_demo_dataset(
            raw, config.num_images, config.image_size, config.kind, config.seed,
            pixel_size_nm=config.pixel_size_nm, overwrite=True,
        )
    data_dir = out / "data"
    if not (data_dir / "dataset.json").exists() or config.overwrite:
        pairs = dataset_lib.match_masks(dataset_lib.find_image_files(raw / "images"), raw / "labels")
        dataset_lib.build_dataset(
            pairs, data_dir, patch_size=config.patch_size, min_particle_pixels=config.min_particle_pixels,
            seed=config.seed, num_shards=2, overwrite=True, progress=progress,
        )

    stage("sweep")
    architectures = [sweep.Architecture(len(p), tuple(p), (1,) * (len(p) + 1)) for p in config.pools]
    architectures += sweep.dilation_grid(config.dilations, 2, 2) if config.dilations else []
    runs = sweep.plan(architectures, config.seeds)
    base = dict(
        data_dir=str(data_dir), epochs=config.epochs, batch_size=config.batch_size,
        learning_rate=config.learning_rate, precision="auto", strategy="auto",
    )
    sweep_dir = out / "sweep"
    sweep.write_sweep_file(sweep_dir, runs, base)
    sweep.run_sweep(sweep_dir, runs, base, progress=progress)
    rows = sweep.aggregate(sweep_dir)
    results = sweep.write_results(sweep_dir, rows)

    stage("export")
    best = sweep.best_row(rows)
    best_run = next(r.run_dir(sweep_dir) for r in runs if r.architecture.name == best["architecture"])
    export_dir = out / "export" / best["architecture"]
    export.export_run(best_run, export_dir, overwrite=True)  # the demo replaces its own earlier export

    stage("segment")
    new_micrograph = out / "new_micrograph"
    if not (new_micrograph / "demo.json").exists() or config.overwrite:
        synthetic.write_demo_dataset(
            new_micrograph, 1, config.segment_size, config.kind, config.seed + 1000,
            pixel_size_nm=config.pixel_size_nm, overwrite=True,
        )
    segmentation_dir = out / "segmentation"
    predictor = export.load_predictor(export_dir)
    images = dataset_lib.find_image_files(new_micrograph / "images")
    seg_results, failures = inference.segment_files(images, predictor, segmentation_dir, progress=progress)
    if failures:
        raise RuntimeError(f"segmentation failed: {failures}")
    particles = particle_report(seg_results[0], new_micrograph)
    timings["end"] = time.perf_counter()

    names = list(timings)
    seconds = {name: round(timings[after] - timings[name], 1) for name, after in zip(names, names[1:])}
    summary = {
        "dataset": str(data_dir),
        "sweep": str(sweep_dir),
        "results_csv": str(results["csv"]),
        "figure": str(results["figure"]),
        "best_architecture": best["architecture"],
        "lightest_within_one_std": sweep.lightest_within_one_std(rows)["architecture"],
        "architectures": rows,
        "saved_model": str(export_dir),
        "segmentation": str(segmentation_dir),
        "particles": particles,
        "seconds": seconds,
    }
    write_json(out / "summary.json", summary)
    return summary


def particle_report(result: Any, new_micrograph: Path) -> dict[str, Any]:
    """The segmented new micrograph's particles against those the demo drew in it.

    Measured: ``count`` (all particles), ``count_measured`` and the median equivalent-circle
    diameter of the particles not touching the image edge (`tem_rf.particles.summarise`). True:
    the same figures from the demo's particle list (``particles/<name>.csv``: particles drawn,
    i.e. covering at least one pixel). Plus the errors in % and the instance F1 at IoU 0.5 of the
    labels image against the demo's mask (its particles never touch, so its components are the
    particles) and the KS statistic of the two diameter distributions.
    """
    import numpy as np
    import tifffile

    from tem_rf.core.files import read_csv, read_json_object
    from tem_rf.data.reading import read_mask
    from tem_rf.particles import score_instances

    measured = result.particles or {}
    info = read_json_object(new_micrograph / "demo.json")
    truth = [row for row in read_csv(new_micrograph / info["particles"][0]) if int(row["area_px"]) > 0]
    inner = np.array([float(r["diameter_nm"]) for r in truth if r["touches_edge"] != "True"])
    true_median = float(np.median(inner)) if inner.size else None
    median = measured.get("diameter_median")

    def percent(value, reference):
        return None if value is None or not reference else 100.0 * (value - reference) / reference

    predicted_labels = tifffile.imread(result.labels)
    true_mask = read_mask(new_micrograph / info["labels"][0])
    score = score_instances(predicted_labels, true_mask, result.pixel_size_nm)
    same = same_particle_diameters(predicted_labels, true_mask, result.pixel_size_nm)
    return {
        "diameter_unit": measured.get("diameter_unit"),
        "count": measured.get("count"),
        "count_measured": measured.get("count_measured"),
        "median_diameter": median,
        "true_count": len(truth),
        "true_count_measured": int(inner.size),
        "true_median_diameter_nm": true_median,
        "median_diameter_error_percent": percent(median, true_median),
        "count_error_percent": percent(measured.get("count"), len(truth)),
        "instance_f1": score["f1"],
        "ks_statistic": score["ks_statistic"],
        "particles_csv": result.particles_csv,
        **same,
    }


def same_particle_diameters(predicted_labels: Any, true_mask: Any, pixel_size_nm: float | None) -> dict[str, Any]:
    """Median equivalent-circle diameters of the same particles on both sides: the pairs matched
    at IoU >= 0.5 (`tem_rf.particles.match_instances`) of which neither touches the image edge.
    Unlike the two medians of `particle_report`, a particle whose prediction reaches the edge
    while the drawn one does not (or the reverse) leaves both samples, not just one."""
    import numpy as np

    from tem_rf.particles import instance_labels, match_instances, measure_labels

    predicted, true = instance_labels(predicted_labels), instance_labels(true_mask)
    matching = match_instances(predicted, true)
    measured = {p.id: p for p in measure_labels(predicted, pixel_size_nm)}
    drawn = {p.id: p for p in measure_labels(true, pixel_size_nm)}
    pairs = [(measured[a], drawn[b]) for a, b in matching.pairs.tolist()
             if not measured[a].touches_edge and not drawn[b].touches_edge]
    if not pairs:
        return {"same_particles": 0, "same_median_diameter": None, "same_true_median_diameter": None,
                "same_median_diameter_error_percent": None}
    mine = float(np.median([a.diameter_px for a, _ in pairs]))
    theirs = float(np.median([b.diameter_px for _, b in pairs]))
    scale = pixel_size_nm or 1.0
    return {"same_particles": len(pairs), "same_median_diameter": mine * scale,
            "same_true_median_diameter": theirs * scale,
            "same_median_diameter_error_percent": 100.0 * (mine - theirs) / theirs}


def format_summary(summary: dict[str, Any]) -> str:
    """`run_demo`'s report: receptive field against test dice per architecture, where every
    output is, the new micrograph's particles against the ones drawn, seconds per stage."""

    def number(value: float | None, spec: str = ".2f") -> str:
        return "-" if value is None else format(value, spec)

    lines = ["", "receptive field vs test dice (mean ± std over seeds):"]
    for r in summary["architectures"]:
        lines.append(f"  {r['architecture']:<18} RF {r['receptive_field_px']:>4} px = {r['receptive_field_nm']:.2f} nm"
                     f"  hard dice {r['hard_dice_mean']:.3f} ± {r['hard_dice_std']:.3f}"
                     f"  soft dice {r['soft_dice_mean']:.3f} ± {r['soft_dice_std']:.3f}")
    sweep = summary["sweep"]
    lines += [
        "",
        f"best architecture:            {summary['best_architecture']}",
        f"dataset (TFRecords):          {summary['dataset']}",
        f"runs, TensorBoard logs:       {sweep}/runs  (tensorboard --logdir {sweep}: HParams too)",
        f"results table:                {summary['results_csv']}",
        f"dice vs receptive field plot: {summary['figure']}",
        f"SavedModel:                   {summary['saved_model']}",
        f"segmented new micrograph:     {summary['segmentation']}",
    ]
    particles = summary.get("particles")
    if particles:
        unit = particles["diameter_unit"] or "nm"
        lines.append(f"particles in it:              {particles['count']} ({particles['count_measured']} away from the "
                     f"edge), median diameter {number(particles['median_diameter'])} {unit}")
        lines.append(f"measured vs true (drawn):     median diameter {number(particles['median_diameter'])} vs "
                     f"{number(particles['true_median_diameter_nm'])} nm "
                     f"({number(particles['median_diameter_error_percent'], '+.1f')} %), count {particles['count']} vs "
                     f"{particles['true_count']} ({number(particles['count_error_percent'], '+.1f')} %), instance F1 "
                     f"{number(particles['instance_f1'], '.3f')}")
        if particles.get("same_particles"):
            lines.append(f"the same particles (matched): median diameter {number(particles['same_median_diameter'])} vs "
                         f"{number(particles['same_true_median_diameter'])} nm "
                         f"({number(particles['same_median_diameter_error_percent'], '+.1f')} %) over "
                         f"{particles['same_particles']} away from the edge on both sides")
    lines.append("seconds per stage:            "
                 + ", ".join(f"{stage} {seconds:.0f} s" for stage, seconds in summary["seconds"].items()))
    return "\n".join(lines)
