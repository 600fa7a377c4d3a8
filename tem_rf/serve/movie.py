"""Every frame of a movie or series: segmented and measured one frame at a time, written as one
ImageJ hyperstack per movie (issue 26, items 1 and 2).

`segment_movie` reads the frames one by one (a TIFF stack stored uncompressed is memory-mapped, so
only the frame in use is in memory), segments and measures each as `segment` does a micrograph
(`tem_rf.serve.segment.segment_file`'s reading, scale and particle rules), and writes into
``out_dir``:

* ``<stem>_masks.tif``: uint8 0/255 masks, ``<stem>_labels.tif``: uint16 particle ids per frame
  (ids restart in every frame: tracking links them), both ImageJ hyperstacks with axes TYX, the
  pixel size and, when known, the frame interval;
* ``<stem>_particles.csv``: one row per particle and frame: ``frame``, ``time_s`` (empty when the
  interval is unknown) and the particle table's columns (`tem_rf.particles.measure.COLUMNS`);
* ``<stem>_movie.json``: the frames segmented, the interval and where it came from (``file``,
  ``flag`` or ``unknown``: time is then in frames), and per frame the count and the median diameter.

The masks and labels collect in disk-backed arrays beside the outputs while frames are segmented,
so memory stays bounded by a few frames; everything is written under temporary names and renamed
when complete, and existing outputs are replaced only with ``overwrite``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from tem_rf.core.errors import InputError
from tem_rf.data.synthetic_movie import EVENT_COLUMNS  # the demo truth's table: found events compare with it

logger = logging.getLogger(__name__)

MOVIE_OUTPUTS = {"masks": "_masks.tif", "labels": "_labels.tif", "particles": "_particles.csv",
                 "tracks": "_tracks.csv", "events": "_events.csv", "summary": "_movie.json",
                 "growth": "_growth.png", "size_map": "_size_map.png", "longest_tracks": "_longest_tracks.png",
                 "montage": "_montage.png"}  # the plots: `tem_rf.serve.movie_plots`
TRACK_MEMORY_FRAMES = 2  # a particle may go unseen this many frames and keep its track
PER_FRAME_STATISTICS = ("diameter_median", "diameter_q1", "diameter_q3", "diameter_unit")  # in <stem>_movie.json


def parse_frames(spec: str | int | None, count: int, path: str | os.PathLike | None = None) -> list[int]:
    """The frame indices ``spec`` names in a movie of ``count`` frames: ``all``, one index, a
    Python slice ``start:stop[:step]`` (``0:100:2``) or a comma-separated list; refused (naming
    ``path``) when it names none or one outside 0..count-1."""
    text = "all" if spec is None else str(spec).strip()
    try:
        if text == "all":
            frames = list(range(count))
        elif ":" in text:
            parts = [int(p) if p.strip() else None for p in text.split(":")]
            if len(parts) > 3:
                raise ValueError
            frames = list(range(count))[slice(*parts)]
        else:
            frames = [int(p) for p in text.split(",")]
    except ValueError:
        raise InputError(path, f"--frames={text}: give all, an index, start:stop[:step] or a list such as 0,5,9") from None
    outside = [f for f in frames if not 0 <= f < count]
    if outside or not frames:
        raise InputError(path, f"--frames={text} names {'frame ' + str(outside[0]) if outside else 'no frame'}; "
                               f"it has {count} frames (0 to {count - 1})")
    return frames


def movie_outputs(path: str | os.PathLike, out_dir: str | os.PathLike) -> dict[str, Path]:
    """The files `segment_movie` writes for ``path``, by kind."""
    stem = Path(path).stem
    return {kind: Path(out_dir) / f"{stem}{suffix}" for kind, suffix in MOVIE_OUTPUTS.items()}


def segment_movie(
    path: str | os.PathLike,
    predictor: Any,
    out_dir: str | os.PathLike,
    *,
    frames: str | int | None = "all",
    frame_interval_s: float | None = None,
    overwrite: bool = False,
    progress: bool = False,
    signal: str | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Segments and measures the ``frames`` (`parse_frames`) of the movie at ``path`` with
    ``predictor`` (``options``: `segment_file`'s, e.g. tile_size, threshold, pixel_size_nm,
    resample, min_particle_area_nm2) and writes the outputs of the module docstring. The frame
    interval is the file's, else ``frame_interval_s``. Returns what ``<stem>_movie.json`` holds."""
    from tem_rf.core.outputs import check_new_files
    from tem_rf.data.reading import MovieFile

    movie = MovieFile(path, signal=signal)  # read once; each frame's pixels when it is used
    count = movie.count
    chosen = parse_frames(frames, count, path)
    interval, source = movie.interval_s, "file"
    if interval is None and frame_interval_s is not None:
        if not frame_interval_s > 0:
            raise InputError(None, f"--frame_interval_s must be a positive number of seconds, got {frame_interval_s}")
        interval, source = float(frame_interval_s), "flag"
    if interval is None:
        source = "unknown"
    files = movie_outputs(path, out_dir)
    check_new_files(files.values(), overwrite)
    made = not Path(out_dir).exists()
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    try:
        return _segment_frames(movie, predictor, out_dir, files, chosen, interval, source, overwrite, progress,
                               options)
    except BaseException:
        if made and not any(Path(out_dir).iterdir()):  # a failed call leaves the disk as it was
            Path(out_dir).rmdir()
        raise


