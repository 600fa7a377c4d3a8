"""data_prep.make_demo_data + data_prep.make_tfrecords end to end, in process as `python -m` runs them."""

import json

import pytest

from binaries import call_main as _run


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    raw = tmp_path_factory.mktemp("demo") / "raw"
    result = _run(
        "data_prep.make_demo_data", f"--out_dir={raw}", "--num_images=4", "--size=128",
        "--kind=low_res", "--pixel_size_nm=0.5", "--seed=2",
    )
    assert result.returncode == 0, result.stderr
    assert "wrote 4 low_res micrographs" in result.stdout
    return raw


def test_demo_to_dataset(demo, tmp_path):
    out = tmp_path / "dataset"
    result = _run(
        "data_prep.make_tfrecords", f"--images={demo / 'images'}", f"--labels={demo / 'labels'}",
        f"--out_dir={out}", "--patch_size=64", "--min_particle_pixels=50", "--split=0.5,0.25,0.25",
        "--num_shards=2", "--seed=1",
    )
    assert result.returncode == 0, result.stderr
    info = json.loads((out / "dataset.json").read_text())
    assert info["pixel_size_nm"] == pytest.approx(0.5)  # from the TIFF metadata, no flag needed
    assert all(info["counts"][split] > 0 for split in ("train", "val", "test"))
    assert sorted(sum((info["splits"][s]["sources"] for s in info["splits"]), [])) == sorted(
        p.name for p in (demo / "images").iterdir()
    )
    # stderr is not a terminal here: no bar, one line per loop (images checked, images written)
    progress = [line for line in result.stderr.splitlines() if line.startswith(("checking:", "writing:"))]
    assert [line.split(" [")[0] for line in progress] == ["checking: 100% 4/4 image", "writing: 100% 4/4 image"]
    assert "\r" not in result.stderr
    from tem_rf.data import load_split

    images, labels = next(iter(load_split(out, "train", batch_size=2, augment=True, shuffle_seed=0)))
    assert images.shape == (2, 64, 64, 1) and labels.shape == (2, 64, 64)

    # A second run into the same folder is refused, the first dataset untouched.
    before = (out / "dataset.json").read_text()
    again = _run("data_prep.make_tfrecords", f"--images={demo / 'images'}", f"--labels={demo / 'labels'}", f"--out_dir={out}")
    assert again.returncode != 0
    assert again.stderr.strip().splitlines()[-1] == f"error: {out}: already holds a dataset (dataset.json); pass --overwrite to replace it"
    assert "Traceback" not in again.stderr
    assert (out / "dataset.json").read_text() == before


def test_quiet_is_a_deprecated_noprogress(demo, tmp_path):
    args = [f"--images={demo / 'images'}", f"--labels={demo / 'labels'}", "--patch_size=64",
            "--min_particle_pixels=50", "--num_shards=1"]
    result = _run("data_prep.make_tfrecords", *args, f"--out_dir={tmp_path / 'a'}", "--quiet")
    assert result.returncode == 0, result.stderr
    assert "--quiet is deprecated; use --progress" in result.stderr and "writing:" not in result.stderr
    result = _run("data_prep.make_tfrecords", *args, f"--out_dir={tmp_path / 'b'}", "--noprogress")
    assert result.returncode == 0, result.stderr
    assert "writing:" not in result.stderr and "deprecated" not in result.stderr
    result = _run("data_prep.make_tfrecords", *args, f"--out_dir={tmp_path / 'c'}", "--quiet", "--progress")
    assert result.returncode == 1 and "give only --progress" in result.stderr
    assert not (tmp_path / "c").exists()


def test_bad_input_is_one_clear_line(demo, tmp_path):
    labels = tmp_path / "labels"
    labels.mkdir()
    for mask in sorted((demo / "labels").iterdir())[:-1]:  # the last image has no mask
        (labels / mask.name).write_bytes(mask.read_bytes())
    missing = sorted((demo / "images").iterdir())[-1]
    result = _run("data_prep.make_tfrecords", f"--images={demo / 'images'}", f"--labels={labels}", f"--out_dir={tmp_path / 'out'}")
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: {missing}: has no mask in {labels}")
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "flag, message",
    [
        ("--out_dir={tmp}/notes.txt/dataset", "error: {tmp}/notes.txt: is a file, so"),
        ("--min_particle_pixels=5000", "error: min_particle_pixels 5000 is more than a 64x64 patch holds"),
        ("--xray_threshold=nan", "error: xray_threshold must be a number"),
        ("--xray_threshold=-1", "flag --xray_threshold=-1: -1.0 is not a non-negative number"),
    ],
)
def test_impossible_output_or_options_are_one_clear_line(demo, tmp_path, flag, message):
    (tmp_path / "notes.txt").write_text("not a folder")
    args = [f"--images={demo / 'images'}", f"--labels={demo / 'labels'}", f"--out_dir={tmp_path / 'out'}",
            "--patch_size=64"]
    result = _run("data_prep.make_tfrecords", *args, flag.format(tmp=tmp_path))
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert message.format(tmp=tmp_path) in result.stderr
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_split_files_and_the_short_summary(demo, tmp_path):
    names = sorted(p.stem for p in (demo / "images").iterdir())
    (tmp_path / "train.txt").write_text("\n".join(names[:2]) + "\n")
    (tmp_path / "test.csv").write_text(f"filename\n{names[2]}.tif\n")
    out = tmp_path / "dataset"
    args = [f"--images={demo / 'images'}", f"--labels={demo / 'labels'}", f"--out_dir={out}",
            "--patch_size=64", "--min_particle_pixels=50", "--num_shards=1", "--noprogress",
            f"--split_files=train={tmp_path / 'train.txt'},test={tmp_path / 'test.csv'}"]
    result = _run("data_prep.make_tfrecords", *args)
    assert result.returncode == 0, result.stderr
    info = json.loads((out / "dataset.json").read_text())
    # no val list: one of the two train images becomes validation (--val_fraction, at least one image)
    assert sorted(info["splits"]["train"]["sources"] + info["splits"]["val"]["sources"]) == [
        f"{n}.tif" for n in names[:2]]
    assert len(info["splits"]["val"]["sources"]) == 1 and info["val_from_train"]["images"] == 1
    assert info["splits"]["test"]["sources"] == [f"{names[2]}.tif"]
    assert "val: 1 image(s) carved from the train list (--val_fraction=0.1, --seed=0)" in result.stdout
    lines = result.stdout.strip().splitlines()
    assert lines[0] == f"wrote {out} (64x64 px patches from 3 of 4 images; pixel size 0.5 nm)"
    assert lines[1].split()[:2] == ["train", str(info["counts"]["train"])]
    assert "left out: 1 image (listed in no --split_files list)" in result.stdout
    assert names[3] not in result.stdout  # sources are listed in dataset.json, not printed
    assert "1 image(s) listed in no --split_files list are left out" in result.stderr

    both = _run("data_prep.make_tfrecords", *args[:-1], f"--out_dir={tmp_path / 'b'}",
                f"--split_files=train={tmp_path / 'train.txt'}", "--split=0.5,0.5,0")
    assert both.returncode != 0 and "--split (fractions) or --split_files (lists), not both" in both.stderr
    assert not (tmp_path / "b").exists()
