r"""How many micrographs to label: test quality against the number of labelled training micrographs.

  python -m experiments.learning_curve --data_dir=DATA --out_dir=curve \
      --sizes=1,2,4,8,16,all --seeds=752,2245,140 --pool_sizes=8,8 --target=boundary \
      --init_from=pretrained:emps --epochs=10 --epoch_steps=100

For each number of micrographs, seed and start (from scratch; with --init_from also from those
weights, of the same architecture and target) one run trains on that many micrographs of the
dataset's training split (the seed's nested choice), the same number of steps for every size, and
is scored on the fixed test split: hard dice on its patches and, with --instances, instance F1 at
IoU 0.5 on the whole test micrographs. Writes runs/ (one run directory each: rerunning the command
reuses finished runs; tensorboard --logdir OUT/runs shows their HParams), learning_curve.csv,
learning_curve.json and learning_curve.png (mean over seeds with their range) into --out_dir.
"""

from __future__ import annotations

import logging

from absl import flags

from tem_rf.core import cli
from tem_rf.study.learning_curve import LearningCurveOptions  # no TensorFlow: flags and --help stay fast

_DATA_DIR = flags.DEFINE_string("data_dir", None, "Dataset made by make_tfrecords (its val and test splits stay fixed).")
_OUT_DIR = flags.DEFINE_string("out_dir", None, "Folder for runs/ and the learning-curve results.")
_OPTIONS = cli.define_flags_from_dataclass(LearningCurveOptions)  # one flag per option, its default and help
_PROGRESS = flags.DEFINE_boolean("progress", True, "Show a progress bar per epoch.")
flags.mark_flags_as_required(["data_dir", "out_dir"])


def main(argv: list[str]) -> None:
    del argv
    from tem_rf.study.learning_curve import run_learning_curve

    logging.getLogger("tem_rf").setLevel(logging.INFO)
    options = cli.options_from_flags(LearningCurveOptions, _OPTIONS)
    curve = run_learning_curve(_DATA_DIR.value, _OUT_DIR.value, options, progress=_PROGRESS.value)
    print("\n".join(curve.table_lines()))
    for name, path in curve.paths.items():
        print(f"{name}: {path}")


if __name__ == "__main__":
    cli.run(main)
