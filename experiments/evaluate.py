r"""Scores a trained run on a dataset split: pooled hard/soft dice and a per-patch CSV.

  python -m experiments.evaluate --run_dir=runs/N2_k2-8 --split=test
  python -m experiments.evaluate --run_dir=runs/N2_k2-8 --data_dir=OTHER_DATA --noaugment

By default every patch is scored in its 8 dihedral variants (as the paper did). Writes
<run_dir>/eval_<split>.csv (one row per patch and variant) and eval_<split>.json; scores on
another dataset than the run's own go to eval_<split>_<dataset folder name>.csv/.json, so they
never replace the run's own.
"""

from __future__ import annotations

import json
from pathlib import Path

from absl import flags

from tem_rf.core import cli as tem_flags

_RUN_DIR = flags.DEFINE_string("run_dir", None, "Run directory, or a .keras file (outside a run directory: with --data_dir).")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Dataset directory; default: the run's own.")
_SPLIT = flags.DEFINE_enum("split", "test", ["train", "val", "test"], "Split to score.")
_WEIGHTS = flags.DEFINE_enum("weights", "best", ["best", "model"], "best.keras or model.keras (last).")
_AUGMENT = flags.DEFINE_boolean("augment", True, "Score all 8 dihedral variants of each patch.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 8, "Batch size.")
_OUT_DIR = flags.DEFINE_string("out_dir", None, "Where to write the CSV/JSON; default: the run dir.")
flags.mark_flag_as_required("run_dir")


def main(argv: list[str]) -> None:
    del argv
    from tem_rf.study import scoring as evaluation
    from tem_rf.core.files import atomic_write_text
    from tem_rf.train.rundir import load_run_config

    try:
        run_path = Path(_RUN_DIR.value)
        if not run_path.exists():
            raise ValueError(f"{run_path}: no such run directory or .keras file")
        config_dir = run_path if run_path.is_dir() else run_path.parent
        own_data = (
            load_run_config(config_dir).get("data_dir") if (config_dir / "config.json").exists() else None
        )
        data_dir = _DATA_DIR.value or own_data
        if data_dir is None:
            raise ValueError(f"{run_path}: no config.json with the run's dataset beside it; pass --data_dir")
        model = evaluation.load_run_model(run_path, _WEIGHTS.value)
        summary, rows = evaluation.evaluate_model(
            model, data_dir, _SPLIT.value, augment=_AUGMENT.value, batch_size=_BATCH_SIZE.value
        )
    except (OSError, ValueError) as err:
        raise SystemExit(f"error: {err}") from None
    out_dir = Path(_OUT_DIR.value) if _OUT_DIR.value else config_dir
    summary.update(run=str(run_path), weights=_WEIGHTS.value, data_dir=str(data_dir))
    stem = f"eval_{_SPLIT.value}"
    if own_data is None or Path(data_dir).resolve() != Path(own_data).resolve():
        stem += f"_{Path(data_dir).resolve().name}"  # another dataset: keep the run's own scores
    csv_path = out_dir / f"{stem}.csv"
    json_path = out_dir / f"{stem}.json"
    try:
        atomic_write_text(csv_path, evaluation.per_patch_csv(rows))
        atomic_write_text(json_path, json.dumps(summary, indent=2) + "\n")
    except OSError as err:
        raise SystemExit(f"error: {out_dir}: cannot write the results: {err.strerror or err}") from None
    n = summary["patches"]
    variants = f" ({n // 8} patches x 8 dihedral variants)" if _AUGMENT.value else ""
    print(f"{_SPLIT.value}: hard dice {summary['hard_dice']:.4f}, soft dice {summary['soft_dice']:.4f} "
          f"over {summary['patches']} patch images{variants}")
    print(f"per-patch CSV: {csv_path}\nsummary: {json_path}")


if __name__ == "__main__":
    tem_flags.run(main)
