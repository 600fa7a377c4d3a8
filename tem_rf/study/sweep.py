"""Receptive-field sweeps: a grid of architectures x seeds, run, shared out and aggregated.

A sweep directory holds one run directory per (architecture, seed) under
``runs/<architecture>/seed<seed>/`` (see docs/design.md). Runs whose ``metrics.json`` exists
are finished and skipped, so a sweep can be stopped and started again, and a cluster job array
can give each task its share with ``task_index``/``num_tasks``. `aggregate` turns the finished
runs into ``results.csv``/``results.json`` and the dice-versus-receptive-field figure.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np


logger = logging.getLogger(__name__)

PAPER_SEEDS = (752, 2245, 140, 9213, 956)
SWEEP_FILE = "sweep.json"
RESULTS_CSV = "results.csv"
RESULTS_JSON = "results.json"
FIGURE = "dice_vs_receptive_field.png"


@dataclasses.dataclass(frozen=True, order=True)
class Architecture:
    """One network of the sweep; ``family`` is ``pool`` or ``dilation`` (how RF was grown)."""

    num_blocks: int
    pool_sizes: tuple[int, ...]
    dilations: tuple[int, ...]
    family: str = "pool"

    @property
    def name(self) -> str:
        from tem_rf.models import architecture_name

        return architecture_name(self.num_blocks, self.pool_sizes, self.dilations)


@dataclasses.dataclass(frozen=True, order=True)
class RunSpec:
    """One training run of the sweep."""

    architecture: Architecture
    seed: int

    def run_dir(self, sweep_dir: str | Path) -> Path:
        from tem_rf.train.rundir import sweep_run_path

        return sweep_run_path(sweep_dir, self.architecture.name, self.seed)


def pool_grid(
    num_blocks: Iterable[int],
    pool_choices: Sequence[int],
    patch_size: int,
    per_level: bool = True,
) -> list[Architecture]:
    """Max-pooling architectures whose receptive field is smaller than the patch (as the paper).

    ``per_level`` lists every per-level combination (e.g. N=2: (2,2), (2,4), ... (8,8)); else
    only equal pools at every level.
    """
    from tem_rf import models as rf_lib

    grid = rf_lib.architecture_grid(num_blocks, pool_choices, max_divisor=patch_size, per_level=per_level)
    rows = rf_lib.architecture_table(grid)
    return [
        Architecture(row["num_blocks"], tuple(row["pool_sizes"]), tuple(row["dilations"]))
        for row in rows
        if row["receptive_field_px"] < patch_size and patch_size % row["size_divisor"] == 0
    ]


def dilation_grid(
    dilation_sets: Iterable[Sequence[int]], num_blocks: int = 2, pool_size: int = 2
) -> list[Architecture]:
    """Architectures that grow the receptive field by dilation at a fixed pool size."""
    from tem_rf.models import normalize_architecture

    grid = []
    for dils in dilation_sets:
        n, pools, dils = normalize_architecture(num_blocks, pool_size, tuple(dils))
        grid.append(Architecture(n, pools, dils, family="dilation"))
    return grid


def check_fits_patch(architectures: Iterable[Architecture], patch_size: int) -> None:
    """Raises ValueError naming every architecture whose size divisor (product of its pool
    sizes) does not divide ``patch_size``: it could not be trained on the dataset's patches."""
    bad = [
        f"{a.name} (divisor {math.prod(a.pool_sizes)})"
        for a in architectures
        if patch_size % math.prod(a.pool_sizes)
    ]
    if bad:
        raise ValueError(
            f"{len(bad)} architecture(s) need patch sizes that are multiples of their pool product, "
            f"but the dataset's patches are {patch_size} px: {', '.join(bad)}"
        )


