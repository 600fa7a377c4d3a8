"""How many micrographs to label: test quality against the number of labelled training micrographs.

`run_learning_curve` is ``experiments/learning_curve.py``. From one dataset (``make_tfrecords``:
its validation and test splits stay fixed) it trains one run per number of training micrographs,
seed and start, each on the first ``k`` micrographs of the training split in the seed's order
(`tem_rf.data.pipeline.training_subset`: one seed's subsets are nested, so a larger subset only
adds micrographs), from scratch and, with ``init_from``, also from those weights (a run, a
``.keras`` file or ``pretrained:NAME``). Every run trains the same number of steps
(``epochs x epoch_steps``) and is validated as often, so a run on 1 micrograph is not cut short
against one on 100; the best epoch on validation is scored on the test patches (hard dice, paper
Eq. 2) and, with ``instances``, its particles on the whole test micrographs as ``measure`` does
(instance F1 at IoU 0.5, pixel dice, median diameter error).

Layout of ``out_dir``: ``runs/<start>/images<k>/seed<s>/`` (run directories; a finished one is
kept and reused when the curve is run again, so it can be stopped and resumed; their HParams and
scalars show in ``tensorboard --logdir OUT/runs``), ``learning_curve.csv`` (one row per run),
``learning_curve.json`` (the settings, the rows and per start and size the mean, std, min and max
over seeds) and ``learning_curve.png`` (test hard dice and instance F1 against the number of
micrographs, mean with the seeds' range). Existing result files are replaced only with
``overwrite``; runs are never deleted.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tem_rf.core.errors import InputError
from tem_rf.core.cli import option

logger = logging.getLogger(__name__)

CSV_FILE = "learning_curve.csv"
JSON_FILE = "learning_curve.json"
FIGURE_FILE = "learning_curve.png"
RUNS_DIR = "runs"
SCRATCH = "scratch"  # the start of runs from random weights
INIT = "init_from"  # the start of runs from --init_from's weights
INSTANCES_DIR = "test_instances"  # in each run: measure's outputs on the test micrographs
# Columns of learning_curve.csv, in order.
ROW_KEYS = (
    "start", "init_from", "train_images", "seed", "train_patches", "epochs", "epoch_steps", "steps",
    "val_hard_dice", "test_hard_dice", "test_pixel_dice", "instance_f1", "median_diameter_error_percent", "run_dir",
)
SUMMARISED = ("test_hard_dice", "instance_f1", "test_pixel_dice", "median_diameter_error_percent")


@dataclasses.dataclass(frozen=True)
class LearningCurveOptions:
    """The curve's sizes, seeds and starts, and how each run trains."""

    sizes: tuple[str, ...] = option(
        ("1", "2", "4", "8", "16", "all"), "Numbers of labelled training micrographs; 'all' is the whole training split.")
    seeds: tuple[int, ...] = option(
        (752, 2245, 140), "Seeds: each picks its own nested micrographs, data order and initial weights.")
    init_from: str = option(
        "", "Also train every size from these weights (a run, a .keras file or pretrained:NAME), beside from scratch.")
    num_blocks: int = option(2, "Residual blocks per arm (N).", lower_bound=1)
    pool_sizes: tuple[int, ...] = option((2, 2), "Max-pool size per level.")
    dilations: tuple[int, ...] = option((1, 1, 1), "Dilation per level plus the bottleneck.")
    target: str = option("mask", "mask: the paper's two classes; boundary: particle interiors and boundaries.",
                         choices=("mask", "boundary"))
    epochs: int = option(10, "Epochs per run (the best on validation is scored).", lower_bound=1)
    epoch_steps: int = option(100, "Training steps per epoch, the same for every size.", lower_bound=1)
    batch_size: int = option(8, "Batch size.", lower_bound=1)
    learning_rate: float = option(1e-4, "Adam learning rate.")
    instances: bool = option(True, "Score particles on the whole test micrographs (instance F1, as measure does).")
    overwrite: bool = option(False, "Replace existing learning_curve.csv/.json/.png (runs are kept and reused).")

    def starts(self) -> list[tuple[str, str]]:
        """(start name, weights) of each start: from scratch, and from ``init_from`` when given."""
        return [(SCRATCH, "")] + ([(INIT, self.init_from)] if self.init_from else [])


