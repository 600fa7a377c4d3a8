"""Every frame of a movie: segmented and measured frame by frame into one hyperstack per movie,
times from the file or the flag, frames chosen by --frames."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import tifffile

from tem_rf.core.errors import InputError
from tem_rf.data.synthetic_movie import make_movie, write_demo_movie
from tem_rf.serve.movie import movie_outputs, parse_frames, segment_movie

from stub_networks import blur_predictor as _blur_predictor


def test_frames_are_all_an_index_a_slice_or_a_list():
    assert parse_frames("all", 5) == [0, 1, 2, 3, 4] and parse_frames(None, 2) == [0, 1]
    assert parse_frames("3", 5) == [3] and parse_frames(2, 5) == [2]
    assert parse_frames("0:100:2", 7) == [0, 2, 4, 6] and parse_frames("1:", 3) == [1, 2]
    assert parse_frames("4,0,2", 5) == [4, 0, 2]
    with pytest.raises(InputError, match=r"m\.tif: --frames=7 names frame 7; it has 5 frames \(0 to 4\)"):
        parse_frames("7", 5, "m.tif")
    with pytest.raises(InputError, match="names no frame"):
        parse_frames("3:3", 5)
    with pytest.raises(InputError, match="give all, an index, start:stop"):
        parse_frames("first", 5)


def test_every_frame_is_segmented_into_one_hyperstack_with_its_times(tmp_path):
    write_demo_movie(tmp_path / "demo", num_frames=6, size=96, seed=0, frame_interval_s=0.5)
    movie = make_movie(6, 96, frame_interval_s=0.5, rng=0)
    source = tmp_path / "demo" / "movie.tif"
    record = segment_movie(source, _blur_predictor(sigma_px=1.0), tmp_path / "out", frames="1:6:2", tile_size=None)
    files = movie_outputs(source, tmp_path / "out")
    assert record["frames"] == [1, 3, 5] and record["frame_interval_s"] == 0.5
    assert record["frame_interval_source"] == "file" and record["time_unit"] == "s"
    with tifffile.TiffFile(files["masks"]) as tif:
        assert tif.series[0].axes == "TYX" and tif.series[0].shape == (3, 96, 96)
        assert tif.imagej_metadata["finterval"] == 0.5 and tif.imagej_metadata["unit"] == "nm"
        masks = tif.asarray() > 0
    labels = tifffile.imread(files["labels"])
    assert labels.shape == (3, 96, 96) and labels.dtype == np.uint16
    for position, frame in enumerate((1, 3, 5)):  # the stub finds the drawn particles
        truth = movie.labels[frame] > 0
        dice = 2 * (masks[position] & truth).sum() / (masks[position].sum() + truth.sum())
        assert dice > 0.6, frame  # 0.68-0.75 with this stub; a frame out of place would give far less
        assert record["per_frame"][position]["count"] == int(labels[position].max())
    with open(files["particles"]) as f:
        rows = list(csv.DictReader(f))
    assert {row["frame"] for row in rows} == {"1", "3", "5"}
    assert {(row["frame"], row["time_s"]) for row in rows} == {("1", "0.5"), ("3", "1.5"), ("5", "2.5")}
    assert len(rows) == sum(entry["count"] for entry in record["per_frame"])
    assert json.loads(files["summary"].read_text())["per_frame"] == record["per_frame"]
    with open(files["tracks"]) as f:  # each particle of each frame in one track (trackpy, when installed)
        tracks = list(csv.DictReader(f))
    if record["tracking"] is not None:
        assert len(tracks) == len(rows) and 0 < record["tracking"]["tracks"] <= len(rows)
        assert {(t["frame"], t["particle"]) for t in tracks} == {(r["frame"], r["id"]) for r in rows}
    for kind in ("growth", "size_map", "longest_tracks", "montage"):  # the plots (tests/serve/test_movie_plots.py)
        assert files[kind].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", kind
    assert record["per_frame"][0]["diameter_q1"] <= record["per_frame"][0]["diameter_median"]
    assert set(record["seconds"]) == {"segment", "measure", "track", "write"}
    with open(files["events"]) as f:
        assert next(csv.reader(f)) == ["frame", "time_s", "kind", "track", "parents"]
    with pytest.raises(InputError, match="exists"):  # outputs are replaced only with overwrite
        segment_movie(source, _blur_predictor(), tmp_path / "out", frames="0", tile_size=None)
    again = segment_movie(source, _blur_predictor(), tmp_path / "out", frames="0", tile_size=None, overwrite=True)
    assert again["frames"] == [0] and tifffile.imread(files["labels"]).shape == (96, 96)  # one frame: one image


def test_without_a_recorded_interval_the_flag_gives_it_else_time_is_in_frames(tmp_path):
    stack = make_movie(3, 64, rng=1).frames.astype(np.uint16)
    path = tmp_path / "series.tif"
    tifffile.imwrite(path, stack, imagej=True, resolution=(2.0, 2.0), metadata={"unit": "nm", "axes": "TYX"})
    record = segment_movie(path, _blur_predictor(), tmp_path / "a", tile_size=None)
    assert record["frame_interval_s"] is None and record["time_unit"] == "frame"
    assert all(entry["time_s"] is None for entry in record["per_frame"])
    record = segment_movie(path, _blur_predictor(), tmp_path / "b", tile_size=None, frame_interval_s=2.0)
    assert record["frame_interval_source"] == "flag" and record["per_frame"][2]["time_s"] == 4.0
    with pytest.raises(InputError, match="--frames=9 names frame 9"):
        segment_movie(path, _blur_predictor(), tmp_path / "c", frames="9", tile_size=None)
    assert not (tmp_path / "c").exists()  # nothing left behind


def test_segment_with_frames_writes_each_movie_and_reports_it(tmp_path, monkeypatch):
    from tem_rf.serve import predictor as predictor_lib
    from tem_rf.serve.segment_command import segment_micrographs

    write_demo_movie(tmp_path / "demo", num_frames=4, size=64, seed=3, frame_interval_s=1.5)
    monkeypatch.setattr(predictor_lib, "load_predictor", lambda model, **kwargs: _blur_predictor(sigma_px=1.0))
    (tmp_path / "out" / ".movie_masks.tif.tmp-k1lled0x").mkdir(parents=True)  # what a killed run left
    (tmp_path / "out" / ".movie_tracks.csv.k1lled0x.tmp").write_text("half")
    run = segment_micrographs("stub", [str(tmp_path / "demo" / "movie.tif")], tmp_path / "out", frames="all",
                              tile_size=None, progress=False)
    assert not run.failures and run.records[0]["frames"] == [0, 1, 2, 3]
    assert run.summary_lines()[0].startswith(f"{tmp_path / 'demo' / 'movie.tif'}: 4 frames, every 1.5 s (file); particles")
    assert run.summary_lines()[-1] == f"wrote 1 of 1 movies to {tmp_path / 'out'}"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "movie_events.csv", "movie_growth.png", "movie_labels.tif", "movie_longest_tracks.png", "movie_masks.tif",
        "movie_montage.png", "movie_movie.json", "movie_particles.csv", "movie_size_map.png", "movie_tracks.csv"]
    # the movie's outputs beside it are not taken for movies when its folder is segmented again
    for name in ("movie_masks.tif", "movie_labels.tif"):
        (tmp_path / "demo" / name).write_bytes((tmp_path / "out" / name).read_bytes())
    again = segment_micrographs("stub", [str(tmp_path / "demo")], tmp_path / "again", frames="0", tile_size=None,
                                progress=False)
    assert [Path(r["input"]).name for r in again.records] == ["movie.tif"]
    with pytest.raises(InputError, match="give --frame .* or --frames .*, not both"):
        segment_micrographs("stub", [str(tmp_path / "demo" / "movie.tif")], tmp_path / "x", frames="all", frame=1)