def build_architectures(
    patch_size: int,
    *,
    pool_sizes: Sequence[Sequence[int]] = (),
    num_blocks: Sequence[int] = (2, 3, 4),
    pool_choices: Sequence[int] = (2, 4, 8),
    grid: str = "per_level",
    dilation_sets: Iterable[Sequence[int]] = (),
    dilation_pool: int = 2,
) -> list[Architecture]:
    """The architectures of a sweep on ``patch_size`` px patches; raises ValueError if one cannot
    train on them (before sweep.json or any run is written).

    Explicit ``pool_sizes`` sequences (N from their length) replace the max-pooling grid of
    ``num_blocks`` x ``pool_choices`` (``grid``: ``per_level``, ``uniform`` or ``none``); the
    N=2 ``dilation_sets`` at ``dilation_pool`` are added either way.
    """
    if pool_sizes:
        architectures = [Architecture(len(pools), tuple(pools), (1,) * (len(pools) + 1)) for pools in pool_sizes]
    elif grid != "none":
        architectures = pool_grid(num_blocks, pool_choices, patch_size, per_level=grid == "per_level")
    else:
        architectures = []
    architectures += [
        a for a in dilation_grid(dilation_sets, 2, dilation_pool)
        if any(d != 1 for d in a.dilations)  # all ones is the pool grid's N=2 network
    ]
    check_fits_patch(architectures, patch_size)
    return architectures


