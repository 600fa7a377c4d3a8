"""Tracking particles through the demo movie, scored against its truth: links kept, and every
drawn appearance and coalescence found."""

import numpy as np
import pytest

pytest.importorskip("trackpy")

from tem_rf.data.synthetic_movie import make_movie  # noqa: E402
from tem_rf.particles import measure_particles  # noqa: E402
from tem_rf.serve.tracking import find_events, link_recovery, link_tracks  # noqa: E402


def _detections(movie):
    """The particles of each frame's true mask, as `segment --frames` measures them."""
    rows, true_ids = [], []
    for frame, labels in enumerate(movie.labels):
        for particle in measure_particles(labels > 0, movie.pixel_size_nm, min_area_px=4, split_touching=False):
            row = particle.row()
            rows.append({"frame": frame, "x_px": row["x_px"], "y_px": row["y_px"], "area_px": row["area_px"]})
            true_ids.append(int(labels[round(particle.centroid_row_px), round(particle.centroid_col_px)]))
    return rows, true_ids


def test_tracks_keep_the_true_links_and_find_the_drawn_events():
    movie = make_movie(40, 256, rng=0)
    rows, true_ids = _detections(movie)
    tracks = link_tracks(rows, search_range_px=6, memory=2)
    assert len(tracks) == len(rows) and tracks == link_tracks(rows, search_range_px=6, memory=2)  # deterministic
    recovery = link_recovery(tracks, true_ids, [r["frame"] for r in rows])
    assert recovery >= 0.95, recovery
    events = find_events(rows, tracks)

    def near(kind, frame, among, frames):
        return any(e["kind"] == kind and abs(e["frame"] - frame) <= frames for e in among)

    # Every drawn appearance and coalescence is found in its frame.
    for truth in movie.events:
        if truth["kind"] == "appearance":
            assert near("appearance", truth["frame"], events, 0), truth
        elif truth["kind"] == "coalescence":
            assert near("coalescence", truth["frame"], events, 0), truth
    # and nothing is made up: a track broken in two would add an appearance the movie does not have
    for event in events:
        if event["kind"] == "appearance":
            assert near("appearance", event["frame"], movie.events, 0), event
        elif event["kind"] == "coalescence":
            assert near("coalescence", event["frame"], movie.events, 0), event


def test_linking_needs_trackpy_or_says_how_to_get_it(monkeypatch):
    import builtins

    from tem_rf.core.errors import TemRfError

    real_import = builtins.__import__

    def without_trackpy(name, *args, **kwargs):
        if name == "trackpy":
            raise ImportError("No module named 'trackpy'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_trackpy)
    with pytest.raises(TemRfError, match=r'tracking needs trackpy .*pip install "tem_rf\[movies\]"'):
        link_tracks([{"frame": 0, "x_px": 1.0, "y_px": 1.0}], search_range_px=5)
    assert link_tracks is not None and np is not None
