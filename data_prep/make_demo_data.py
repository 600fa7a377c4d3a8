r"""Writes a small synthetic TEM dataset (micrographs + exact masks), or a movie, in seconds; no download.

  python -m data_prep.make_demo_data --out_dir=demo_out/raw
  python -m data_prep.make_demo_data --out_dir=demo_out/raw_lowres --kind=low_res --num_images=12
  python -m data_prep.make_demo_data --out_dir=demo_out/movie --kind=movie --num_frames=40 --size=256

Writes OUT_DIR/images/<kind>_NNN.tif (uint16 camera counts, pixel size in the TIFF's ImageJ
metadata), OUT_DIR/labels/<kind>_NNN_mask.png (0/255) and OUT_DIR/demo.json; feed them to
data_prep.make_tfrecords (--images=OUT_DIR/images --labels=OUT_DIR/labels). --kind=movie writes an
in-situ movie (particles appearing, growing, drifting, dissolving, coalescing; tem_rf.data.
synthetic_movie): movie.tif (an ImageJ hyperstack, frame interval in its metadata), the true
movie_labels.tif, tracks.csv, events.csv and movie.json.
"""

from __future__ import annotations

import time

from absl import app, flags

from tem_rf.core import cli

_OUT_DIR = flags.DEFINE_string("out_dir", None, "Folder to create (images/, labels/, demo.json; or the movie's files).")
_KIND = flags.DEFINE_enum(
    "kind", "high_res", ["high_res", "low_res", "movie"],
    "high_res: lattice fringes, weak amplitude contrast; low_res: particles darker than background; "
    "movie: a low-resolution in-situ movie with its true tracks and events.",
)
_NUM_IMAGES = flags.DEFINE_integer("num_images", 10, "Number of micrographs.", lower_bound=1)
_NUM_FRAMES = flags.DEFINE_integer("num_frames", 40, "movie: number of frames.", lower_bound=2)
_FRAME_INTERVAL = flags.DEFINE_float("frame_interval_s", 0.5, "movie: seconds between frames.", lower_bound=0.0)
_SIZE = flags.DEFINE_integer("size", 512, "Micrograph height and width in pixels.", lower_bound=8)
_SEED = flags.DEFINE_integer("seed", 0, "Random seed; the same seed gives the same files.")
_PIXEL_SIZE_NM = flags.DEFINE_float(
    "pixel_size_nm", None, "Pixel size in nm (default: the paper's, 0.02152 high_res, 0.1243 low_res; 0.5 movie)."
)
_OVERWRITE = flags.DEFINE_boolean("overwrite", False, "Replace an existing demo dataset in --out_dir.")
_PROGRESS = flags.DEFINE_boolean("progress", True, "Show a progress bar over the micrographs.")
flags.mark_flag_as_required("out_dir")


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    start = time.perf_counter()
    if _KIND.value == "movie":
        from tem_rf.data.synthetic_movie import write_demo_movie

        info = write_demo_movie(_OUT_DIR.value, _NUM_FRAMES.value, _SIZE.value, _SEED.value,
                                pixel_size_nm=_PIXEL_SIZE_NM.value, frame_interval_s=_FRAME_INTERVAL.value,
                                overwrite=_OVERWRITE.value)
        what = f"a movie of {info['num_frames']} frames, {info['tracks']} particle tracks, events {info['events']},"
    else:
        from tem_rf.data.synthetic import write_demo_dataset

        info = write_demo_dataset(_OUT_DIR.value, _NUM_IMAGES.value, _SIZE.value, _KIND.value, _SEED.value,
                                  pixel_size_nm=_PIXEL_SIZE_NM.value, overwrite=_OVERWRITE.value,
                                  progress=_PROGRESS.value)
        what = f"{info['num_images']} {info['kind']} micrographs of"
    print(f"wrote {what} {info['size']}x{info['size']} px ({info['pixel_size_nm']} nm/px) to {_OUT_DIR.value} "
          f"in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    cli.run(main)
