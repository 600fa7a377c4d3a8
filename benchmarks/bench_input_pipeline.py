r"""What the TFRecord input pipeline costs a training step: patches/s fed by `load_split` versus
the same batches held in memory.

  python3 -m benchmarks.bench_input_pipeline                                  # ~1 min on a CPU
  python3 -m benchmarks.bench_input_pipeline --patch_size=512 --batch_size=8  # the paper's size

Without --data_dir a demo dataset (synthetic high-res micrographs) is made in a temporary folder.
The training step is the paper's: residual UNet N=2 (pools 2), Adam lr 1e-4, pixel-wise sparse
categorical cross-entropy, as one `tf.function`. "reader" feeds it from
`load_split(augment=True, shuffle_seed=0, repeat=True)` (random-access TFRecord reads, parse,
dihedral transform, prefetch); "memory" feeds it the same batches from
`tf.data.Dataset.from_tensor_slices(...).cache()`. Rounds alternate between the two feeds; each
feed's fastest round counts (the least disturbed by other processes on a shared machine; medians
are reported too). Also
reported: the reader alone (no training), i.e. how many patches/s it could deliver, and the
set-up time of `load_split` up to its first batch: the first load in a process (header scan,
dataset.json checks, every record's CRC checked) and later ones (the next epochs' loads: shards
already checked are not read again), against one epoch's training time.
Overhead = 1 - reader / memory (goal: at most 5 %). On a busy shared machine wall times vary by
tens of percent between rounds; the process CPU time per patch ("CPU overhead") does not, and is
what the reader takes from a training step that saturates the CPU.
"""

from __future__ import annotations

import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from absl import app, flags

