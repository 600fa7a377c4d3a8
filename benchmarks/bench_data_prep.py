r"""Dataset creation speed: micrographs per second through `tem_rf.data.build_dataset`.

  python3 -m benchmarks.bench_data_prep                        # 6 micrographs of 4096x4096
  python3 -m benchmarks.bench_data_prep --num_images=3 --size=2048   # quick

Synthetic high-resolution demo micrographs and masks (`tem_rf.data.synthetic.write_demo_dataset`,
uint16 TIFFs with pixel size) are turned into a TFRecord dataset as ``make_tfrecords`` does:
read and check, x-ray outlier removal, standardisation, 512x512 patches, split, write shards.
The build runs ``--repeats`` times into fresh folders; the fastest counts. Also timed on one
micrograph: reading and preprocessing alone. Writes JSON.
"""

from __future__ import annotations

import os
import platform
import tempfile
import time
from pathlib import Path

from absl import flags

from tem_rf.core import cli

_NUM_IMAGES = flags.DEFINE_integer("num_images", 6, "Micrographs to convert.", lower_bound=3)
_SIZE = flags.DEFINE_integer("size", 4096, "Micrograph height and width in px.")
_PATCH_SIZE = flags.DEFINE_integer("patch_size", 512, "Patch size of the dataset.")
_REPEATS = flags.DEFINE_integer("repeats", 2, "Builds to time; the fastest counts.", lower_bound=1)
_OUT = flags.DEFINE_string("out", "benchmarks/results/data_prep_cpu.json", "Where to write JSON.")


def main(argv: list[str]) -> None:
    del argv
    from tem_rf.data import build_dataset, find_image_files, match_masks, preprocess_micrograph
    from tem_rf.data.reading import read_micrograph
    from tem_rf.core.files import write_json
    from tem_rf.data.synthetic import write_demo_dataset

    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw"
        write_demo_dataset(raw, num_images=_NUM_IMAGES.value, size=_SIZE.value, seed=0)
        pairs = match_masks(find_image_files(raw / "images"), raw / "labels")
        seconds, info = [], {}
        for i in range(_REPEATS.value):
            start = time.perf_counter()
            info = build_dataset(pairs, Path(tmp) / f"dataset{i}", patch_size=_PATCH_SIZE.value, progress=False)
            seconds.append(time.perf_counter() - start)
        read_s, preprocess_s = [], []
        for _ in range(_REPEATS.value):
            start = time.perf_counter()
            image = read_micrograph(pairs[0][0]).data
            read_s.append(time.perf_counter() - start)
            start = time.perf_counter()
            preprocess_micrograph(image)
            preprocess_s.append(time.perf_counter() - start)
    best = min(seconds)
    result = {
        "benchmark": "data_prep", "num_images": _NUM_IMAGES.value, "size": _SIZE.value,
        "patch_size": _PATCH_SIZE.value, "patches_written": info.get("counts"),
        "seconds": [round(s, 3) for s in seconds], "micrographs_per_second": round(_NUM_IMAGES.value / best, 3),
        "read_s": round(min(read_s), 3), "preprocess_s": round(min(preprocess_s), 3),
        "cpu_count": os.cpu_count(), "machine": platform.machine(),
        "load_average_at_end": list(os.getloadavg()),
    }
    print(f"build_dataset: {_NUM_IMAGES.value} micrographs of {_SIZE.value}x{_SIZE.value} in {best:.2f} s "
          f"= {result['micrographs_per_second']:.2f} micrographs/s (read {result['read_s']:.2f} s, "
          f"preprocess {result['preprocess_s']:.2f} s per micrograph); patches {result['patches_written']}")
    write_json(_OUT.value, result)
    print(f"wrote {_OUT.value}")


if __name__ == "__main__":
    cli.run(main)
