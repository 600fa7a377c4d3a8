"""Synthetic in-situ movies: deterministic, and their truth (tracks, events, labels) agrees with
what is drawn; written like a microscope's hyperstack, replaced only with --overwrite."""

import csv
import math

import numpy as np
import pytest
import tifffile

from tem_rf.core.errors import InputError
from tem_rf.data.reading import read_micrograph
from tem_rf.data.synthetic_movie import (
    EVENT_COLUMNS, MIN_RADIUS_PX, event_rows, make_movie, track_rows, write_demo_movie,
)

from binaries import call_main


def test_the_same_seed_gives_the_same_movie():
    a, b = make_movie(12, 96, rng=4), make_movie(12, 96, rng=4)
    np.testing.assert_array_equal(a.frames, b.frames)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert a.events == b.events and track_rows(a) == track_rows(b)
    assert not np.array_equal(a.frames, make_movie(12, 96, rng=5).frames)


def test_the_truth_is_what_is_drawn():
    movie = make_movie(40, 256, rng=0)
    kinds = [event["kind"] for event in movie.events]
    assert kinds.count("coalescence") >= 2 and kinds.count("appearance") >= 5 and kinds.count("disappearance") >= 1
    tracks = {track.id: track for track in movie.tracks}
    size = movie.frames.shape[1]
    for frame in (0, 13, 39):
        drawn = set(np.unique(movie.labels[frame]).tolist()) - {0}
        alive = {t.id for t in movie.tracks if t.alive(frame)}
        assert drawn == alive, frame
        for ident in drawn:  # a disc of the recorded radius (those the image edge does not cut)
            row, col, radius = tracks[ident].at(frame)
            if radius + 1 < row < size - radius - 1 and radius + 1 < col < size - radius - 1:
                # within half a pixel around its circumference
                assert abs((movie.labels[frame] == ident).sum() - math.pi * radius**2) <= math.pi * radius
    for event in movie.events:
        track = tracks[event["track"]]
        if event["kind"] == "coalescence":
            (a, b), frame = (tracks[p] for p in event["parents"]), event["frame"]
            assert a.end == b.end == track.birth == frame and track.parents == tuple(event["parents"])
            area = a.at(frame)[2] ** 2 + b.at(frame)[2] ** 2
            assert track.at(frame)[2] ** 2 == pytest.approx(area)  # the two particles' area, merged
            assert not movie.labels[frame][np.isin(movie.labels[frame], event["parents"])].any()
        elif event["kind"] == "appearance":
            assert track.birth == event["frame"] > 0 and not track.parents
        elif event["kind"] == "disappearance":
            assert track.end == event["frame"] and track.at(event["frame"])[2] < MIN_RADIUS_PX
    # the particles are darker than the carbon around them, as in the low-resolution demo
    assert movie.frames[20][movie.labels[20] > 0].mean() < 0.8 * movie.frames[20][movie.labels[20] == 0].mean()


def test_the_movie_is_written_as_a_calibrated_hyperstack_with_its_truth(tmp_path):
    info = write_demo_movie(tmp_path / "movie", num_frames=6, size=64, seed=2, frame_interval_s=0.25)
    movie = make_movie(6, 64, frame_interval_s=0.25, rng=2)
    with tifffile.TiffFile(tmp_path / "movie" / "movie.tif") as tif:
        assert tif.series[0].axes == "TYX" and tif.series[0].shape == (6, 64, 64)
        assert tif.imagej_metadata["finterval"] == 0.25 and tif.imagej_metadata["unit"] == "nm"
        np.testing.assert_array_equal(tif.asarray(), np.rint(movie.frames).astype(np.uint16))
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "movie" / "movie_labels.tif"), movie.labels)
    third = read_micrograph(tmp_path / "movie" / "movie.tif", frame=3)  # tem_rf reads its frames
    assert third.pixel_size_nm == pytest.approx(0.5) and third.data.shape == (64, 64)
    with open(tmp_path / "movie" / "tracks.csv") as f:
        assert len(list(csv.DictReader(f))) == len(track_rows(movie))
    with open(tmp_path / "movie" / "events.csv") as f:
        assert next(csv.reader(f)) == list(EVENT_COLUMNS)  # the header also when nothing happened
    assert info["tracks"] == len(movie.tracks) and sum(info["events"].values()) == len(event_rows(movie))


def test_an_existing_movie_is_replaced_only_with_overwrite_and_never_a_users_file(tmp_path):
    out = tmp_path / "movie"
    write_demo_movie(out, num_frames=3, size=48, seed=1)
    before = (out / "movie.tif").read_bytes()
    with pytest.raises(InputError, match="already holds a demo movie; pass --overwrite"):
        write_demo_movie(out, num_frames=3, size=48, seed=2)
    (out / "notes.txt").write_text("mine\n")
    with pytest.raises(InputError, match="notes.txt, which tem_rf did not write"):
        write_demo_movie(out, num_frames=3, size=48, seed=2, overwrite=True)
    assert (out / "movie.tif").read_bytes() == before and (out / "notes.txt").read_text() == "mine\n"
    (out / "notes.txt").unlink()
    write_demo_movie(out, num_frames=3, size=48, seed=2, overwrite=True)
    assert (out / "movie.tif").read_bytes() != before


def test_make_demo_data_writes_a_movie(tmp_path):
    out = call_main("data_prep.make_demo_data", f"--out_dir={tmp_path / 'movie'}", "--kind=movie", "--num_frames=4",
                    "--size=64", "--frame_interval_s=2")
    assert out.returncode == 0, out.stderr
    assert "wrote a movie of 4 frames" in out.stdout
    with tifffile.TiffFile(tmp_path / "movie" / "movie.tif") as tif:
        assert tif.imagej_metadata["finterval"] == 2.0