def resolve_sizes(sizes: Sequence[str], available: int) -> list[int]:
    """The numbers of micrographs of ``sizes`` ('all' = ``available``), sorted and unique;
    a number beyond the split or below 1 is a `ValueError`."""
    counts = set()
    for size in sizes:
        text = str(size).strip().lower()
        if text == "all":
            counts.add(available)
            continue
        try:
            count = int(text)
        except ValueError:
            raise ValueError(f"--sizes: {size!r} is neither a number of micrographs nor 'all'") from None
        if not 1 <= count <= available:
            raise ValueError(f"--sizes: {count} micrographs asked, the training split has {available} (1 to {available}, or all)")
        counts.add(count)
    if not counts:
        raise ValueError("--sizes: give at least one number of micrographs")
    return sorted(counts)


def run_dir_of(out_dir: str | os.PathLike, start: str, images: int, seed: int) -> Path:
    """Where the curve keeps the run of one start, number of micrographs and seed."""
    return Path(out_dir) / RUNS_DIR / start / f"images{images:04d}" / f"seed{seed}"


def _train_config(data_dir: Path, options: LearningCurveOptions, run_dir: Path, images: int, available: int,
                  seed: int, init_from: str):
    from tem_rf.train.config import TrainConfig

    return TrainConfig(
        data_dir=str(data_dir), model_dir=str(run_dir), num_blocks=options.num_blocks,
        pool_sizes=options.pool_sizes, dilations=options.dilations, target=options.target, init_from=init_from,
        train_images=0 if images == available else images,  # the whole split: exactly a plain run
        epoch_steps=options.epoch_steps, epochs=options.epochs, batch_size=options.batch_size,
        learning_rate=options.learning_rate, seed=seed,
    ).validated()


def _check_init_architecture(init_from: str, config: Any) -> None:
    """Refuses ``init_from`` of another architecture or target than ``config`` (a validated
    `TrainConfig`) before any run trains."""
    from tem_rf.core.pretrained import resolve_model
    from tem_rf.models import architecture_name
    from tem_rf.train.rundir import RunDir

    run = RunDir.open(resolve_model(init_from))
    if not run.config_file.is_file():
        return  # a bare .keras file: the trainer compares its weights' shapes
    saved = run.config()
    mine = (architecture_name(config.num_blocks, config.pool_sizes, config.dilations), config.target)
    theirs = (saved.get("architecture"), saved.get("target", "mask"))
    if theirs != mine:
        raise InputError(None, f"--init_from {init_from} is {theirs[0]} (--target={theirs[1]}) but the curve "
                         f"trains {mine[0]} (--target={mine[1]}): pass its architecture and target")


def _run_row(data_dir: Path, run_dir: Path, start: str, init_from: str, images: int, seed: int,
             patches: int, options: LearningCurveOptions, instances: bool) -> dict[str, Any]:
    """One run's row: its settings, test dice and, with ``instances``, its test particles' scores
    (measured once; a finished measurement is read back)."""
    from tem_rf.core.files import read_json_object
    from tem_rf.study.instances import JSON_FILE as INSTANCES_JSON
    from tem_rf.study.instances import measure_instances, split_pairs
    from tem_rf.train.rundir import RunDir

    run = RunDir(run_dir)
    metrics = run.metrics()
    row: dict[str, Any] = {
        "start": start, "init_from": init_from or None, "train_images": images, "seed": seed,
        "train_patches": patches, "epochs": options.epochs, "epoch_steps": options.epoch_steps,
        "steps": options.epochs * options.epoch_steps, "val_hard_dice": metrics.get("val_hard_dice"),
        "test_hard_dice": metrics.get("test_hard_dice"), "test_pixel_dice": None, "instance_f1": None,
        "median_diameter_error_percent": None, "run_dir": str(run_dir),
    }
    if instances:
        scored = run_dir / INSTANCES_DIR / INSTANCES_JSON
        model_file = run.model_file()
        if not scored.is_file() or scored.stat().st_mtime < model_file.stat().st_mtime:
            measure_instances(None, None, run_dir / INSTANCES_DIR, pairs=split_pairs(data_dir), model=run_dir,
                              overwrite=True)
        pooled = read_json_object(scored).get("pooled", {})
        row.update(test_pixel_dice=pooled.get("pixel_dice"), instance_f1=pooled.get("f1"),
                   median_diameter_error_percent=pooled.get("median_diameter_error_percent"))
    return row


