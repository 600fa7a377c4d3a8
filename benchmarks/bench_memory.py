r"""Peak memory of segmenting one large micrograph, by stage, in bytes per pixel (issue 27 class 11).

  python3 -m benchmarks.bench_memory                           # 2048, 4096, 8192 px square
  python3 -m benchmarks.bench_memory --sizes=4096 --nomeasure  # the mask alone
  python3 -m benchmarks.bench_memory --sizes=20000 --out=benchmarks/results/memory_20000.json

Each size runs in a fresh process: the network is loaded (``--model``, default the shipped
``pretrained:emps``) and run once on a small image, then a synthetic uint16 micrograph (a 1024 px
demo micrograph tiled to the size, so the particles are real-looking and many) is written as a
TIFF and `tem_rf.serve.segment.segment_file` reads, segments and measures it. A thread samples
the process's own resident memory (RssAnon: what it holds, not the pages of files it maps, which
the system drops or writes out as it needs) every 10 ms; the table gives its peak above what the
process held before reading the micrograph, per stage: preprocessing, the network's tiles,
the mask and instances (measuring) and writing. The JSON gives the peak with mapped files too. Bytes per pixel are that peak over the pixel
count (the uint16 input itself is 2 bytes a pixel). Prints a table and writes JSON (``--out``).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
from absl import flags

from tem_rf.core import cli

_SIZES = flags.DEFINE_list("sizes", ["2048", "4096", "8192"], "Micrograph heights and widths in px.")
_MODEL = flags.DEFINE_string("model", "pretrained:emps", "The network: a run, .keras file or pretrained:NAME.")
_MEASURE = flags.DEFINE_boolean("measure", True, "Measure the particles (instances, table, labels).")
_TILE = flags.DEFINE_integer("tile_size", 1024, "Core tile size (segment's --tile_size).")
_WORKER = flags.DEFINE_integer("worker", None, "Internal: segment one micrograph of this size, print a JSON line.")
_OUT = flags.DEFINE_string("out", "benchmarks/results/memory.json", "Where to write JSON.")

STAGES = ("read", "preprocess", "network", "measure", "write")


def _rss_bytes() -> int:
    """Resident memory: the process's own (anonymous) pages, and all (with mapped files' pages)."""
    with open("/proc/self/status") as status:
        fields = dict(line.split(":", 1) for line in status if ":" in line)
    return int(fields["RssAnon"].split()[0]) * 1024


def _all_rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class _Sampler:
    """The peak resident memory per stage, sampled in a thread."""

    def __init__(self) -> None:
        self.stage = "read"
        self.peaks = dict.fromkeys(STAGES, 0)
        self.all_peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peaks[self.stage] = max(self.peaks[self.stage], _rss_bytes())
            self.all_peak = max(self.all_peak, _all_rss_bytes())
            time.sleep(0.01)

    def __enter__(self) -> _Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def staged(self, stage: str, function):
        def wrapped(*args, **kwargs):
            previous, self.stage = self.stage, stage
            try:
                return function(*args, **kwargs)
            finally:
                self.peaks[stage] = max(self.peaks[stage], _rss_bytes())
                self.stage = previous
        return wrapped


def _micrograph(size: int, path: str) -> None:
    from tem_rf.core.imagej_tiff import write_imagej_tiff
    from tem_rf.data.synthetic import make_micrograph

    tile, _ = make_micrograph("low_res", 1024, rng=0)
    reps = -(-size // 1024)
    image = np.tile(np.clip(tile, 0, 65535).astype(np.uint16), (reps, reps))[:size, :size]
    write_imagej_tiff(path, image, None)


def _worker(size: int) -> None:
    from tem_rf.serve import segment, segmented_micrograph
    from tem_rf.serve.predictor import load_predictor

    folder = tempfile.mkdtemp(prefix="bench_memory_")
    path = os.path.join(folder, "large.tif")
    _micrograph(size, path)
    predictor = load_predictor(_MODEL.value)
    segment.segment_file(_small(folder), predictor, folder, tile_size=_TILE.value, overlay=False)
    before, all_before = _rss_bytes(), _all_rss_bytes()
    with _Sampler() as sampler:
        segment.BandedPreprocess = sampler.staged("preprocess", segment.BandedPreprocess)
        segment.preprocess_micrograph = sampler.staged("preprocess", segment.preprocess_micrograph)
        segment.predict_probability = sampler.staged("network", segment.predict_probability)
        segmented_micrograph._measure_and_write = sampler.staged("measure", segmented_micrograph._measure_and_write)
        segment.write_segmented = sampler.staged("write", segment.write_segmented)
        started = time.perf_counter()
        result = segment.segment_file(path, predictor, os.path.join(folder, "out"), tile_size=_TILE.value,
                                      measure=_MEASURE.value)
        seconds = time.perf_counter() - started
    pixels = size * size
    row = {"size": size, "pixels": pixels, "seconds": round(seconds, 2), "rss_before_mb": round(before / 1e6, 1),
           "particles": (result.particles or {}).get("count"),
           "peak_above_mb": {stage: round(max(peak - before, 0) / 1e6, 1) for stage, peak in sampler.peaks.items()},
           "bytes_per_px": {stage: round(max(peak - before, 0) / pixels, 1) for stage, peak in sampler.peaks.items()},
           # with the pages of memory-mapped files (the scratch maps, a memory-mapped input) that were resident
           "peak_with_mapped_files_above_mb": round((sampler.all_peak - all_before) / 1e6, 1)}
    print(json.dumps(row))


def _small(folder: str) -> str:
    """A small micrograph to run the network once before measuring (graph tracing, allocators)."""
    path = os.path.join(folder, "small.tif")
    _micrograph(1024, path)
    return path


def main(argv: list[str]) -> None:
    if _WORKER.value is not None:
        _worker(_WORKER.value)
        return
    rows = []
    for size in map(int, _SIZES.value):
        command = [sys.executable, "-m", "benchmarks.bench_memory", f"--worker={size}", f"--model={_MODEL.value}",
                   f"--tile_size={_TILE.value}", f"--measure={_MEASURE.value}"]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        if done.returncode or not lines:
            print(f"{size}: failed ({done.returncode})\n{done.stderr[-2000:]}")
            continue
        rows.append(json.loads(lines[-1]))
        row = rows[-1]
        print(f"{size:>6}² {row['seconds']:>7.1f} s  " + "  ".join(
            f"{stage} {row['bytes_per_px'][stage]:>5.1f}" for stage in STAGES) + "  B/px above the loaded model "
            f"(peak {max(row['peak_above_mb'].values()):.0f} MB; {row['peak_with_mapped_files_above_mb']:.0f} MB with "
            f"mapped files; {row['particles']} particles)")
    os.makedirs(os.path.dirname(_OUT.value) or ".", exist_ok=True)
    with open(_OUT.value, "w") as out:
        json.dump({"machine": platform.node(), "cpus": os.cpu_count(), "model": _MODEL.value,
                   "measure": _MEASURE.value, "tile_size": _TILE.value, "rows": rows}, out, indent=2)


if __name__ == "__main__":
    cli.run(main)