def train_task(
    sweep_dir: str | Path,
    architectures: Sequence[Architecture],
    seeds: Sequence[int],
    base_config: dict[str, Any],
    *,
    task_index: int = 0,
    num_tasks: int = 1,
    progress: bool = True,
) -> list[Path]:
    """Trains task ``task_index``'s share of the sweep; returns the run dirs it finished now.

    ``base_config`` holds the `TrainConfig` fields every run shares (as `run_sweep` takes them);
    task 0 records it, the seeds and every run in sweep.json. A sweep.json already there must
    hold the same settings and runs (`check_sweep_file`), else nothing is trained or written.
    """
    from tem_rf import train as training

    runs = plan(architectures, seeds)
    mine = share(runs, task_index, num_tasks)
    if base_config.get("data_dir"):  # the same dataset whatever folder a task starts in
        base_config = {**base_config, "data_dir": os.path.abspath(base_config["data_dir"])}
    settings = {**base_config, "seeds": list(seeds)}
    recorded = check_sweep_file(sweep_dir, runs, settings)
    if task_index == 0 and recorded != _sweep_content(runs, settings):
        write_sweep_file(sweep_dir, runs, settings)
    logger.info("%d runs in the sweep (%d architectures x %d seeds); this task trains %d",
                len(runs), len(runs) // len(seeds), len(seeds), len(mine))
    strategy = training.make_strategy(base_config.get("strategy", "auto"))
    return run_sweep(sweep_dir, mine, base_config, strategy=strategy, progress=progress)


def plan(architectures: Iterable[Architecture], seeds: Sequence[int]) -> list[RunSpec]:
    """All runs, in a fixed order (architectures by name, then seeds as given); no duplicates."""
    unique = {a.name: a for a in architectures}
    return [RunSpec(unique[name], seed) for name in sorted(unique) for seed in seeds]


def share(runs: Sequence[RunSpec], task_index: int, num_tasks: int) -> list[RunSpec]:
    """The runs of task ``task_index`` of ``num_tasks`` (round robin over the plan)."""
    if num_tasks < 1 or not 0 <= task_index < num_tasks:
        raise ValueError(f"task_index {task_index} must be in [0, num_tasks={num_tasks})")
    return list(runs[task_index::num_tasks])


def is_finished(run_dir: Path) -> bool:
    from tem_rf.train.rundir import RunDir

    return RunDir(run_dir).is_finished


def needs_training(run_dir: Path, config) -> bool:
    """True unless the run is finished with the settings of ``config`` (a validated
    `TrainConfig`); a finished run trained with other settings that change results is refused
    naming them (its --epochs may grow: the run then trains on)."""
    from tem_rf.train.config import resume_changes
    from tem_rf.train.rundir import RunDir

    run = RunDir(run_dir)
    if not run.is_finished:
        return True
    saved = dict(run.config())
    # config.json holds the resolved precision and strategy beside the requested ones.
    for name in ("precision", "strategy"):
        if f"{name}_requested" in saved:
            saved[name] = saved[f"{name}_requested"]
        else:
            saved.pop(name, None)
    current = dataclasses.asdict(config)
    changes = resume_changes(saved, current, names=list(current))
    if changes:
        raise ValueError(
            f"{run_dir}: {'; '.join(c.describe() for c in changes)}; use another --sweep_dir, or pass "
            "the sweep's values to rerun it"
        )
    return int(saved.get("epochs", config.epochs)) < config.epochs


def run_sweep(
    sweep_dir: str | Path,
    runs: Sequence[RunSpec],
    base_config: dict[str, Any],
    strategy=None,
    progress: bool = True,
) -> list[Path]:
    """Trains every unfinished run (same data, batch and epochs for all); returns run dirs done now.

    ``base_config`` holds the `TrainConfig` fields shared by all runs (data_dir, epochs, ...).
    """
    import keras

    from tem_rf import train as training
    from tem_rf.serve.instance_rule import fit_instance_rule, train_and_fit
    from tem_rf.train.rundir import RunDir

    sweep_dir = Path(sweep_dir)
    done = []
    configs = {
        spec: training.TrainConfig(
            **base_config,
            model_dir=str(spec.run_dir(sweep_dir)),
            num_blocks=spec.architecture.num_blocks,
            pool_sizes=spec.architecture.pool_sizes,
            dilations=spec.architecture.dilations,
            seed=spec.seed,
        ).validated()
        for spec in runs
    }
    # Every run is checked before any trains: a changed setting is refused up front.
    todo = [spec for spec in runs if needs_training(spec.run_dir(sweep_dir), configs[spec])]
    logger.info("%d of %d runs to train (%d already finished)", len(todo), len(runs), len(runs) - len(todo))
    for index, spec in enumerate(todo):
        run_dir = spec.run_dir(sweep_dir)
        logger.info("[%d/%d] %s seed %d -> %s", index + 1, len(todo), spec.architecture.name, spec.seed, run_dir)
        train_and_fit(configs[spec], strategy=strategy, progress=progress)  # and a boundary target's instance rule
        keras.backend.clear_session()
        done.append(run_dir)
    # A finished boundary run whose fit did not happen (the sweep stopped in between) gets it now.
    for spec in runs:
        run_dir = spec.run_dir(sweep_dir)
        if (configs[spec].target == "boundary" and RunDir(run_dir).metrics_file.is_file()
                and not RunDir(run_dir).instance_rule_file.is_file()):
            fit_instance_rule(run_dir)
            keras.backend.clear_session()
    return done


def format_results(rows: Sequence[dict[str, Any]], paths: dict[str, Any]) -> str:
    """The sweep's report: a line per architecture (parameters, receptive field, hard dice over
    seeds), the best and the lightest within one std of it, and where the results were written."""
    lines = []
    for r in rows:
        nm = "" if r["receptive_field_nm"] is None else f" {r['receptive_field_nm']:6.2f} nm"
        lines.append(f"{r['architecture']:<24} {r['trainable_params']:>7} params  RF {r['receptive_field_px']:>4} px{nm}"
                     f"  hard dice {r['hard_dice_mean']:.4f} ± {r['hard_dice_std']:.4f} ({r['seeds']} seeds)")
    lines.append(f"best: {best_row(rows)['architecture']}; lightest within one std "
                 f"of it: {lightest_within_one_std(rows)['architecture']}")
    lines.extend(f"{what}: {path}" for what, path in paths.items())
    return "\n".join(lines)


def check_sweep_file(
    sweep_dir: str | Path, runs: Sequence[RunSpec], settings: dict[str, Any]
) -> dict[str, Any] | None:
    """The content of ``sweep.json``, or None when there is none; raises ValueError naming the
    setting (flag, recorded and new value) when it records other settings or runs than these.

    TrainConfig settings follow their "resume" rule (`tem_rf.train.config`): --epochs may grow,
    those that change results must be equal; --seeds and the architectures must be equal.
    """
    from tem_rf.core.files import read_json_object
    from tem_rf.train.config import resume_changes

    path = Path(sweep_dir) / SWEEP_FILE
    if not path.exists():
        return None
    recorded = read_json_object(path)
    saved = recorded.get("settings", {})
    new = _sweep_content(runs, settings)
    changes = resume_changes(saved, settings, names=list(settings))
    problems = [change.describe("this sweep was run with") for change in changes]
    if "seeds" in saved and list(saved["seeds"]) != list(settings["seeds"]):
        old_seeds, new_seeds = _joined(saved["seeds"]), _joined(settings["seeds"])
        problems.append(f"--seeds is {new_seeds} but this sweep was run with {old_seeds}")
    if not problems and recorded.get("runs") != new["runs"]:
        names = lambda content: {r["architecture"] for r in content.get("runs", [])}  # noqa: E731
        added, missing = sorted(names(new) - names(recorded)), sorted(names(recorded) - names(new))
        detail = "; ".join(
            part for part in (f"new: {', '.join(added)}" if added else "",
                              f"not in these flags: {', '.join(missing)}" if missing else "") if part
        ) or "another order or family"
        problems.append(f"the architectures differ from those this sweep was run with ({detail})")
    if problems:
        raise ValueError(
            f"{sweep_dir}: {'; '.join(problems)}; use another --sweep_dir, or pass the sweep's values "
            f"(in {path}) to rerun it"
        )
    return recorded


def _joined(values: Sequence[Any]) -> str:
    return ",".join(map(str, values))


def _sweep_content(runs: Sequence[RunSpec], settings: dict[str, Any]) -> dict[str, Any]:
    """sweep.json's content as JSON reads it back (tuples as lists)."""
    return json.loads(json.dumps({
        "settings": settings,
        "runs": [
            {
                "architecture": r.architecture.name,
                "family": r.architecture.family,
                "num_blocks": r.architecture.num_blocks,
                "pool_sizes": list(r.architecture.pool_sizes),
                "dilations": list(r.architecture.dilations),
                "seed": r.seed,
            }
            for r in runs
        ],
    }))


def write_sweep_file(sweep_dir: str | Path, runs: Sequence[RunSpec], settings: dict[str, Any]) -> None:
    """Records the grid and flags of a sweep (``sweep.json``), and the TensorBoard HParams
    experiment of its runs (``logs/``)."""
    from tem_rf.core.files import write_json
    from tem_rf.train.tensorboard import write_sweep_hparams_config

    write_json(Path(sweep_dir) / SWEEP_FILE, _sweep_content(runs, settings))
    write_sweep_hparams_config(sweep_dir, _sweep_content(runs, settings))


def _family_of(sweep_dir: Path) -> dict[str, str]:
    path = sweep_dir / SWEEP_FILE
    if not path.exists():
        return {}
    return {r["architecture"]: r["family"] for r in json.loads(path.read_text())["runs"]}


def aggregate(sweep_dir: str | Path) -> list[dict[str, Any]]:
    """One row per architecture from every finished run: dice mean and std over seeds.

    The std is the sample standard deviation (ddof=1) over seeds; 0 for a single seed. Runs not
    finished yet are left out of the statistics but counted (``seeds_unfinished``) and warned
    about, so a mean over fewer seeds than the sweep has says so.
    """
    from tem_rf.train.rundir import find_runs

    sweep_dir = Path(sweep_dir)
    families = _family_of(sweep_dir)
    by_architecture: dict[str, list[tuple[dict, dict]]] = {}
    unfinished: dict[str, int] = {}
    for run in find_runs(sweep_dir, finished_only=False):
        if run.is_finished:
            by_architecture.setdefault(run.path.parent.name, []).append((run.config(), run.metrics()))
        else:
            unfinished[run.path.parent.name] = unfinished.get(run.path.parent.name, 0) + 1
    if unfinished:
        logger.warning("%s: %d run(s) have not finished and are left out of the results: %s", sweep_dir,
                       sum(unfinished.values()), ", ".join(f"{name} ({count})" for name, count in sorted(unfinished.items())))
    rows = []
    for name, runs in sorted(by_architecture.items()):
        config = runs[0][0]
        hard = np.array([m["test_hard_dice"] for _, m in runs])
        soft = np.array([m["test_soft_dice"] for _, m in runs])
        default_family = "pool" if all(d == 1 for d in config["dilations"]) else "dilation"
        rows.append(
            {
                "architecture": name,
                "family": families.get(name, default_family),
                "num_blocks": config["num_blocks"],
                "pool_sizes": "-".join(map(str, config["pool_sizes"])),
                "dilations": "-".join(map(str, config["dilations"])),
                "trainable_params": config["trainable_params"],
                "receptive_field_px": config["receptive_field_px"],
                "receptive_field_nm": config["receptive_field_nm"],
                "seeds": len(runs),
                "seeds_unfinished": unfinished.get(name, 0),
                "hard_dice_mean": float(hard.mean()),
                "hard_dice_std": float(hard.std(ddof=1)) if len(runs) > 1 else 0.0,
                "soft_dice_mean": float(soft.mean()),
                "soft_dice_std": float(soft.std(ddof=1)) if len(runs) > 1 else 0.0,
            }
        )
    return rows


def best_row(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The architecture row with the highest mean hard dice (the first of equals)."""
    return max(rows, key=lambda r: r["hard_dice_mean"])


def lightest_within_one_std(rows: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The architecture with the fewest parameters (then smallest RF) whose mean hard dice is
    within one std of the best architecture's mean."""
    if not rows:
        return None
    best = best_row(rows)
    threshold = best["hard_dice_mean"] - best["hard_dice_std"]
    candidates = [r for r in rows if r["hard_dice_mean"] >= threshold]
    return min(candidates, key=lambda r: (r["trainable_params"], r["receptive_field_px"], r["architecture"]))


def write_results(sweep_dir: str | Path, rows: Sequence[dict[str, Any]]) -> dict[str, Path]:
    """Writes results.csv, results.json (with the best and lightest-good architectures) and the plot."""
    from tem_rf.core.files import write_csv, write_json

    sweep_dir = Path(sweep_dir)
    if not rows:
        raise ValueError(f"{sweep_dir} has no finished runs to aggregate")
    write_csv(sweep_dir / RESULTS_CSV, rows)
    summary = {
        "best": best_row(rows)["architecture"],
        "lightest_within_one_std_of_best": lightest_within_one_std(rows)["architecture"],
        "architectures": list(rows),
    }
    write_json(sweep_dir / RESULTS_JSON, summary)
    plot_dice_vs_receptive_field(rows, sweep_dir / FIGURE)
    return {"csv": sweep_dir / RESULTS_CSV, "json": sweep_dir / RESULTS_JSON, "figure": sweep_dir / FIGURE}


def plot_dice_vs_receptive_field(
    rows: Sequence[dict[str, Any]], path: str | Path, metric: str = "hard_dice", title: str | None = None
) -> None:
    """Dice vs receptive field with std error bars, one line per N (paper Fig. 2-4).

    The x axis is in nm when every run knows its pixel size, else in pixels. Dilation
    architectures are drawn as their own dashed line per N.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tem_rf.core.files import atomic_path

    in_nm = all(r["receptive_field_nm"] is not None for r in rows)
    x_key = "receptive_field_nm" if in_nm else "receptive_field_px"
    fig, ax = plt.subplots(figsize=(5.5, 4.0), dpi=150)
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["family"], r["num_blocks"]), []).append(r)
    colours = {2: "tab:blue", 3: "tab:orange", 4: "tab:green"}
    for (family, n), group in sorted(groups.items(), key=lambda item: (item[0][0] != "pool", item[0][1])):
        group = sorted(group, key=lambda r: r[x_key])
        params = group[0]["trainable_params"]
        label = f"N = {n} ({params:,} params)" + (", dilation" if family == "dilation" else "")
        ax.errorbar(
            [r[x_key] for r in group],
            [r[f"{metric}_mean"] for r in group],
            yerr=[r[f"{metric}_std"] for r in group],
            marker="o" if family == "pool" else "s",
            linestyle="-" if family == "pool" else "--",
            color=colours.get(n),
            capsize=3,
            markersize=4,
            label=label,
        )
    ax.set_xlabel("receptive field (nm)" if in_nm else "receptive field (px)")
    ax.set_ylabel(f"test {metric.replace('_', ' ')} (mean ± std over seeds)")
    ax.set_title(title or "Segmentation quality vs receptive field")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


__all__ = [
    "best_row",
    "Architecture",
    "PAPER_SEEDS",
    "RunSpec",
    "aggregate",
    "build_architectures",
    "check_sweep_file",
    "dilation_grid",
    "is_finished",
    "lightest_within_one_std",
    "plan",
    "plot_dice_vs_receptive_field",
    "pool_grid",
    "run_sweep",
    "share",
    "train_task",
    "write_results",
    "write_sweep_file",
]