def summarise(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per start and number of micrographs: the runs' count and the mean, std, min and max over
    seeds of each `SUMMARISED` score (None where no run has it)."""
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["start"], row["train_images"]), []).append(row)
    summary = []
    for (start, images), group in sorted(groups.items()):
        entry: dict[str, Any] = {"start": start, "train_images": images, "runs": len(group)}
        for key in SUMMARISED:
            values = np.array([r[key] for r in group if r.get(key) is not None], dtype=float)
            stats = (values.mean(), values.std(), values.min(), values.max()) if values.size else (None,) * 4
            entry.update({f"{key}_{name}": None if v is None else float(v)
                          for name, v in zip(("mean", "std", "min", "max"), stats)})
        summary.append(entry)
    return summary


def plot_learning_curve(summary: Sequence[dict[str, Any]], rows: Sequence[dict[str, Any]], path: str | Path) -> None:
    """Test hard dice and instance F1 against labelled micrographs (log scale): per start the
    mean over seeds, the seeds' range as a band, each run as a dot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("test_hard_dice", "test hard dice (patches)")]
    if any(r.get("instance_f1") is not None for r in rows):
        panels.append(("instance_f1", "instance F1 at IoU 0.5 (test micrographs)"))
    fig, axes = plt.subplots(1, len(panels), figsize=(5.0 * len(panels), 3.8), dpi=150, squeeze=False)
    colours = {SCRATCH: "tab:blue", INIT: "tab:orange"}
    for ax, (key, label) in zip(axes[0], panels):
        for start in dict.fromkeys(s["start"] for s in summary):
            points = [s for s in summary if s["start"] == start and s[f"{key}_mean"] is not None]
            if not points:
                continue
            x = [p["train_images"] for p in points]
            colour = colours.get(start)
            name = "from scratch" if start == SCRATCH else f"from {next(r['init_from'] for r in rows if r['start'] == start)}"
            ax.plot(x, [p[f"{key}_mean"] for p in points], marker="o", color=colour, label=name)
            ax.fill_between(x, [p[f"{key}_min"] for p in points], [p[f"{key}_max"] for p in points],
                            color=colour, alpha=0.2, linewidth=0)
            runs = [r for r in rows if r["start"] == start and r.get(key) is not None]
            ax.scatter([r["train_images"] for r in runs], [r[key] for r in runs], color=colour, s=8, alpha=0.6)
        ax.set_xscale("log", base=2)
        sizes = sorted({r["train_images"] for r in rows})
        ax.set_xticks(sizes, [str(size) for size in sizes])  # the numbers of micrographs, not powers of 2
        ax.minorticks_off()
        ax.set_xlabel("labelled training micrographs")
        ax.set_ylabel(label)
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        ax.legend(frameon=False, fontsize=8, title="mean; band: range over seeds", title_fontsize=7)
    fig.tight_layout()
    fig.savefig(path, format="png")  # the path may be a temporary name without the suffix
    plt.close(fig)


@dataclasses.dataclass
class LearningCurve:
    """What `run_learning_curve` trained and wrote."""

    rows: list[dict[str, Any]]
    summary: list[dict[str, Any]]
    paths: dict[str, Path]

    def table_lines(self) -> list[str]:
        """One line per start and size: runs, test hard dice and instance F1 (mean ± std)."""

        def fmt(entry: dict[str, Any], key: str) -> str:
            mean = entry[f"{key}_mean"]
            return "    -      " if mean is None else f"{mean:.3f}±{entry[f'{key}_std']:.3f}"

        lines = [f"{'start':<10}{'images':>7}{'runs':>6}  {'test dice':<12}{'instance F1':<12}"]
        for entry in self.summary:
            lines.append(f"{entry['start']:<10}{entry['train_images']:>7}{entry['runs']:>6}  "
                         f"{fmt(entry, 'test_hard_dice'):<12}{fmt(entry, 'instance_f1'):<12}")
        return lines


def run_learning_curve(
    data_dir: str | os.PathLike, out_dir: str | os.PathLike, options: LearningCurveOptions, *, progress: bool = False
) -> LearningCurve:
    """Trains (or reuses) every run of the curve and writes its results (module docstring).
    Bad settings (a size beyond the split, another architecture in ``init_from``, existing
    results without ``overwrite``) are refused before any run trains."""
    import keras

    from tem_rf.core.files import json_safe, write_csv, write_json
    from tem_rf.core.locks import output_lock
    from tem_rf.core.outputs import check_new_files, new_files
    from tem_rf.data.dataset_info import read_dataset_info
    from tem_rf.data.pipeline import patch_counts, split_sources, training_subset
    from tem_rf.serve.instance_rule import train_and_fit
    from tem_rf.study.sweep import needs_training

    data_dir, out_dir = Path(data_dir), Path(out_dir)
    targets = [out_dir / CSV_FILE, out_dir / JSON_FILE, out_dir / FIGURE_FILE]
    check_new_files(targets, options.overwrite)
    info = read_dataset_info(data_dir)
    available = len(split_sources(info, "train"))
    try:
        sizes = resolve_sizes(options.sizes, available)
    except ValueError as error:
        raise InputError(data_dir, str(error)) from None
    if not options.seeds:
        raise InputError(None, "--seeds: give at least one seed")
    patches_of = patch_counts(info)
    plan = []
    for start, init_from in options.starts():
        for images in sizes:
            for seed in options.seeds:
                run_dir = run_dir_of(out_dir, start, images, seed)
                config = _train_config(data_dir, options, run_dir, images, available, seed, init_from)
                patches = sum(patches_of.get(n, 0) for n in training_subset(info, images, seed))
                plan.append((start, init_from, images, seed, patches, run_dir, config))
    if options.init_from:
        _check_init_architecture(options.init_from, plan[-1][6])
    with output_lock(out_dir):
        todo = [item for item in plan if needs_training(item[5], item[6])]
        logger.info("%d runs in the curve, %d to train", len(plan), len(todo))
        for index, (start, _, images, seed, _, run_dir, config) in enumerate(todo):
            logger.info("[%d/%d] %s, %d micrographs, seed %d -> %s", index + 1, len(todo), start, images, seed, run_dir)
            train_and_fit(config, progress=progress)
            keras.backend.clear_session()
        rows = []
        for start, init_from, images, seed, patches, run_dir, _ in plan:
            rows.append(_run_row(data_dir, run_dir, start, init_from, images, seed, patches, options,
                                 options.instances))
            keras.backend.clear_session()
        summary = summarise(rows)
        settings = {**dataclasses.asdict(options), "data_dir": str(data_dir.resolve()), "sizes": sizes}
        with new_files(targets, overwrite=options.overwrite) as temporary:
            write_csv(temporary[targets[0]], [{key: row[key] for key in ROW_KEYS} for row in rows])
            write_json(temporary[targets[1]], json_safe({"settings": settings, "summary": summary, "runs": rows}))
            plot_learning_curve(summary, rows, temporary[targets[2]])
    return LearningCurve(rows, summary, {"csv": targets[0], "json": targets[1], "figure": targets[2]})


__all__ = ["LearningCurve", "LearningCurveOptions", "plot_learning_curve", "resolve_sizes", "run_dir_of",
           "run_learning_curve", "summarise"]