def _segment_frames(movie, predictor, out_dir, files, chosen, interval, source, overwrite, progress,
                    options) -> dict[str, Any]:
    """`segment_movie` once its options are checked and ``out_dir`` exists (``movie``: its
    `tem_rf.data.reading.MovieFile`)."""
    path, count = movie.path, movie.count
    from tem_rf.core.files import write_csv, write_json
    from tem_rf.core.imagej_tiff import write_imagej_tiff
    from tem_rf.core.outputs import new_files
    from tem_rf.core.progress import progress_bar
    from tem_rf.particles import measure_particles, summarise
    from tem_rf.particles.particle import COLUMNS
    from tem_rf.serve.movie_plots import montage_positions, montage_tile, write_movie_plots
    from tem_rf.serve.segment import read_and_segment

    shown = set(montage_positions(len(chosen)))
    tiles = []  # the montage's frames, made while each is at hand
    detections: list[dict[str, Any]] = []  # each particle's table row, with its frame and time
    per_frame: list[dict[str, Any]] = []
    pixel_size = None
    seconds = dict.fromkeys(("segment", "measure", "track", "write"), 0.0)  # where the time goes (benchmarks)
    stores: dict[str, np.ndarray] = {}  # the masks and labels of every frame, disk-backed

    def measure(position: int, frame: int, segmented: Any, scratch: str) -> None:
        """Measures one segmented frame into the movie's tables and stores (in frame order: one
        frame at a time, while the next is segmented)."""
        started = time.perf_counter()
        particles, frame_labels = measure_particles(
            segmented.maps.mask.view(bool), segmented.micrograph.pixel_size_nm, probability=segmented.maps.probability,
            boundary=segmented.maps.boundary, instance_rule=segmented.maps.rule, exclude=segmented.excluded[0],
            min_area_px=segmented.min_area, return_labels=True, image=segmented.micrograph.data,
        )
        time_s = None if interval is None else round(frame * interval, 6)
        detections.extend({"frame": frame, "time_s": time_s, **p.row()} for p in particles)
        summary = summarise(particles, segmented.maps.mask.shape, segmented.micrograph.pixel_size_nm)
        per_frame.append({"frame": frame, "time_s": time_s, "count": summary["count"],
                          "count_measured": summary["count_measured"],
                          **{key: summary.get(key) for key in PER_FRAME_STATISTICS}})
        if position in shown:
            when = f"{time_s:g} s" if time_s is not None else "time unknown"
            tiles.append(montage_tile(segmented.micrograph.data, frame_labels, frame, f"frame {frame}, {when}"))
        if not stores:  # disk-backed: a long movie need not fit in memory
            shape = (len(chosen),) + segmented.maps.mask.shape
            stores["masks"] = np.lib.format.open_memmap(Path(scratch) / "masks.npy", "w+", np.uint8, shape)
            stores["labels"] = np.lib.format.open_memmap(Path(scratch) / "labels.npy", "w+", np.uint16, shape)
        if frame_labels.max(initial=0) > np.iinfo(np.uint16).max:
            raise InputError(path, f"frame {frame}: more particles than a uint16 label image holds")
        stores["masks"][position] = segmented.maps.mask * np.uint8(255)
        stores["labels"][position] = frame_labels
        seconds["measure"] += time.perf_counter() - started

    # named like `atomic_directory`'s temporaries of the masks, so a killed run's is found and cleared
    with tempfile.TemporaryDirectory(prefix=f".{files['masks'].name}.tmp-", suffix="", dir=out_dir) as scratch, \
            ThreadPoolExecutor(max_workers=1) as measurer:
        measuring = None  # the previous frame's measuring, run while this one is segmented
        for position, frame in enumerate(progress_bar(chosen, desc=f"{Path(path).name}: frames", unit="frame",
                                                       enabled=progress)):
            started = time.perf_counter()
            segmented = read_and_segment(path, predictor, out_dir, micrograph=movie.frame(frame), overlay=False,
                                         **options)
            seconds["segment"] += time.perf_counter() - started
            pixel_size = segmented.micrograph.pixel_size_nm
            if measuring is not None:
                measuring.result()
            measuring = measurer.submit(measure, position, frame, segmented, scratch)
        measuring.result()
        masks, labels = stores["masks"], stores["labels"]
        started = time.perf_counter()
        tracking = _tracks(detections, track_rows := [], event_rows := [])
        seconds["track"] = time.perf_counter() - started
        record = {
            "tracking": tracking,
            "input": str(path), "frames": chosen, "frame_count": count, "frame_interval_s": interval,
            "frame_interval_source": source, "time_unit": "s" if interval is not None else "frame",
            "pixel_size_nm": pixel_size, "files": {kind: str(file) for kind, file in files.items()},
            "per_frame": per_frame,
        }
        with new_files(files.values(), overwrite=overwrite) as temporary:
            for kind, stack in (("masks", masks), ("labels", labels)):
                write_imagej_tiff(temporary[files[kind]], stack, pixel_size, axes="TYX", frame_interval_s=interval)
            write_csv(temporary[files["particles"]], detections, columns=["frame", "time_s", *COLUMNS])
            write_csv(temporary[files["tracks"]], track_rows, columns=TRACK_COLUMNS)
            write_csv(temporary[files["events"]], event_rows, columns=EVENT_COLUMNS)
            write_movie_plots({kind: temporary[file] for kind, file in files.items()}, per_frame, detections,
                              track_rows, tiles, pixel_size)
            seconds["write"] = time.perf_counter() - started - seconds["track"]
            record["seconds"] = {kind: round(value, 3) for kind, value in seconds.items()}
            write_json(temporary[files["summary"]], record)
        del masks, labels  # the memory maps, before their folder goes
        stores.clear()
    return record


