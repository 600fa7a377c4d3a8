r"""Training throughput (patches/s) of the residual UNet, its FLOP rate, and a PyTorch reference.

  python3 -m benchmarks.bench_training                          # N=2,3,4, XLA off/on, 512x512, batch 8
  python3 -m benchmarks.bench_training --num_blocks=2 --torch --bn=fused,keras   # vs PyTorch
  python3 -m benchmarks.bench_training --precisions=float32,mixed_float16   # on a GPU

The step is `tem_rf.train.train_step.build_train_step` (the one every run uses: pixel-wise
cross-entropy, Adam) on random in-memory batches, so only the network and the optimizer are
timed. ``--bn=keras`` builds the network with Keras' own (unfused) batch norm, for comparison
with the default `FusedBatchNormalization`. ``--torch`` adds the same network written plainly
in PyTorch (`benchmarks.torch_reference`, channels-first and channels-last; needs the ``bench``
extra), timed in the same rounds. Configurations run in alternating rounds; each one's fastest
round counts (the least disturbed on a shared machine) and the median is reported too.

FLOP rate: the convolutions' forward FLOPs are counted on the traced graph (2 x output
elements x kernel height x width x input channels per Conv2D op); a training step is counted as
3x forward (forward, gradient w.r.t. inputs, gradient w.r.t. kernels). It is reported against
the machine's float32 matrix-multiply rate (``tf.linalg.matmul`` 2048x2048, best of several).
Prints a table and writes JSON.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from pathlib import Path
from typing import Callable

from absl import app, flags

from tem_rf.core import cli
from tem_rf.core.parsing import parse_int_list

_PATCH_SIZE = flags.DEFINE_integer("patch_size", 512, "Patch height and width.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 8, "Patches per step.")
_NUM_BLOCKS = flags.DEFINE_string("num_blocks", "2,3,4", "Networks to time (N).")
_PRECISIONS = flags.DEFINE_string(
    "precisions", "float32", "Comma-separated precision policies (float32, mixed_float16, mixed_bfloat16)."
)
_XLA = flags.DEFINE_string("xla", "false,true", "XLA settings to compare.")
_BN = flags.DEFINE_string("bn", "fused", "Batch norms to compare: fused (the default layer), keras.")
_TORCH = flags.DEFINE_bool("torch", False, "Also time the PyTorch reference of the same network.")
_STEPS = flags.DEFINE_integer("steps", 3, "Timed steps per round.")
_ROUNDS = flags.DEFINE_integer("rounds", 3, "Rounds per configuration; the fastest counts.")
_OUT = flags.DEFINE_string("out", "benchmarks/results/training_cpu.json", "Where to write JSON.")


def matmul_gflops(n: int = 2048, repeats: int = 5) -> float:
    """Best float32 ``tf.linalg.matmul`` rate of this machine, GFLOP/s (2 n^3 per product)."""
    import tensorflow as tf

    a = tf.random.stateless_normal((n, n), seed=(0, 1))
    b = tf.random.stateless_normal((n, n), seed=(0, 2))
    product = tf.function(lambda a, b: tf.reduce_sum(tf.linalg.matmul(a, b)))
    float(product(a, b))
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        float(product(a, b))
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def forward_conv_flops(model, batch: int, size: int) -> int:
    """FLOPs of the Conv2D ops of one forward pass, counted on the traced graph."""
    import tensorflow as tf

    spec = tf.TensorSpec([batch, size, size, 1], tf.float32)
    graph = tf.function(lambda x: model(x, training=True)).get_concrete_function(spec).graph
    total = 0
    for op in graph.get_operations():
        if op.type == "Conv2D":
            kh, kw, cin, _ = op.inputs[1].shape.as_list()
            total += 2 * op.outputs[0].shape.num_elements() * kh * kw * cin
    return total


def _build_keras(num_blocks: int, precision: str, xla: bool, bn: str, batch: int, size: int):
    import keras
    import tensorflow as tf

    from tem_rf.models import residual_unet
    from tem_rf.train.train_step import build_train_step

    keras.mixed_precision.set_global_policy(precision)
    try:
        model = residual_unet(num_blocks, 2, seed=0, fused_bn=bn == "fused")
        optimizer = keras.optimizers.Adam(1e-4)
        if precision == "mixed_float16":
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        optimizer.build(model.trainable_variables)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    step = build_train_step(tf.distribute.get_strategy(), model, optimizer, jit_compile=xla)
    images = tf.random.stateless_normal((batch, size, size, 1), seed=(1, 2))
    labels = tf.cast(tf.random.stateless_uniform((batch, size, size), seed=(3, 4)) > 0.7, tf.int32)
    float(step((images, labels)))  # trace (and compile) outside the timing
    return (lambda: float(step((images, labels)))), model


def main(argv: list[str]) -> None:
    del argv
    import tensorflow as tf

    from tem_rf.models import count_trainable_parameters

    blocks = parse_int_list(_NUM_BLOCKS.value, "num_blocks")
    precisions = [p for p in _PRECISIONS.value.split(",") if p]
    xlas = [x.strip().lower() in ("1", "true", "yes") for x in _XLA.value.split(",") if x]
    bns = [b.strip() for b in _BN.value.split(",") if b.strip()]
    if not set(bns) <= {"fused", "keras"}:
        raise app.UsageError(f"--bn takes fused and/or keras, got {_BN.value!r}")
    size, batch = _PATCH_SIZE.value, _BATCH_SIZE.value
    runs: dict[str, Callable[[], float]] = {}
    meta: dict[str, dict] = {}
    flops: dict[int, int] = {}
    for n in blocks:
        for precision in precisions:
            for bn in bns:
                for xla in xlas:
                    key = f"keras N={n} {precision} bn={bn} xla={xla}"
                    runs[key], model = _build_keras(n, precision, xla, bn, batch, size)
                    if n not in flops:
                        flops[n] = forward_conv_flops(model, batch, size)
                    meta[key] = {
                        "framework": "keras", "num_blocks": n, "precision": precision, "bn": bn,
                        "xla": xla, "trainable_params": count_trainable_parameters(model),
                    }
        if _TORCH.value:
            import torch

            from benchmarks.torch_reference import make_step

            for channels_last in (False, True):
                key = f"torch N={n} float32 channels_last={channels_last}"
                runs[key], params = make_step(n, batch, size, channels_last=channels_last)
                print(f"PyTorch reference N={n}: {params} trainable parameters", flush=True)
                meta[key] = {
                    "framework": f"torch {torch.__version__}", "num_blocks": n, "precision": "float32",
                    "channels_last": channels_last, "trainable_params": params,
                }
    matmul_before = matmul_gflops()  # before and after the rounds: the best is the least disturbed
    rounds: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(_ROUNDS.value):
        for key, run in runs.items():
            start = time.perf_counter()
            for _ in range(_STEPS.value):
                run()
            rounds[key].append(_STEPS.value * batch / (time.perf_counter() - start))
    matmul = max(matmul_before, matmul_gflops())
    gpus = tf.config.list_physical_devices("GPU")
    device = tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU") if gpus else "CPU"
    rows = []
    for key, values in rounds.items():
        n = meta[key]["num_blocks"]
        best = max(values)
        step_gflop = 3 * flops[n] / 1e9 if n in flops else None
        rows.append({
            **meta[key], "name": key, "patch_size": size, "batch_size": batch,
            "patches_per_second": round(best, 3),
            "patches_per_second_median": round(statistics.median(values), 3),
            "rounds": [round(v, 3) for v in values],
            "train_step_gflop": round(step_gflop, 2) if step_gflop else None,
            "gflops": round(step_gflop * best / batch, 2) if step_gflop else None,
        })
    print(f"\ntraining throughput, {size}x{size}, batch {batch}, device {device}, "
          f"{os.cpu_count()} CPU cores; float32 matmul {matmul:.1f} GFLOP/s")
    print(f"{'configuration':<46}{'params':>8}{'patches/s':>11}{'median':>9}{'GFLOP/s':>9}{'of matmul':>11}")
    for r in rows:
        rate = f"{r['gflops']:>9.1f}{100 * r['gflops'] / matmul:>10.0f}%" if r["gflops"] else ""
        print(f"{r['name']:<46}{r['trainable_params']:>8}{r['patches_per_second']:>11.2f}"
              f"{r['patches_per_second_median']:>9.2f}{rate}")
    payload = {
        "benchmark": "training_throughput", "device": device, "cpu_count": os.cpu_count(),
        "machine": platform.machine(), "tensorflow": tf.__version__, "steps": _STEPS.value,
        "rounds": _ROUNDS.value, "matmul_gflops": round(matmul, 1),
        "forward_conv_gflop_per_step": {str(n): round(f / 1e9, 3) for n, f in flops.items()},
        "load_average_at_end": list(os.getloadavg()), "rows": rows,
    }
    from tem_rf.core.files import write_json

    out = Path(_OUT.value)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, payload)
    print(f"wrote {out}")


if __name__ == "__main__":
    cli.run(main)
