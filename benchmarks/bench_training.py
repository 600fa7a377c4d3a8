r"""Training throughput (patches/s) of the residual UNet: N=2,3,4, with and without XLA.

  python3 -m benchmarks.bench_training                          # 512x512, batch 8, float32
  python3 -m benchmarks.bench_training --patch_size=128 --steps=5   # a quick look
  python3 -m benchmarks.bench_training --precisions=float32,mixed_float16   # on a GPU

The step is `tem_rf.training.build_train_step` (the one every run uses: pixel-wise
cross-entropy, Adam) on random in-memory batches, so only the network and the optimizer are
timed. Configurations run in alternating rounds; each one's fastest round counts (the least
disturbed on a shared machine) and the median is reported too. Prints a table and writes JSON.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path

from absl import app, flags

from tem_rf import flags as tem_flags

_PATCH_SIZE = flags.DEFINE_integer("patch_size", 512, "Patch height and width.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 8, "Patches per step.")
_NUM_BLOCKS = flags.DEFINE_string("num_blocks", "2,3,4", "Networks to time (N).")
_PRECISIONS = flags.DEFINE_string("precisions", "float32", "Comma-separated precision policies.")
_XLA = flags.DEFINE_string("xla", "false,true", "XLA settings to compare.")
_STEPS = flags.DEFINE_integer("steps", 3, "Timed steps per round.")
_ROUNDS = flags.DEFINE_integer("rounds", 2, "Rounds per configuration; the fastest counts.")
_OUT = flags.DEFINE_string("out", "benchmarks/results/training_cpu.json", "Where to write JSON.")


def _build(num_blocks: int, precision: str, xla: bool, batch: int, size: int):
    import keras
    import tensorflow as tf

    from tem_rf.models import residual_unet
    from tem_rf.training import build_train_step

    keras.mixed_precision.set_global_policy(precision)
    model = residual_unet(num_blocks, 2, seed=0)
    optimizer = keras.optimizers.Adam(1e-4)
    if precision == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    optimizer.build(model.trainable_variables)
    keras.mixed_precision.set_global_policy("float32")
    step = build_train_step(tf.distribute.get_strategy(), model, optimizer, jit_compile=xla)
    images = tf.random.stateless_normal((batch, size, size, 1), seed=(1, 2))
    labels = tf.cast(tf.random.stateless_uniform((batch, size, size), seed=(3, 4)) > 0.7, tf.int32)
    float(step((images, labels)))  # trace (and compile) outside the timing
    return lambda: float(step((images, labels)))


def main(argv: list[str]) -> None:
    del argv
    import tensorflow as tf

    blocks = tem_flags.parse_int_list(_NUM_BLOCKS.value, "num_blocks")
    precisions = [p for p in _PRECISIONS.value.split(",") if p]
    xlas = [x.strip().lower() in ("1", "true", "yes") for x in _XLA.value.split(",") if x]
    size, batch = _PATCH_SIZE.value, _BATCH_SIZE.value
    configs = [(n, p, x) for n in blocks for p in precisions for x in xlas]
    steps = {c: _build(*c, batch, size) for c in configs}
    rounds: dict[tuple, list[float]] = {c: [] for c in configs}
    for _ in range(_ROUNDS.value):
        for c in configs:
            run = steps[c]
            start = time.perf_counter()
            for _ in range(_STEPS.value):
                run()
            rounds[c].append(_STEPS.value * batch / (time.perf_counter() - start))
    gpus = tf.config.list_physical_devices("GPU")
    device = tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU") if gpus else "CPU"
    rows = []
    for (n, precision, xla), values in rounds.items():
        rows.append({
            "num_blocks": n, "precision": precision, "xla": xla, "patch_size": size, "batch_size": batch,
            "patches_per_second": max(values), "patches_per_second_median": statistics.median(values),
        })
    baseline = {(r["num_blocks"], r["precision"]): r["patches_per_second"] for r in rows if not r["xla"]}
    f32 = {(r["num_blocks"], r["xla"]): r["patches_per_second"] for r in rows if r["precision"] == "float32"}
    print(f"training throughput, {size}x{size}, batch {batch}, device {device}, {os.cpu_count()} CPU cores")
    print(f"{'N':>2} {'precision':<15}{'XLA':<6}{'patches/s':>10}{'median':>9}{'vs no XLA':>11}{'vs float32':>11}")
    for r in rows:
        vs_xla = r["patches_per_second"] / baseline.get((r["num_blocks"], r["precision"]), float("nan"))
        vs_f32 = r["patches_per_second"] / f32.get((r["num_blocks"], r["xla"]), float("nan"))
        print(f"{r['num_blocks']:>2} {r['precision']:<15}{str(r['xla']):<6}{r['patches_per_second']:>10.2f}"
              f"{r['patches_per_second_median']:>9.2f}{vs_xla:>10.2f}x{vs_f32:>10.2f}x")
    out = Path(_OUT.value)
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": "training_throughput", "device": device, "cpu_count": os.cpu_count(),
        "machine": platform.machine(), "tensorflow": tf.__version__, "steps": _STEPS.value,
        "rounds": _ROUNDS.value, "rows": rows,
    }
    from tem_rf.io_utils import atomic_write_text

    atomic_write_text(out, json.dumps(payload, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    app.run(main)
