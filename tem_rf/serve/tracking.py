"""Particles linked across the frames of a movie into tracks, and the events microscopists look
for: appearance, disappearance and coalescence (issue 26, item 3).

`link_tracks` hands the per-frame particles (their centroids) to trackpy (Crocker-Grier linking,
a maintained library: ``pip install "tem_rf[movies]"``), which allows a particle to be missed for
``memory`` frames and to move at most ``search_range_px`` between frames. `find_events` reads the
tracks: a track that starts after the first frame appeared, one that ends before the last frame
disappeared, unless in the next frame one particle covers where it and another track were, with
about the area of both: that is a coalescence (the merged particle may go on as one of the two
tracks or, its centre between them, start a track of its own).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from tem_rf.core.errors import TemRfError

MOVIES_INSTALL_HINT = 'pip install "tem_rf[movies]"'
COALESCED_AREA_FRACTION = 0.7  # the merged particle holds at least this much of the two areas
TOUCHING_GAP_PX = 1.5  # particles this close are one blob of touching pixels


def link_tracks(particles: Sequence[dict[str, Any]], *, search_range_px: float, memory: int = 2) -> list[int]:
    """A track id (0, 1, ...) for each of ``particles`` (dicts with ``frame``, ``x_px``,
    ``y_px``), linked by trackpy over at most ``search_range_px`` a frame, a particle allowed to
    go unseen for ``memory`` frames."""
    try:
        import pandas as pd
        import trackpy
    except ImportError as error:
        raise TemRfError(f"tracking needs trackpy ({error}): {MOVIES_INSTALL_HINT}") from None
    if not particles:
        return []
    trackpy.quiet()
    table = pd.DataFrame({"frame": [int(p["frame"]) for p in particles],
                          "x": [float(p["x_px"]) for p in particles], "y": [float(p["y_px"]) for p in particles]})
    linked = trackpy.link(table, search_range=float(search_range_px), memory=int(memory))
    # trackpy's ids in order of first appearance, so that the same input gives the same ids
    order = {ident: rank for rank, ident in enumerate(dict.fromkeys(linked.sort_values(["frame"], kind="stable")
                                                                          ["particle"].tolist()))}
    return [order[ident] for ident in linked["particle"].tolist()]


def find_events(particles: Sequence[dict[str, Any]], tracks: Sequence[int]) -> list[dict[str, Any]]:
    """The events of linked ``particles`` (dicts with ``frame``, ``x_px``, ``y_px``, ``area_px``;
    ``tracks`` their track ids): appearance (``track``, the frame it starts), disappearance
    (``track``, the first frame it is gone) and coalescence (``track`` the particle that holds
    both, ``parents`` the two tracks, the frame they are one)."""
    if not particles:
        return []
    first_frame = min(int(p["frame"]) for p in particles)
    last_frame = max(int(p["frame"]) for p in particles)
    by_track: dict[int, list[dict[str, Any]]] = {}
    for particle, track in zip(particles, tracks):
        by_track.setdefault(track, []).append(particle)
    for rows in by_track.values():
        rows.sort(key=lambda p: int(p["frame"]))
    by_frame: dict[int, list[tuple[int, dict[str, Any]]]] = {}
    for particle, track in zip(particles, tracks):
        by_frame.setdefault(int(particle["frame"]), []).append((track, particle))
    events = []
    ended: dict[int, list[tuple[int, dict[str, Any]]]] = {}  # frame -> tracks last seen there
    for track, rows in sorted(by_track.items()):
        start, end = int(rows[0]["frame"]), int(rows[-1]["frame"])
        if start > first_frame:
            events.append({"frame": start, "kind": "appearance", "track": track, "parents": []})
        if end < last_frame:
            ended.setdefault(end, []).append((track, rows[-1]))
    for end, gone in sorted(ended.items()):
        merged_away: set[int] = set()
        for child, particle in by_frame.get(end + 1, []):
            radius = math.sqrt(float(particle["area_px"]) / math.pi)
            # the merged particle is two discs side by side, not the disc of its area: a parent
            # touched it when its centre is within that radius plus its own (and a pixel's gap)
            inside = [(t, last) for t, last in gone if t not in merged_away and math.hypot(
                float(particle["x_px"]) - float(last["x_px"]), float(particle["y_px"]) - float(last["y_px"]))
                <= radius + math.sqrt(float(last["area_px"]) / math.pi) + TOUCHING_GAP_PX]
            before = [p for p in by_track[child] if int(p["frame"]) == end]  # the child's own track, if it goes on
            parents = inside + [(child, before[0])] if before else inside
            if len(parents) >= 2 and float(particle["area_px"]) >= COALESCED_AREA_FRACTION * sum(
                    float(last["area_px"]) for _, last in parents):
                events.append({"frame": end + 1, "kind": "coalescence", "track": child,
                               "parents": sorted(t for t, _ in parents)})
                merged_away.update(t for t, _ in inside)
        events += [{"frame": end + 1, "kind": "disappearance", "track": t, "parents": []}
                   for t, _ in gone if t not in merged_away]
    # a merged particle that starts a track of its own came from the coalescence, not from nowhere
    born = {(e["track"], e["frame"]) for e in events if e["kind"] == "coalescence"}
    events = [e for e in events if not (e["kind"] == "appearance" and (e["track"], e["frame"]) in born)]
    return sorted(events, key=lambda e: (e["frame"], e["kind"], e["track"]))


def link_recovery(found_tracks: Sequence[int], true_ids: Sequence[int], frames: Sequence[int]) -> float:
    """The fraction of true frame-to-frame links (a true particle seen in two consecutive frames)
    that the found tracks keep: both detections in one found track. ``true_ids`` is the true
    particle each detection lies on (0: none), ``frames`` its frame."""
    found_by = {(int(f), int(t)): k for f, t, k in zip(frames, true_ids, found_tracks) if t}
    links = [(f, t) for (f, t) in found_by if (f + 1, t) in found_by]
    if not links:
        return float("nan")
    kept = sum(found_by[(f, t)] == found_by[(f + 1, t)] for f, t in links)
    return kept / len(links)


__all__ = ["MOVIES_INSTALL_HINT", "find_events", "link_recovery", "link_tracks"]