TRACK_COLUMNS = ("track", "frame", "time_s", "particle", "x_px", "y_px", "x_nm", "y_nm", "diameter_px", "diameter_nm",
                 "touches_edge")

def _tracks(detections: list[dict[str, Any]], track_rows: list[dict[str, Any]],
            event_rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Links the movie's particles (`tem_rf.serve.tracking`) into ``track_rows`` and its events
    into ``event_rows``; what was done, for ``<stem>_movie.json`` (None without trackpy: the
    tables then hold their headers only, and a warning says how to get it)."""
    from tem_rf.core.errors import TemRfError
    from tem_rf.serve.tracking import find_events, link_tracks

    if not detections:
        return {"tracks": 0, "search_range_px": None, "memory_frames": TRACK_MEMORY_FRAMES}
    # a particle moves less than half the median particle's diameter between two frames
    search = max(3.0, 0.5 * float(np.median([d["diameter_px"] for d in detections])))
    try:
        tracks = link_tracks(detections, search_range_px=search, memory=TRACK_MEMORY_FRAMES)
    except TemRfError as error:
        logger.warning("%s; tracks.csv and events.csv hold their headers only", error)
        return None
    times = {d["frame"]: d["time_s"] for d in detections}
    for detection, track in sorted(zip(detections, tracks), key=lambda pair: (pair[1], pair[0]["frame"])):
        track_rows.append({"track": track, "frame": detection["frame"], "time_s": detection["time_s"],
                           "particle": detection["id"], **{k: detection[k] for k in TRACK_COLUMNS[4:]}})
    for event in find_events(detections, tracks):
        event_rows.append({"frame": event["frame"], "time_s": times.get(event["frame"]), "kind": event["kind"],
                           "track": event["track"], "parents": ";".join(map(str, event["parents"]))})
    return {"tracks": len(set(tracks)), "search_range_px": round(search, 2), "memory_frames": TRACK_MEMORY_FRAMES,
            "events": {kind: sum(e["kind"] == kind for e in event_rows)
                       for kind in ("appearance", "disappearance", "coalescence")}}


@dataclasses.dataclass
class MovieRun:
    """What `segment_movies` did: the model, the movies, what each gave, what failed."""

    model: str
    inputs: list[Path]
    out_dir: Path
    records: list[dict[str, Any]]  # `segment_movie`'s, one per movie written
    failures: list[tuple[str, str]]  # (input, message)
    results: list = dataclasses.field(default_factory=list)  # no single-micrograph results

    def summary_lines(self) -> list[str]:
        """One line per movie (frames, time, particles in the first and last frame), then a total."""
        lines = []
        for record in self.records:
            first, last = record["per_frame"][0], record["per_frame"][-1]
            unit = first.get("diameter_unit") or ""
            time = (f"every {record['frame_interval_s']:g} s ({record['frame_interval_source']})"
                    if record["frame_interval_s"] else "time in frames (no interval: --frame_interval_s)")
            median = ("" if first["diameter_median"] is None or last["diameter_median"] is None else
                      f", median diameter {first['diameter_median']:.3g} -> {last['diameter_median']:.3g} {unit}")
            lines.append(f"{record['input']}: {len(record['frames'])} frames, {time}; particles {first['count']} -> "
                         f"{last['count']}{median} -> {record['files']['masks']}")
        return [*lines, f"wrote {len(self.records)} of {len(self.inputs)} movies to {self.out_dir}"]

    def failure_line(self) -> str | None:
        """The failures in one line (None when there are none)."""
        if not self.failures:
            return None
        count = f"{len(self.failures)} of {len(self.inputs)} movies failed"
        return f"{count}: " + "; ".join(message for _, message in self.failures)


def segment_movies(paths: list[Path], predictor: Any, description: str, out_dir: str | os.PathLike, *,
                   frames: str, frame_interval_s: float | None = None, overwrite: bool = False,
                   progress: bool = False, **options: Any) -> MovieRun:
    """`segment_movie` for each of ``paths``, under the output folder's lock (the caller's: a
    killed run's temporaries are cleared first); a movie that cannot be read or segmented is a
    failure (logged, named in `MovieRun.failure_line`), the others are still written."""
    from tem_rf.core.locks import remove_stale_temporaries

    records, failures = [], []
    for path in paths:
        # the caller holds the output folder's lock: a killed run's temporaries can go
        remove_stale_temporaries(movie_outputs(path, out_dir).values())
        try:
            records.append(segment_movie(path, predictor, out_dir, frames=frames, frame_interval_s=frame_interval_s,
                                         overwrite=overwrite, progress=progress, **options))
        except InputError as error:
            logger.error("%s", error)
            failures.append((str(path), str(error)))
    return MovieRun(description, list(paths), Path(out_dir), records, failures)


__all__ = ["MOVIE_OUTPUTS", "MovieRun", "movie_outputs", "parse_frames", "segment_movie", "segment_movies"]
