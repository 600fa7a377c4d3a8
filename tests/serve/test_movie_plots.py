"""A movie's plots: counts and sizes over time, the size map, the longest tracks, the montage."""

import numpy as np
from skimage.draw import disk
from skimage.segmentation import find_boundaries

from tem_rf.serve.movie_plots import (
    growth_figure, longest_tracks, longest_tracks_figure, montage, montage_positions, montage_tile, size_map,
    size_map_figure, time_axis, track_colour,
)


def _row(frame, diameter_nm, edge=False, track=None, particle=1):
    return {"frame": frame, "time_s": 0.5 * frame, "diameter_nm": diameter_nm, "diameter_px": 2 * diameter_nm,
            "touches_edge": edge, "track": track, "particle": particle}


def test_the_size_map_holds_each_frames_histogram_of_measured_particles():
    rows = [_row(0, 5.0), _row(0, 5.1), _row(0, 9.0, edge=True), _row(2, 10.0), _row(2, 4.0)]
    counts, edges, unit = size_map(rows, frames=[0, 1, 2], bins=6)
    assert unit == "nm" and counts.shape == (6, 3)
    assert counts.sum(axis=0).tolist() == [2, 0, 2]  # the edge particle is left out, frame 1 is empty
    assert edges[0] <= 4.0 and edges[-1] >= 10.0
    assert counts[0, 2] == 1 and counts[-1, 2] == 1  # the smallest and the largest in the outer bins
    assert counts[np.searchsorted(edges, 5.05) - 1, 0] == 2
    without_size = [{**row, "diameter_nm": None} for row in rows]
    assert size_map(without_size, [0, 1, 2], bins=6)[2] == "px"
    mesh = size_map_figure(rows, [{"frame": f, "time_s": 0.5 * f} for f in range(3)]).axes[0].collections[0]
    assert np.asarray(mesh.get_array()).reshape(-1, 3).tolist() == size_map(rows, [0, 1, 2])[0].tolist()


def test_growth_plots_the_counts_and_the_median_with_its_quartiles_over_time():
    per_frame = [{"frame": f, "time_s": 2.0 * f, "count": 10 + f, "count_measured": 8 + f, "diameter_median": 5.0 + f,
                  "diameter_q1": 4.0 + f, "diameter_q3": 6.0 + f, "diameter_unit": "nm"} for f in range(4)]
    per_frame[2] |= {"count": 0, "count_measured": 0, "diameter_median": None, "diameter_q1": None, "diameter_q3": None}
    counts, sizes = growth_figure(per_frame).axes
    assert counts.lines[0].get_xdata().tolist() == [0.0, 2.0, 4.0, 6.0]
    assert counts.lines[0].get_ydata().tolist() == [10, 11, 0, 13]
    assert counts.lines[1].get_ydata().tolist() == [8, 9, 0, 11]
    median = sizes.lines[0].get_ydata()
    assert median[[0, 1, 3]].tolist() == [5.0, 6.0, 8.0] and np.isnan(median[2])  # a frame without particles: a gap
    band = np.concatenate([path.vertices for path in sizes.collections[0].get_paths()])
    assert band[:, 1].min() == 4.0 and band[:, 1].max() == 9.0  # q1 of frame 0, q3 of frame 3
    assert "nm" in sizes.get_ylabel() and sizes.get_xlabel() == "time (s)"
    assert time_axis([{"frame": 3, "time_s": None}])[1].startswith("time (frames")


def test_the_longest_tracks_are_those_seen_in_most_frames():
    rows = [_row(f, 5.0 + f, track=t) for t, length in ((0, 2), (1, 5), (2, 5), (3, 1)) for f in range(length)]
    assert longest_tracks(rows, 3) == [1, 2, 0] and longest_tracks([], 3) == []
    axes = longest_tracks_figure(rows, count=2).axes[0]
    assert [line.get_label() for line in axes.lines] == ["track 1", "track 2"]
    assert axes.lines[0].get_ydata().tolist() == [5.0, 6.0, 7.0, 8.0, 9.0]


def test_montage_frames_are_spread_over_the_movie():
    assert montage_positions(24) == [0, 3, 6, 9, 12, 14, 17, 20, 23]
    assert montage_positions(5) == [0, 1, 2, 3, 4] and montage_positions(1) == [0]


def test_the_montage_outlines_each_particle_in_its_tracks_colour():
    labels = np.zeros((96, 96), np.int32)
    for ident, centre in ((1, (30, 30)), (2, (65, 60)), (3, (70, 20))):
        labels[disk(centre, 10)] = ident
    image = np.where(labels > 0, 10.0, 100.0)
    tiles = [montage_tile(image, labels, frame, f"frame {frame}") for frame in (4, 7)]
    track_of = {(4, 1): 5, (4, 2): 7, (7, 1): 5, (7, 2): 9}  # particle 3 has no track: white
    rgb, placements = montage(tiles, track_of, pixel_size_nm=0.5)
    assert len(placements) == 2 and rgb.shape[1] == 2 * 96 and rgb.shape[0] > 96  # the captions and the key
    for tile, (top, left), tracks in zip(tiles, placements, ({1: 5, 2: 7}, {1: 5, 2: 9})):
        shown = rgb[top:top + 96, left:left + 96]
        outline = find_boundaries(labels, mode="inner") & (labels > 0)
        for particle, track in tracks.items():
            colours = shown[outline & (labels == particle)]
            assert (colours == track_colour(track)).all(axis=1).mean() > 0.9, (tile.frame, particle)
        assert (shown[outline & (labels == 3)] == 255).all(axis=1).mean() > 0.9
        assert (shown[labels == 0][:, 0] != shown[labels == 0][:, 1]).sum() > 0  # track ids were written beside them
