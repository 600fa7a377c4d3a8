r"""Segmenting a movie frame by frame: its speed, what measuring and tracking add to it, and its
memory (peak RSS of `segment_movie` for movies of more and more frames, which should not grow).

  python3 -m benchmarks.bench_movie                        # 512x512 px, 10 / 40 / 160 frames, N=2
  python3 -m benchmarks.bench_movie --frames=100 --size=1024 --out=benchmarks/results/movie_speed.json
  python3 -m benchmarks.bench_movie --frames=5,20 --size=256   # quick
  python3 -m benchmarks.bench_movie --format=mrc           # the movie as an MRC stack (memory-mapped)

Speed: frames per second of segmenting alone (each frame read and through the network, its mask
made and dropped: a loop of `segment_file`), then the whole `segment_movie` on the same frames,
and what it adds to segmenting alone: measuring each frame (while the next is segmented), linking
the tracks and finding the events, and writing the hyperstacks, tables and plots (issue 26's goal:
at most 25 %). The seconds of measuring, tracking and writing are given too (measuring overlaps
segmenting, so its seconds are not all added).

Each movie is segmented in a fresh process (untrained weights: time and memory do not depend on
them); the table gives its size on disk, the seconds, the peak resident memory (which counts the
pages of the memory-mapped input and of the disk-backed masks and labels that were touched: the
system reclaims those) and the anonymous resident memory at the end (what the process itself
holds). Prints a table and writes JSON (``--out``).
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np
from absl import flags

from tem_rf.core import cli

_FRAMES = flags.DEFINE_list("frames", ["10", "40", "160"], "Movie lengths to segment.")
_SIZE = flags.DEFINE_integer("size", 512, "Frame height and width in px.")
_NUM_BLOCKS = flags.DEFINE_integer("num_blocks", 2, "Depth N of the network.")
_MODEL = flags.DEFINE_string("model", None, "A run, .keras file or pretrained:NAME to segment with (default: an "
                             "untrained network of --num_blocks; the time of measuring depends on what it finds).")
_WORKER = flags.DEFINE_string("worker", None, "Internal: segment this movie file and print a JSON line.")
_FORMAT = flags.DEFINE_enum("format", "tif", ["tif", "mrc"], "How the movie is stored: an uncompressed ImageJ TIFF "
                            "stack or an MRC stack (mrcfile, the formats extra).")
_OUT = flags.DEFINE_string("out", "benchmarks/results/movie.json", "Where to write JSON.")


def _segment(path: str) -> None:
    from tem_rf.models import residual_unet
    from tem_rf.models.geometry import model_geometry
    from tem_rf.serve.movie import segment_movie
    from tem_rf.serve.predictor import Predictor

    if _MODEL.value:
        from tem_rf.serve.predictor import load_predictor

        predictor = load_predictor(_MODEL.value)
    else:
        model = residual_unet(_NUM_BLOCKS.value, seed=0)
        geometry = model_geometry(model)
        metadata = {"size_divisor": geometry.size_divisor, "halo_px": geometry.halo_px, "pixel_size_nm": 0.5,
                    "architecture": model.name}
        predictor = Predictor(lambda x: {"particle_probability": model(x, training=False)[..., 1]}, metadata,
                              "untrained")
    from tem_rf.data.reading import MovieFile
    from tem_rf.serve.segment import read_and_segment

    out = os.path.dirname(path) + "/out"
    movie = MovieFile(path)
    read_and_segment(path, predictor, out, micrograph=movie.frame(0), overlay=False, tile_size=None)
    start = time.perf_counter()  # segmenting alone: each frame read and through the network, nothing kept
    for frame in range(movie.count):
        read_and_segment(path, predictor, out, micrograph=movie.frame(frame), overlay=False, tile_size=None)
    alone = time.perf_counter() - start
    start = time.perf_counter()
    record = segment_movie(path, predictor, out, tile_size=None)
    seconds = time.perf_counter() - start
    status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines() if ":" in line)
    anonymous = float(status.get("RssAnon", "0 kB").split()[0]) / 1024  # not the file-backed pages of the maps
    print(json.dumps({"seconds": round(seconds, 2), "segment_alone_seconds": round(alone, 2),
                      "frames": len(record["frames"]), "phases": record["seconds"],
                      "tracks": (record["tracking"] or {}).get("tracks"),
                      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                      "anonymous_rss_mb_at_end": round(anonymous, 1)}))


def _as_mrc(tiff: str) -> str:
    """The demo movie at ``tiff`` rewritten as an MRC stack (float32, voxel size in Angstrom)."""
    import mrcfile
    import tifffile

    path = tiff[:-4] + ".mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(tifffile.imread(tiff).astype(np.float32))
        mrc.voxel_size = 5.0  # 0.5 nm, the demo's
    os.remove(tiff)
    return path


def main(argv: list[str]) -> None:
    del argv
    if _WORKER.value:
        _segment(_WORKER.value)
        return
    from tem_rf.core.files import write_json
    from tem_rf.data.synthetic_movie import write_demo_movie

    rows = []
    for frames in map(int, _FRAMES.value):
        with tempfile.TemporaryDirectory() as tmp:
            write_demo_movie(f"{tmp}/movie", num_frames=frames, size=_SIZE.value, seed=0)
            movie = f"{tmp}/movie/movie.tif"
            if _FORMAT.value == "mrc":
                movie = _as_mrc(movie)
            out = subprocess.run([sys.executable, "-m", "benchmarks.bench_movie", f"--worker={movie}",
                                  f"--num_blocks={_NUM_BLOCKS.value}",
                                  *([f"--model={_MODEL.value}"] if _MODEL.value else [])], capture_output=True, text=True, check=True,
                                 env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
            row = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append(row | {"movie_mb": round(os.path.getsize(movie) / 2**20, 1)})
    network = _MODEL.value or f"N={_NUM_BLOCKS.value} (untrained)"
    print(f"segment_movie, {network}, {_SIZE.value}x{_SIZE.value} px frames ({os.cpu_count()} CPUs)")
    print(f"{'frames':>7} {'movie MB':>9} {'segment s':>10} {'fps':>6} {'movie s':>8} {'added %':>8} "
          f"{'measure s':>10} {'track s':>8} {'write s':>8} {'peak RSS MB':>12} {'anonymous MB':>13}")
    for row in rows:
        phases = row["phases"]
        row["segment_fps"] = round(row["frames"] / row["segment_alone_seconds"], 3)
        row["added_share"] = round(row["seconds"] / row["segment_alone_seconds"] - 1, 4)
        print(f"{row['frames']:>7} {row['movie_mb']:>9.1f} {row['segment_alone_seconds']:>10.1f} "
              f"{row['segment_fps']:>6.2f} {row['seconds']:>8.1f} {100 * row['added_share']:>8.1f} "
              f"{phases['measure']:>10.1f} {phases['track']:>8.1f} {phases['write']:>8.1f} {row['peak_rss_mb']:>12.1f} "
              f"{row['anonymous_rss_mb_at_end']:>13.1f}")
    write_json(_OUT.value, {"benchmark": "movie", "size": _SIZE.value, "format": _FORMAT.value, "num_blocks": _NUM_BLOCKS.value, "model": network, "rows": rows,
                            "cpu_count": os.cpu_count(), "machine": platform.machine()})
    print(f"wrote {_OUT.value}")


if __name__ == "__main__":
    cli.run(main)
