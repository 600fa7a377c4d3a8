"""Synthetic in-situ TEM movies with their truth: particles that appear, grow, drift, shrink away
and coalesce, frame by frame, with every track and event recorded.

A movie is what tem_rf's tracking is scored against (issue 26): the same low-resolution contrast as
`tem_rf.data.synthetic` (mass-thickness, dark particles on amorphous carbon, Poisson noise at the
paper's dose), one fixed substrate for the whole movie and fresh shot noise per frame. The
particles are discs:

* at frame 0 some particles are there; later ones nucleate at a free place (``appearance``);
* each drifts at its own constant velocity and grows (or shrinks) at its own rate; one whose
  radius falls under `MIN_RADIUS_PX` dissolves (``disappearance``, Ostwald ripening);
* two that touch (their drawn discs within `MERGE_GAP_PX`) merge into a new particle
  (``coalescence``: a new track whose area is the sum of the two, at their area-weighted centre;
  both parents end there);
* a particle whose centre drifts out of the field ends (``left_field``).

`make_movie` returns the frames, the true instance labels (the track id in each pixel) and the
truth; `write_demo_movie` writes them as files a microscope would give (one ImageJ hyperstack, the
time axis calibrated) plus the truth as CSV and JSON.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from tem_rf.data.synthetic import DEFAULT_DOSE_E_PER_A2, amorphous_speckle, as_rng, camera_counts

MOVIE_JSON = "movie.json"  # lists the files of a demo movie and its parameters
MOVIE_FILE = "movie.tif"
LABELS_FILE = "movie_labels.tif"
TRACKS_FILE = "tracks.csv"
EVENTS_FILE = "events.csv"
EVENT_KINDS = ("appearance", "disappearance", "coalescence", "left_field")
EVENT_COLUMNS = ("frame", "time_s", "kind", "track", "parents")
MIN_RADIUS_PX = 1.5  # a particle shrinking below this has dissolved
# Discs drawn this close are one blob of touching pixels in the image: they coalesce then, so the
# truth is what the image shows.
MERGE_GAP_PX = 1.5
DEFAULT_PIXEL_SIZE_NM = 0.5  # a field of 128 nm at 256 px: particles of 10-30 px
DEFAULT_DIAMETER_NM = (4.0, 8.0)  # when they appear
GROWTH_NM_PER_FRAME = (0.02, 0.08)  # radius; 15 % of the particles shrink instead, at 0.05-0.1 nm a frame


@dataclasses.dataclass
class Track:
    """One particle from the frame it appears (``birth``) to the frame it is gone (``end``,
    exclusive; None while it lives): centre (row, col) and radius in px at ``birth``, per-frame
    velocity and growth in px, and its contrast (fraction of the beam it absorbs at its centre)."""

    id: int
    birth: int
    row: float
    col: float
    radius: float
    velocity: tuple[float, float]
    growth: float
    contrast: float
    end: int | None = None
    parents: tuple[int, ...] = ()

    def at(self, frame: int) -> tuple[float, float, float]:
        """Centre row, column and radius (px) at ``frame``."""
        steps = frame - self.birth
        return (self.row + self.velocity[0] * steps, self.col + self.velocity[1] * steps,
                self.radius + self.growth * steps)

    def alive(self, frame: int) -> bool:
        return self.birth <= frame and (self.end is None or frame < self.end)


@dataclasses.dataclass
class Movie:
    """A synthetic movie: ``frames`` float32 camera counts [T, H, W], ``labels`` uint16 [T, H, W]
    (the id of the track covering each pixel, 0 background), the ``tracks`` and the ``events``
    (dicts: frame, kind, track and, for coalescence, parents)."""

    frames: np.ndarray
    labels: np.ndarray
    tracks: list[Track]
    events: list[dict[str, Any]]
    pixel_size_nm: float
    frame_interval_s: float


def _free_place(size: int, radius: float, tracks: list[Track], frame: int, rng: np.random.Generator
                ) -> tuple[float, float] | None:
    """A centre at least a few px away from every living particle, or None after some tries."""
    for _ in range(50):
        row, col = rng.uniform(radius, size - radius, 2)
        if all(math.hypot(row - r, col - c) > radius + rr + 4 for r, c, rr in
               (t.at(frame) for t in tracks if t.alive(frame))):
            return float(row), float(col)
    return None


def _new_track(ident: int, frame: int, row: float, col: float, radius: float, rng: np.random.Generator,
               pixel_size_nm: float) -> Track:
    growth_nm = rng.uniform(*GROWTH_NM_PER_FRAME) if rng.random() < 0.85 else -rng.uniform(0.05, 0.1)
    speed = rng.uniform(0.0, 0.4)  # px per frame
    angle = rng.uniform(0, 2 * math.pi)
    return Track(ident, frame, row, col, radius, (speed * math.sin(angle), speed * math.cos(angle)),
                 float(growth_nm / pixel_size_nm), float(rng.uniform(0.35, 0.55)))


def simulate_tracks(num_frames: int, size: int, pixel_size_nm: float, rng: np.random.Generator, *,
                    initial: int = 12, appear_rate: float = 0.3,
                    diameter_nm: tuple[float, float] = DEFAULT_DIAMETER_NM) -> tuple[list[Track], list[dict]]:
    """The particles' life histories over ``num_frames`` frames of a ``size`` px field: ``initial``
    particles at frame 0, about ``appear_rate`` new ones per frame. Returns (tracks, events)."""
    radius_px = (diameter_nm[0] / pixel_size_nm / 2, diameter_nm[1] / pixel_size_nm / 2)
    tracks: list[Track] = []
    events: list[dict[str, Any]] = []

    def nucleate(frame: int) -> None:
        radius = float(rng.uniform(*radius_px))
        place = _free_place(size, radius, tracks, frame, rng)
        if place is None:
            return
        tracks.append(_new_track(len(tracks) + 1, frame, *place, radius, rng, pixel_size_nm))
        if frame > 0:
            events.append({"frame": frame, "kind": "appearance", "track": tracks[-1].id, "parents": []})

    for _ in range(initial):
        nucleate(0)
    for frame in range(1, num_frames):
        for track in [t for t in tracks if t.alive(frame)]:
            row, col, radius = track.at(frame)
            if radius < MIN_RADIUS_PX:
                track.end = frame
                events.append({"frame": frame, "kind": "disappearance", "track": track.id, "parents": []})
            elif not (0 <= row < size and 0 <= col < size):
                track.end = frame
                events.append({"frame": frame, "kind": "left_field", "track": track.id, "parents": []})
        merged = True
        while merged:  # pairs that touch merge, one pair at a time (a merged one may touch another)
            merged = False
            living = [t for t in tracks if t.alive(frame)]
            for i, a in enumerate(living):
                ra, ca, sa = a.at(frame)
                for b in living[i + 1:]:
                    rb, cb, sb = b.at(frame)
                    if math.hypot(ra - rb, ca - cb) < sa + sb + MERGE_GAP_PX:
                        wa, wb = sa * sa, sb * sb
                        child = Track(
                            len(tracks) + 1, frame, (wa * ra + wb * rb) / (wa + wb), (wa * ca + wb * cb) / (wa + wb),
                            math.sqrt(wa + wb),
                            ((wa * a.velocity[0] + wb * b.velocity[0]) / (wa + wb),
                             (wa * a.velocity[1] + wb * b.velocity[1]) / (wa + wb)),
                            max(a.growth, b.growth, 0.0), (a.contrast + b.contrast) / 2, parents=(a.id, b.id),
                        )
                        a.end = b.end = frame
                        tracks.append(child)
                        events.append({"frame": frame, "kind": "coalescence", "track": child.id,
                                       "parents": [a.id, b.id]})
                        merged = True
                        break
                if merged:
                    break
        for _ in range(rng.poisson(appear_rate)):
            nucleate(frame)
    return tracks, events


def make_movie(num_frames: int = 40, size: int = 256, *, pixel_size_nm: float | None = None,
               frame_interval_s: float = 0.5, rng: np.random.Generator | int | None = None,
               dose_e_per_a2: float | None = None, **simulation: Any) -> Movie:
    """A `Movie` of ``num_frames`` frames of ``size`` x ``size`` px (`simulate_tracks` options in
    ``simulation``). The same seed gives the same movie."""
    if num_frames < 2:
        raise ValueError(f"a movie needs at least 2 frames, got {num_frames}")
    if size < 32:
        raise ValueError(f"size must be at least 32 pixels, got {size}")
    rng = as_rng(rng)
    pixel_size_nm = DEFAULT_PIXEL_SIZE_NM if pixel_size_nm is None else float(pixel_size_nm)
    dose = DEFAULT_DOSE_E_PER_A2["low_res"] if dose_e_per_a2 is None else float(dose_e_per_a2)
    tracks, events = simulate_tracks(num_frames, size, pixel_size_nm, rng, **simulation)
    substrate = 1.0 + 0.05 * amorphous_speckle(size, max(1.0 / pixel_size_nm, 0.7), rng)  # the same carbon throughout
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)
    frames = np.empty((num_frames, size, size), np.float32)
    labels = np.zeros((num_frames, size, size), np.uint16)
    for frame in range(num_frames):
        transmission = substrate.copy()
        for track in tracks:
            if not track.alive(frame):
                continue
            row, col, radius = track.at(frame)
            r0, r1 = max(int(row - radius) - 1, 0), min(int(row + radius) + 2, size)
            c0, c1 = max(int(col - radius) - 1, 0), min(int(col + radius) + 2, size)
            if r0 >= r1 or c0 >= c1:
                continue
            radius2 = ((rows[r0:r1, c0:c1] - row) ** 2 + (cols[r0:r1, c0:c1] - col) ** 2) / radius**2
            inside = radius2 <= 1.0
            labels[frame, r0:r1, c0:c1][inside] = track.id
            thickness = np.sqrt(np.clip(1.0 - radius2, 0.0, None))
            transmission[r0:r1, c0:c1] -= np.where(inside, track.contrast * thickness, 0.0)
        frames[frame] = camera_counts(np.clip(transmission, 0.0, None), dose, pixel_size_nm, rng)
    return Movie(frames, labels, tracks, events, pixel_size_nm, float(frame_interval_s))


def track_rows(movie: Movie) -> list[dict[str, Any]]:
    """The truth per track and frame, as `tracks.csv` holds it: track, frame, time, x/y (nm, x to
    the right, y down, from the top-left pixel's centre) and diameter (nm) of each living particle
    whose centre is in the field."""
    rows = []
    size = movie.frames.shape[1]
    for frame in range(movie.frames.shape[0]):
        for track in movie.tracks:
            if not track.alive(frame):
                continue
            row, col, radius = track.at(frame)
            if not (0 <= row < size and 0 <= col < size):
                continue
            rows.append({
                "track": track.id, "frame": frame, "time_s": round(frame * movie.frame_interval_s, 6),
                "x_nm": round(col * movie.pixel_size_nm, 4), "y_nm": round(row * movie.pixel_size_nm, 4),
                "diameter_nm": round(2 * radius * movie.pixel_size_nm, 4),
            })
    return rows


def event_rows(movie: Movie) -> list[dict[str, Any]]:
    """The events as `events.csv` holds them: frame, time, kind, track, parents ("a;b")."""
    return [{"frame": e["frame"], "time_s": round(e["frame"] * movie.frame_interval_s, 6), "kind": e["kind"],
             "track": e["track"], "parents": ";".join(map(str, e["parents"]))} for e in movie.events]


def write_demo_movie(out_dir: str | os.PathLike, num_frames: int = 40, size: int = 256, seed: int = 0, *,
                     pixel_size_nm: float | None = None, frame_interval_s: float = 0.5,
                     overwrite: bool = False) -> dict[str, Any]:
    """Writes a `make_movie` movie into ``out_dir``: ``movie.tif`` (an ImageJ hyperstack of uint16
    camera counts, T frames, the pixel size and the frame interval in its metadata),
    ``movie_labels.tif`` (the true track id per pixel and frame), ``tracks.csv``, ``events.csv``
    and ``movie.json`` (parameters and files). Written as one folder under a temporary name and
    renamed; an existing ``out_dir`` is replaced only with ``overwrite`` and only when it holds a
    demo movie and nothing else. Returns what movie.json holds."""
    from tem_rf.core.imagej_tiff import write_imagej_tiff

    from tem_rf.core.files import atomic_directory, write_csv
    from tem_rf.core.locks import output_lock, remove_stale_temporaries
    from tem_rf.data.synthetic import check_demo_out_dir

    out_dir = Path(out_dir)
    check_demo_out_dir(out_dir, overwrite, record=MOVIE_JSON, what="demo movie")
    movie = make_movie(num_frames, size, pixel_size_nm=pixel_size_nm, frame_interval_s=frame_interval_s, rng=seed)
    counts = np.clip(np.rint(movie.frames), 0, np.iinfo(np.uint16).max).astype(np.uint16)
    kinds = {kind: sum(e["kind"] == kind for e in movie.events) for kind in EVENT_KINDS}
    info = {
        "kind": "movie", "num_frames": num_frames, "size": size, "seed": seed,
        "pixel_size_nm": movie.pixel_size_nm, "frame_interval_s": movie.frame_interval_s,
        "tracks": len(movie.tracks), "events": kinds,
        "files": [MOVIE_FILE, LABELS_FILE, TRACKS_FILE, EVENTS_FILE],
    }
    with output_lock(out_dir), \
            atomic_directory(out_dir, lambda target: check_demo_out_dir(target, overwrite, record=MOVIE_JSON,
                                                                        what="demo movie")) as tmp:
        remove_stale_temporaries([out_dir], keep=[tmp])
        for name, stack in ((MOVIE_FILE, counts), (LABELS_FILE, movie.labels)):
            write_imagej_tiff(tmp / name, stack, movie.pixel_size_nm, axes="TYX",
                              frame_interval_s=movie.frame_interval_s)
        write_csv(tmp / TRACKS_FILE, track_rows(movie))
        write_csv(tmp / EVENTS_FILE, event_rows(movie), columns=EVENT_COLUMNS)
        (tmp / MOVIE_JSON).write_text(json.dumps(info, indent=2) + "\n")
    return info


__all__ = ["EVENT_KINDS", "MOVIE_JSON", "Movie", "Track", "event_rows", "make_movie", "simulate_tracks",
           "track_rows", "write_demo_movie"]