_DATA_DIR = flags.DEFINE_string("data_dir", None, "Dataset to read (default: make a demo dataset).")
_PATCH_SIZE = flags.DEFINE_integer("patch_size", 128, "Patch size of the demo dataset.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 8, "Patches per training step.")
_STEPS = flags.DEFINE_integer("steps", 25, "Timed training steps per round.")
_ROUNDS = flags.DEFINE_integer("rounds", 6, "Alternating rounds per feed; the fastest counts.")
_NUM_BLOCKS = flags.DEFINE_integer("num_blocks", 2, "Residual blocks N of the network.")
_NUM_IMAGES = flags.DEFINE_integer("num_images", 12, "Micrographs of the demo dataset (16 patches each).")
_OUT = flags.DEFINE_string("out", "benchmarks/results/input_pipeline_cpu.json", "Where to write JSON.")


def _make_demo_dataset(root: Path, patch_size: int, num_images: int) -> Path:
    from tem_rf.data import build_dataset, find_image_files, match_masks
    from tem_rf.data.synthetic import write_demo_dataset

    # 0.08 nm pixels keep several 3-8 nm particles in a small image (fringes still 2.5-3 px).
    write_demo_dataset(root / "raw", num_images=num_images, size=4 * patch_size, seed=0, pixel_size_nm=0.08)
    pairs = match_masks(find_image_files(root / "raw" / "images"), root / "raw" / "labels")
    build_dataset(
        pairs, root / "dataset", patch_size=patch_size, min_particle_pixels=patch_size * patch_size // 100,
        split_fractions=(0.8, 0.1, 0.1), num_shards=4, progress=False,
    )
    return root / "dataset"


def _time_steps(step, iterator, steps: int) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) for ``steps`` training steps, data waits included."""
    start, start_cpu = time.perf_counter(), time.process_time()
    loss = None
    for _ in range(steps):
        images, labels = next(iterator)
        loss = step(images, labels)
    float(loss)  # wait for the last step to finish
    return time.perf_counter() - start, time.process_time() - start_cpu


def main(argv: list[str]) -> None:
    del argv
    import keras
    import numpy as np
    import tensorflow as tf

    from tem_rf.data import load_split, read_dataset_info
    from tem_rf.core.files import write_json
    from tem_rf.models import residual_unet

    batch_size, steps = _BATCH_SIZE.value, _STEPS.value
    with tempfile.TemporaryDirectory() as tmp:
        if _DATA_DIR.value:
            data_dir = Path(_DATA_DIR.value)
        else:
            data_dir = _make_demo_dataset(Path(tmp), _PATCH_SIZE.value, _NUM_IMAGES.value)
        info = read_dataset_info(data_dir)
        patch_size = info["patch_size"]

        def reader():
            return load_split(
                data_dir, "train", batch_size, augment=True, shuffle_seed=0, repeat=True, drop_remainder=True
            )

        start = time.perf_counter()  # the first load of the split in this process: records' CRCs checked
        next(iter(reader()))
        first_load_seconds = time.perf_counter() - start

        # The memory feed holds exactly the batches the reader delivers, in the same order.
        cached_batches = [(x.numpy(), y.numpy()) for x, y in reader().take(min(steps, 64))]
        memory = (
            tf.data.Dataset.from_tensor_slices(
                (np.concatenate([x for x, _ in cached_batches]), np.concatenate([y for _, y in cached_batches]))
            )
            .batch(batch_size, drop_remainder=True)
            .cache()
            .repeat()
            .prefetch(tf.data.AUTOTUNE)
        )

        model = residual_unet(_NUM_BLOCKS.value, 2, seed=0)
        optimizer = keras.optimizers.Adam(1e-4)
        loss_fn = keras.losses.SparseCategoricalCrossentropy()

        @tf.function
        def train_step(images, labels):
            with tf.GradientTape() as tape:
                loss = loss_fn(labels, model(images, training=True))
            optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
            return loss

        feeds = {"reader": iter(reader()), "memory": iter(memory)}
        for iterator in feeds.values():  # warm-up: tracing, pipeline start, caches
            _time_steps(train_step, iterator, 3)
        seconds = {name: [] for name in feeds}
        cpu_seconds = {name: [] for name in feeds}
        for _ in range(_ROUNDS.value):
            for name, iterator in feeds.items():
                wall, cpu = _time_steps(train_step, iterator, steps)
                seconds[name].append(wall)
                cpu_seconds[name].append(cpu)

        reader_only = iter(reader())
        next(reader_only)
        start = time.perf_counter()
        for _ in range(steps):
            next(reader_only)
        reader_alone = steps * batch_size / (time.perf_counter() - start)

        load_seconds = []
        for _ in range(3):
            start = time.perf_counter()
            next(iter(reader()))
            load_seconds.append(time.perf_counter() - start)
        split_bytes = sum(shard["bytes"] for shard in info["splits"]["train"]["shards"])
        train_elements = 8 * info["counts"]["train"]

    rates = {name: steps * batch_size / min(s) for name, s in seconds.items()}
    median_rates = {name: steps * batch_size / statistics.median(s) for name, s in seconds.items()}
    overhead = 100.0 * (1.0 - rates["reader"] / rates["memory"])
    median_overhead = 100.0 * (1.0 - median_rates["reader"] / median_rates["memory"])
    # CPU time of this process per patch does not depend on what else runs on the machine: the
    # reader's share of it is what it takes from training when training saturates the CPU.
    cpu_ms = {name: 1e3 * statistics.median(s) / (steps * batch_size) for name, s in cpu_seconds.items()}
    cpu_overhead = 100.0 * (cpu_ms["reader"] / cpu_ms["memory"] - 1.0)
    load_median = statistics.median(load_seconds)
    epoch_seconds = train_elements / rates["memory"]
    result = {
        "patch_size": patch_size,
        "batch_size": batch_size,
        "steps_per_round": steps,
        "rounds": _ROUNDS.value,
        "num_blocks": _NUM_BLOCKS.value,
        "train_patches_per_s": {"memory": rates["memory"], "reader": rates["reader"]},
        "train_patches_per_s_median": median_rates,
        "reader_overhead_percent_median": median_overhead,
        "cpu_ms_per_patch": cpu_ms,
        "reader_cpu_overhead_percent": cpu_overhead,
        "round_seconds": seconds,
        "round_cpu_seconds": cpu_seconds,
        "reader_alone_patches_per_s": reader_alone,
        "reader_overhead_percent": overhead,
        "first_load_split_seconds": first_load_seconds,
        "load_split_seconds": load_seconds,
        "train_split_bytes": split_bytes,
        "load_split_percent_of_epoch": 100.0 * load_median / epoch_seconds,
        "device": tf.config.list_logical_devices()[-1].device_type,
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "tensorflow": tf.__version__,
        "data_dir": str(_DATA_DIR.value or "demo (temporary)"),
    }
    print(f"{'feed':<28}{'patches/s best':>16}{'median':>10}{'CPU ms/patch':>14}")
    print(f"{'in memory (cached)':<28}{rates['memory']:>16.1f}{median_rates['memory']:>10.1f}{cpu_ms['memory']:>14.1f}")
    print(f"{'TFRecord reader':<28}{rates['reader']:>16.1f}{median_rates['reader']:>10.1f}{cpu_ms['reader']:>14.1f}")
    print(f"{'reader alone (no training)':<28}{reader_alone:>16.1f}")
    print(f"reader overhead (goal <= 5 %): wall {overhead:+.1f} % best rounds, {median_overhead:+.1f} % "
          f"medians; CPU time {cpu_overhead:+.1f} %; patch {patch_size}, batch {batch_size}, "
          f"{result['device']}, {os.cpu_count()} cores")
    print(f"load_split to first batch: first {first_load_seconds:.3f} s, later {load_median:.3f} s median "
          f"for {split_bytes / 1e6:.1f} MB, {result['load_split_percent_of_epoch']:.2f} % of one augmented "
          f"epoch ({train_elements} patches, {epoch_seconds:.0f} s)")
    if _OUT.value:
        write_json(_OUT.value, result)
        print(f"wrote {_OUT.value}")


if __name__ == "__main__":
    app.run(main)
