r"""Where a training step's CPU time goes: the TensorFlow profiler's kernel time per op type.

  python3 -m benchmarks.profile_training                      # N=2, 512x512, batch 8, both BNs
  python3 -m benchmarks.profile_training --patch_size=256 --steps=2

Traces `tem_rf.train.loop.build_train_step` (the step every run uses) with
`tf.profiler.experimental`, reads the host plane of the trace (XSpace protobuf) and sums kernel
durations by op type over all threads. Run for the fused batch norm (the default) and for Keras'
own BatchNormalization, so the table shows what fusing removed. Prints a table, writes JSON.
"""

from __future__ import annotations

import collections
import tempfile
import time
from pathlib import Path

from absl import flags

from tem_rf.core import cli

_PATCH_SIZE = flags.DEFINE_integer("patch_size", 512, "Patch height and width.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 8, "Patches per step.")
_NUM_BLOCKS = flags.DEFINE_integer("num_blocks", 2, "Residual blocks N.")
_STEPS = flags.DEFINE_integer("steps", 3, "Profiled steps (after 3 warm-up steps).")
_BN = flags.DEFINE_list("bn", ["keras", "fused"], "Batch norms to profile: keras, fused.")
_TOP = flags.DEFINE_integer("top", 12, "Op types listed per configuration.")
_OUT = flags.DEFINE_string("out", "benchmarks/results/profile_training.json", "Where to write JSON.")

# Trace events of the executor that wrap kernels rather than being kernels themselves.
_WRAPPERS = ("Process", "Run")


def kernel_time_by_op_type(trace_dir: Path) -> dict[str, float]:
    """Seconds of kernel execution per op type on the host, summed over threads."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    path = sorted(trace_dir.glob("**/*.xplane.pb"))[-1]
    space = xplane_pb2.XSpace()
    space.ParseFromString(path.read_bytes())
    seconds: collections.Counter = collections.Counter()
    for plane in space.planes:
        if not plane.name.startswith("/host:CPU"):
            continue
        names = {key: meta.name for key, meta in plane.event_metadata.items()}
        for line in plane.lines:
            for event in line.events:
                name = names.get(event.metadata_id, "")
                if ":" not in name:  # kernels are named "op_name:OpType"
                    continue
                op_type = name.rsplit(":", 1)[1].strip()
                if op_type in _WRAPPERS or op_type.startswith("__inference") or " " in op_type:
                    continue
                seconds[op_type] += event.duration_ps * 1e-12
    return dict(seconds)


def profile(bn: str, num_blocks: int, size: int, batch: int, steps: int) -> dict:
    """Wall time per step and the kernel-time table for one batch-norm implementation."""
    import keras
    import tensorflow as tf

    from tem_rf.models import residual_unet
    from tem_rf.train.train_step import build_train_step

    model = residual_unet(num_blocks, 2, seed=0, fused_bn=bn == "fused")
    optimizer = keras.optimizers.Adam(1e-4)
    optimizer.build(model.trainable_variables)
    step = build_train_step(tf.distribute.get_strategy(), model, optimizer)
    images = tf.random.stateless_normal((batch, size, size, 1), seed=(1, 2))
    labels = tf.cast(tf.random.stateless_uniform((batch, size, size), seed=(3, 4)) > 0.7, tf.int32)
    for _ in range(3):
        float(step((images, labels)))
    with tempfile.TemporaryDirectory() as trace_dir:
        tf.profiler.experimental.start(trace_dir)
        start = time.perf_counter()
        for _ in range(steps):
            float(step((images, labels)))
        wall = (time.perf_counter() - start) / steps
        tf.profiler.experimental.stop()
        by_type = kernel_time_by_op_type(Path(trace_dir))
    total = sum(by_type.values())
    conv = sum(v for k, v in by_type.items() if "Conv" in k)
    return {
        "bn": bn,
        "wall_s_per_step": wall,
        "patches_per_second": batch / wall,
        "kernel_s_per_step": total / steps,
        "convolution_share": conv / total,
        "op_share": {k: v / total for k, v in sorted(by_type.items(), key=lambda kv: -kv[1])},
    }


def main(argv: list[str]) -> None:
    del argv
    from tem_rf.core.files import write_json

    rows = [profile(bn, _NUM_BLOCKS.value, _PATCH_SIZE.value, _BATCH_SIZE.value, _STEPS.value) for bn in _BN.value]
    print(f"train step N={_NUM_BLOCKS.value}, {_PATCH_SIZE.value}^2, batch {_BATCH_SIZE.value}, float32, CPU")
    for row in rows:
        print(f"\nBN {row['bn']}: {row['wall_s_per_step'] * 1000:.0f} ms/step ({row['patches_per_second']:.2f} "
              f"patches/s), kernels {row['kernel_s_per_step'] * 1000:.0f} ms/step over all threads; "
              f"convolutions {100 * row['convolution_share']:.1f} %")
        for op, share in list(row["op_share"].items())[: _TOP.value]:
            print(f"  {100 * share:5.1f} %  {op}")
    payload = {
        "benchmark": "profile_training", "num_blocks": _NUM_BLOCKS.value, "patch_size": _PATCH_SIZE.value,
        "batch_size": _BATCH_SIZE.value, "steps": _STEPS.value, "rows": rows,
    }
    write_json(Path(_OUT.value), payload)
    print(f"\nwrote {_OUT.value}")


if __name__ == "__main__":
    cli.run(main)
