"""Finding, matching, splitting and building datasets; messy input; bad input leaves nothing."""

import json
import logging
import os

import numpy as np
import pytest
import skimage.io
import tifffile
from PIL import Image

from tem_rf.data import (
    build_dataset,
    find_image_files,
    match_masks,
    parse_split_fractions,
    read_dataset_info,
    split_sources,
)
from tem_rf.data.dataset import build_dataset_from_folders, format_dataset_summary
from tem_rf.data.splits import parse_split_files, read_split_file
from tem_rf.core.errors import InputError

# ---------------------------------------------------------------------------- split


def test_split_by_source_image_never_shares_an_image():
    names = [f"im{i:02d}.tif" for i in range(23)]
    splits = split_sources(names, (0.7, 0.1, 0.2), seed=3)
    assert [len(splits[s]) for s in ("train", "val", "test")] == [16, 2, 5]
    assigned = splits["train"] + splits["val"] + splits["test"]
    assert sorted(assigned) == names  # every image once, none twice
    assert not set(splits["train"]) & set(splits["test"])


def test_split_is_seeded_and_order_independent():
    names = [f"im{i}.tif" for i in range(10)]
    first = split_sources(names, (0.7, 0.1, 0.2), seed=0)
    assert split_sources(list(reversed(names)), (0.7, 0.1, 0.2), seed=0) == first
    others = [split_sources(names, (0.7, 0.1, 0.2), seed=s) for s in range(1, 6)]
    assert any(o != first for o in others)


def test_split_gives_every_split_an_image_and_refuses_too_few():
    assert {k: len(v) for k, v in split_sources(["a", "b", "c"], (0.7, 0.1, 0.2), 0).items()} == {
        "train": 1, "val": 1, "test": 1,
    }
    assert len(split_sources(["a", "b"], (0.8, 0.2, 0.0), 0)["test"]) == 0
    with pytest.raises(ValueError, match=r"fewer source images \(2\) than splits"):
        split_sources(["a", "b"], (0.7, 0.1, 0.2), 0)


@pytest.mark.parametrize("text", ["0.7,0.1", "0.5,0.1,0.2", "a,b,c", "0,0.5,0.5", "-0.1,0.6,0.5"])
def test_bad_split_fractions(text):
    with pytest.raises(ValueError, match="--split"):
        parse_split_fractions(text)


def test_split_fractions_accept_percentages():
    assert parse_split_fractions("70,10,20") == pytest.approx((0.7, 0.1, 0.2))


# ---------------------------------------------------------------------------- files


def test_masks_match_by_stem_and_suffix(tmp_path):
    images, labels = tmp_path / "images", tmp_path / "labels"
    images.mkdir(), labels.mkdir()
    for name in ("a.tif", "b.tif", "C.tiff"):
        (images / name).write_bytes(b"x")
    for name in ("a.png", "b_label.tif", "c_Mask.png", "orphan_mask.png"):
        (labels / name).write_bytes(b"x")
    pairs = match_masks(find_image_files(images), labels)
    assert [(i.name, m.name) for i, m in pairs] == [
        ("C.tiff", "c_Mask.png"), ("a.tif", "a.png"), ("b.tif", "b_label.tif"),
    ]


def test_masks_in_the_image_folder_are_not_images(tmp_path):
    for name in ("a.tif", "a_mask.tif", "b.tif", "b_mask.png"):
        (tmp_path / name).write_bytes(b"x")
    pairs = match_masks(find_image_files(tmp_path), tmp_path)
    assert [(i.name, m.name) for i, m in pairs] == [("a.tif", "a_mask.tif"), ("b.tif", "b_mask.png")]


def test_a_jpeg_mask_is_named_in_the_error(tmp_path):
    images, labels = tmp_path / "images", tmp_path / "labels"
    images.mkdir(), labels.mkdir()
    (images / "a.tif").write_bytes(b"x")
    (images / "b.tif").write_bytes(b"x")
    (labels / "a_mask.png").write_bytes(b"x")
    (labels / "b_mask.jpg").write_bytes(b"x")
    with pytest.raises(InputError, match=r"b\.tif: has no mask .*found b_mask\.jpg, but masks are read from "
                                         r"PNG or TIFF only \(JPEG's lossy .*re-export the mask as PNG"):
        match_masks(find_image_files(images), labels)


def test_image_without_mask_and_ambiguous_masks(tmp_path):
    images, labels = tmp_path / "images", tmp_path / "labels"
    images.mkdir(), labels.mkdir()
    (images / "a.tif").write_bytes(b"x")
    (images / "b.tif").write_bytes(b"x")
    (labels / "a_mask.png").write_bytes(b"x")
    with pytest.raises(InputError, match=r"b\.tif: has no mask in .*labels"):
        match_masks(find_image_files(images), labels)
    (labels / "b_mask.png").write_bytes(b"x")
    (labels / "b_label.png").write_bytes(b"x")
    with pytest.raises(InputError, match=r"b\.tif: several masks match .*b_label\.png, b_mask\.png"):
        match_masks(find_image_files(images), labels)


def test_missing_and_empty_folders_and_globs(tmp_path):
    with pytest.raises(InputError, match="nowhere: folder does not exist"):
        find_image_files(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="empty: no micrographs found"):
        find_image_files(tmp_path / "empty")
    with pytest.raises(InputError, match="labels folder does not exist"):
        match_masks([tmp_path / "a.tif"], tmp_path / "no_labels")
    (tmp_path / "x1.tif").write_bytes(b"x")
    (tmp_path / "x2.tif").write_bytes(b"x")
    (tmp_path / "y.tif").write_bytes(b"x")
    assert [p.name for p in find_image_files(str(tmp_path / "x*.tif"))] == ["x1.tif", "x2.tif"]
    with pytest.raises(InputError, match="no micrographs found"):
        find_image_files(str(tmp_path / "z*.tif"))


# ---------------------------------------------------------------------------- building


def test_built_dataset_json(built, pairs):
    out, info = built
    assert read_dataset_info(out) == json.loads((out / "dataset.json").read_text())
    assert info["schema_version"] == 1 and info["patch_size"] == 64
    assert info["pixel_size_nm"] == pytest.approx(0.1)
    by_split = {s["image"]: s["split"] for s in info["sources"]}
    for split in ("train", "val", "test"):
        assert info["splits"][split]["sources"] == sorted(k for k, v in by_split.items() if v == split)
        shards = info["splits"][split]["shards"]
        assert sum(s["count"] for s in shards) == info["counts"][split] > 0
        for shard in shards:
            assert (out / shard["file"]).stat().st_size == shard["bytes"]
            assert shard["file"].endswith(f"-of-{len(shards):05d}.tfrecord")
    assert sum(s["patches"] for s in info["sources"]) == sum(info["counts"].values())
    assert info["preprocessing"]["min_particle_pixels"] == 50
    assert all(s["mask_rule"].startswith("binarised 0/255") for s in info["sources"])
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temporaries left


def test_existing_dataset_is_refused_without_overwrite(built, pairs):
    out, info = built
    before = (out / "dataset.json").read_text()
    with pytest.raises(InputError, match="already holds a dataset.*--overwrite"):
        build_dataset(pairs, out, patch_size=64, min_particle_pixels=50, progress=False)
    assert (out / "dataset.json").read_text() == before
    new = build_dataset(pairs, out, patch_size=32, min_particle_pixels=50, overwrite=True, progress=False)
    assert read_dataset_info(out)["patch_size"] == 32 == new["patch_size"]


def test_non_dataset_folder_is_never_replaced(tmp_path, pairs):
    out = tmp_path / "precious"
    out.mkdir()
    (out / "thesis.tex").write_text("keep me")
    with pytest.raises(InputError, match="not empty and holds no dataset"):
        build_dataset(pairs, out, patch_size=64, overwrite=True, progress=False)
    assert (out / "thesis.tex").read_text() == "keep me"


def _files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_overwrite_replaces_only_what_dataset_json_lists(built, pairs, tmp_path):
    out, _ = built  # 2 shards a split
    (out / "train" / "notes.txt").write_text("my notes on the train split")
    before = _files(out)
    with pytest.raises(InputError, match=r"holds train/notes\.txt, which tem_rf did not write \(not listed in its dataset\.json\)"):
        build_dataset(pairs, out, patch_size=32, min_particle_pixels=50, overwrite=True, progress=False)
    assert _files(out) == before
    (out / "train" / "notes.txt").unlink()
    # A rebuild with another shard count replaces every shard of the old one (listed in its dataset.json).
    new = build_dataset(pairs, out, patch_size=32, min_particle_pixels=50, num_shards=1, overwrite=True, progress=False)
    assert sorted(_files(out)) == sorted(["dataset.json"] + [s["file"] for split in new["splits"].values() for s in split["shards"]])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_file_added_while_the_dataset_is_written_is_not_deleted(built, pairs, tmp_path, monkeypatch):
    from tem_rf.data import dataset

    out, _ = built
    real = dataset.preprocess_with_stats

    def user_saves_a_file(*args, **kwargs):
        (out / "added.txt").write_text("saved during the rebuild")
        return real(*args, **kwargs)

    monkeypatch.setattr(dataset, "preprocess_with_stats", user_saves_a_file)
    before_shards = {k: v for k, v in _files(out).items()}
    with pytest.raises(InputError, match=r"holds added\.txt, which tem_rf did not write"):
        build_dataset(pairs, out, patch_size=64, min_particle_pixels=50, overwrite=True, progress=False)
    assert _files(out) == {**before_shards, "added.txt": b"saved during the rebuild"}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def _no_output(parent, out):
    return not out.exists() and not [p for p in parent.iterdir() if p.name.startswith(".")]


def test_shape_mismatch_names_the_mask(tmp_path, pairs):
    image, mask = pairs[2]
    tifffile.imwrite(mask, np.zeros((100, 128), np.uint8))
    with pytest.raises(InputError, match=r"img2_mask\.tif: mask is 100x128 pixels but its image img2\.tif is 128x128"):
        build_dataset(pairs, tmp_path / "out", patch_size=64, progress=False)
    assert _no_output(tmp_path, tmp_path / "out")


def test_bad_inputs_fail_before_anything_is_written(tmp_path, pairs):
    image, mask = pairs[1]
    photo = np.random.default_rng(0).integers(0, 256, (128, 128), dtype=np.uint8)
    tifffile.imwrite(mask, photo)
    with pytest.raises(InputError, match=r"img1_mask\.tif: mask is neither binary nor instance ids"):
        build_dataset(pairs, tmp_path / "out", patch_size=64, progress=False)
    tifffile.imwrite(mask, np.zeros((128, 128), np.uint8))
    values = tifffile.imread(image).astype(np.float32)
    values[3, 3] = np.nan
    tifffile.imwrite(image, values)
    with pytest.raises(InputError, match=r"img1\.tif: contains 1 NaN"):
        build_dataset(pairs, tmp_path / "out", patch_size=64, progress=False)
    image.write_bytes(image.read_bytes()[:500])
    with pytest.raises(InputError, match=r"img1\.tif: cannot be read as TIFF"):
        build_dataset(pairs, tmp_path / "out", patch_size=64, progress=False)
    assert _no_output(tmp_path, tmp_path / "out")


def test_failure_while_writing_leaves_no_partial_output_and_keeps_old_dataset(built, pairs, tmp_path, monkeypatch):
    from tem_rf.data import tfrecords

    out, _ = built
    before = {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    real_write = tfrecords.ShardWriter.write
    written = []

    def failing_write(self, record):  # the disk fills up after a few patches
        if len(written) == 5:
            raise OSError("No space left on device")
        written.append(record)
        real_write(self, record)

    monkeypatch.setattr(tfrecords.ShardWriter, "write", failing_write)
    for target, overwrite in [(tmp_path / "fresh", False), (out, True)]:
        written.clear()
        with pytest.raises(InputError, match=rf"^{target}: cannot write the dataset: No space left"):
            build_dataset(pairs, target, patch_size=64, min_particle_pixels=50, overwrite=overwrite, progress=False)
        assert len(written) == 5
    assert not (tmp_path / "fresh").exists()
    assert {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_out_dir_under_a_file_is_named(tmp_path, pairs):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(InputError, match=r"notes\.txt: is a file, so .*sub cannot be created"):
        build_dataset(pairs, tmp_path / "notes.txt" / "sub", patch_size=64, progress=False)


@pytest.mark.parametrize(
    "options, problem",
    [
        (dict(patch_size=64, min_particle_pixels=64 * 64 + 1), "more than a 64x64 patch holds"),
        (dict(patch_size=64, xray_threshold=float("nan")), "xray_threshold must be a number"),
    ],
)
def test_impossible_options_fail_before_reading(tmp_path, pairs, options, problem):
    with pytest.raises(ValueError, match=problem):
        build_dataset(pairs, tmp_path / "out", progress=False, **options)
    assert _no_output(tmp_path, tmp_path / "out")


def test_constant_image_is_refused(tmp_path, pairs):
    tifffile.imwrite(pairs[4][0], np.full((128, 128), 7, np.uint16))
    with pytest.raises(InputError, match=r"img4\.tif: image is constant"):
        build_dataset(pairs, tmp_path / "out", patch_size=64, pixel_size_nm=0.1, progress=False)
    assert _no_output(tmp_path, tmp_path / "out")


def test_too_few_images_for_the_splits(tmp_path, pairs):
    with pytest.raises(InputError, match=r"fewer source images \(2\) than splits"):
        build_dataset(pairs[:2], tmp_path / "out", patch_size=64, progress=False)
    assert _no_output(tmp_path, tmp_path / "out")


def test_rgb_images_and_instance_id_masks(tmp_path, pair_writer, caplog):
    images, labels = tmp_path / "images", tmp_path / "labels"
    for index in range(3):
        image_path, mask_path = pair_writer(images, labels, f"s{index}", seed=index)
        grey = tifffile.imread(image_path)
        tifffile.imwrite(image_path, np.stack([grey] * 3, axis=-1), photometric="rgb")
        binary = tifffile.imread(mask_path) > 0
        instance_ids = (binary * (1 + (np.arange(128)[None, :] >= 64))).astype(np.uint8)
        mask_path.unlink()
        Image.fromarray(instance_ids).save(labels / f"s{index}_label.png")
    with caplog.at_level(logging.INFO):
        info = build_dataset(
            match_masks(find_image_files(images), labels), tmp_path / "out",
            patch_size=64, min_particle_pixels=50, pixel_size_nm=0.2, progress=False,
        )
    assert "identical channels" in caplog.text
    assert "instance-id" in caplog.text
    assert all("instance-id" in s["mask_rule"] for s in info["sources"])
    assert info["pixel_size_nm"] == 0.2
    assert all(s["pixel_size_from"] == "flag" for s in info["sources"])


def test_unknown_pixel_size_warns_and_mixed_sizes_fail(tmp_path, pair_writer, caplog):
    images, labels = tmp_path / "images", tmp_path / "labels"
    pairs = [pair_writer(images, labels, f"u{i}", seed=i) for i in range(3)]
    with caplog.at_level(logging.WARNING):
        info = build_dataset(pairs, tmp_path / "out", patch_size=64, min_particle_pixels=50, progress=False)
    assert info["pixel_size_nm"] is None
    assert "pixel size unknown" in caplog.text
    pairs.append(pair_writer(images, labels, "u3", seed=3, pixel_size_nm=0.5))
    with pytest.raises(InputError, match=r"u0\.tif: has no pixel size .* pass --pixel_size_nm"):
        build_dataset(pairs, tmp_path / "out2", patch_size=64, min_particle_pixels=50, progress=False)
    with pytest.raises(InputError, match=r"pixel size 0\.5 nm differs"):
        build_dataset(pairs, tmp_path / "out2", patch_size=64, pixel_size_nm=0.1, progress=False)


def test_sizes_not_multiple_of_the_patch_size(tmp_path, pair_writer):
    images, labels = tmp_path / "images", tmp_path / "labels"
    mask = np.ones((100, 150), np.uint8)
    pairs = [pair_writer(images, labels, f"e{i}", shape=(100, 150), seed=i, mask=mask) for i in range(3)]
    shifted = build_dataset(pairs, tmp_path / "shift", patch_size=64, edge="shift", progress=False)
    dropped = build_dataset(pairs, tmp_path / "drop", patch_size=64, edge="drop", progress=False)
    # shift: rows {0, 36} x cols {0, 64, 86}; drop: rows {0} x cols {0, 64}
    assert sum(shifted["counts"].values()) == 3 * 6
    assert sum(dropped["counts"].values()) == 3 * 2
    with pytest.raises(InputError, match=r"e0\.tif: image is 100x150 pixels, smaller than the patch size 128"):
        build_dataset(pairs, tmp_path / "big", patch_size=128, progress=False)


def test_images_without_kept_patches_are_left_out(tmp_path, pair_writer, caplog):
    images, labels = tmp_path / "images", tmp_path / "labels"
    pairs = [pair_writer(images, labels, f"k{i}", seed=i) for i in range(3)]
    pairs.append(pair_writer(images, labels, "empty", seed=9, mask=np.zeros((128, 128), np.uint8)))
    with caplog.at_level(logging.WARNING):
        info = build_dataset(pairs, tmp_path / "out", patch_size=64, min_particle_pixels=50, progress=False)
    empty = next(s for s in info["sources"] if s["image"] == "empty.tif")
    assert empty["split"] is None and empty["patches"] == 0
    assert "empty.tif: no 64x64 patch" in caplog.text


def test_read_dataset_info_errors(tmp_path, built):
    with pytest.raises(InputError, match="dataset folder does not exist"):
        read_dataset_info(tmp_path / "nope")
    (tmp_path / "plain").mkdir()
    with pytest.raises(InputError, match="is not a dataset: no dataset.json"):
        read_dataset_info(tmp_path / "plain")
    out, info = built
    (out / "dataset.json").write_text(json.dumps(info | {"schema_version": 99}))
    with pytest.raises(InputError, match="schema_version 99"):
        read_dataset_info(out)
    (out / "dataset.json").write_text("{ not json")
    with pytest.raises(InputError, match="dataset.json: is not valid JSON"):
        read_dataset_info(out)


# ---------------------------------------------------------------------------- one micrograph, one sample


def test_two_files_with_one_stem_are_refused(tmp_path):
    images, labels = tmp_path / "images", tmp_path / "labels"
    images.mkdir(), labels.mkdir()
    for name in ("a.tif", "a.png", "b.tif"):
        (images / name).write_bytes(b"x")
    for name in ("a_mask.png", "b_mask.png"):
        (labels / name).write_bytes(b"x")
    with pytest.raises(InputError, match=r"a\.tif: has the same stem as .*a\.png \(one micrograph, one sample"):
        match_masks(find_image_files(images), labels)
    (images / "a.png").unlink()
    (images / "A.tiff").write_bytes(b"x")  # stems match masks case-insensitively, so they clash too
    with pytest.raises(InputError, match=r"a\.tif: has the same stem as .*A\.tiff"):
        match_masks(find_image_files(images), labels)


def test_the_same_pixels_under_two_names_are_refused(tmp_path, pair_writer):
    images, labels = tmp_path / "images", tmp_path / "labels"
    for index in range(4):
        pair_writer(images, labels, f"img{index}", seed=index)
    (images / "copy.tif").write_bytes((images / "img1.tif").read_bytes())
    (labels / "copy_mask.tif").write_bytes((labels / "img1_mask.tif").read_bytes())
    out = tmp_path / "out"
    with pytest.raises(InputError, match=r"img1\.tif: holds the same pixels as .*copy\.tif"):
        build_dataset(match_masks(find_image_files(images), labels), out, patch_size=64,
                      min_particle_pixels=50, progress=False)
    assert not out.exists()


@pytest.mark.parametrize("kind", ["folder", "fifo", "loop", "dangling"])
def test_unreadable_entries_are_named_not_skipped(tmp_path, kind):
    images = tmp_path / "images"
    images.mkdir()
    (images / "a.tif").write_bytes(b"x")
    bad = images / "b.tif"
    if kind == "folder":
        bad.mkdir()
        problem = "is a folder, not a micrograph file"
    elif kind == "fifo":
        os.mkfifo(bad)
        problem = r"is a named pipe \(FIFO\)"
    elif kind == "loop":
        bad.symlink_to(images / "c.tif")
        (images / "c.tif").symlink_to(bad)
        problem = "is a broken symbolic link"
    else:
        bad.symlink_to(tmp_path / "gone.tif")
        problem = "is a broken symbolic link"
    with pytest.raises(InputError, match=rf"b\.tif: {problem}"):
        find_image_files(images)
    with pytest.raises(InputError, match=rf"b\.tif: {problem}"):
        find_image_files(str(images / "*.tif"))
    labels = tmp_path / "labels"
    labels.mkdir()
    (labels / "a_mask.png").write_bytes(b"x")
    (labels / "b_mask.png").symlink_to(bad) if kind != "folder" else (labels / "b_mask.png").mkdir()
    with pytest.raises(InputError, match=r"b_mask\.png: (is a|is not|cannot)"):
        match_masks([images / "a.tif"], labels)


# ---------------------------------------------------------------------------- published splits


def _emps_like(root, names, pair_writer):
    """An EMPS-like folder: RGB PNG micrographs, uint16 instance-id PNG masks, train/test csv."""
    images, labels = root / "images", root / "segmaps"
    images.mkdir(parents=True), labels.mkdir(parents=True)
    for index, name in enumerate(names):
        rng = np.random.default_rng(index)
        rows, cols = np.mgrid[:96, :96]
        instances = np.zeros((96, 96), np.uint16)
        for particle in range(1, 4):
            r, c = rng.uniform(16, 80, size=2)
            instances[(rows - r) ** 2 + (cols - c) ** 2 <= 12**2] = particle
        grey = (rng.poisson(150, size=(96, 96)) - 60 * (instances > 0)).clip(0, 255).astype(np.uint8)
        skimage.io.imsave(images / f"{name}.png", np.stack([grey] * 3, axis=-1), check_contrast=False)
        skimage.io.imsave(labels / f"{name}.png", instances, check_contrast=False)
    return images, labels


def test_split_files_keep_a_published_split(tmp_path, pair_writer, caplog):
    names = [f"{i:02d}ab{i}cd" for i in range(7)]
    images, labels = _emps_like(tmp_path / "emps", names, pair_writer)
    (tmp_path / "train.csv").write_text("filename,doi\n" + "".join(f"{n}.png,10.1/x\n" for n in names[:4]))
    (tmp_path / "val.txt").write_text(f"# validation\n{names[4]}\n\n")
    (tmp_path / "test.csv").write_text(f"filename\nimages/{names[5]}.png\n")
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING):
        info = build_dataset_from_folders(
            images, labels, out, patch_size=64, min_particle_pixels=20, num_shards=1, progress=False,
            split_files=f"train={tmp_path / 'train.csv'},val={tmp_path / 'val.txt'},test={tmp_path / 'test.csv'}",
        )
    assert info["splits"]["train"]["sources"] == sorted(f"{n}.png" for n in names[:4])
    assert info["splits"]["val"]["sources"] == [f"{names[4]}.png"]
    assert info["splits"]["test"]["sources"] == [f"{names[5]}.png"]
    assert info["split_fractions"] is None and set(info["split_files"]) == {"train", "val", "test"}
    assert "1 image(s) listed in no --split_files list are left out" in caplog.text
    summary = format_dataset_summary(info, out)
    assert "from 6 of 7 images" in summary
    assert "left out: 1 image (listed in no --split_files list)" in summary
    assert names[0] not in summary  # the list of sources stays in dataset.json
    from tem_rf.data import load_split

    assert sum(1 for _ in load_split(out, "val", batch_size=1)) == info["counts"]["val"] > 0


@pytest.mark.parametrize(
    "lists, problem",
    [
        ({"train": "a\nb\n", "test": "b\n"}, r"test\.txt: lists 'b', which .*train\.txt lists too"),
        ({"train": "a\nzz\n"}, r"train\.txt: lists 1 image\(s\) not found among the micrographs: zz"),
        ({"train": "# only a comment\n"}, r"train\.txt: split file lists no images"),
    ],
)
def test_bad_split_files_are_refused_by_name(tmp_path, pair_writer, lists, problem):
    images, labels = tmp_path / "images", tmp_path / "labels"
    for name in ("a", "b", "c"):
        pair_writer(images, labels, name, seed=ord(name))
    for split, text in lists.items():
        (tmp_path / f"{split}.txt").write_text(text)
    spec = ",".join(f"{split}={tmp_path / f'{split}.txt'}" for split in lists)
    with pytest.raises(InputError, match=problem):
        build_dataset_from_folders(images, labels, tmp_path / "out", patch_size=64,
                                   min_particle_pixels=20, progress=False, split_files=spec)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "spec, problem",
    [("val=a.txt", "needs a train list"), ("train=a,train=b", "names split 'train' twice"),
     ("training=a.txt", "unknown split 'training'"), ("train", "entries are SPLIT=PATH")],
)
def test_split_files_flag_syntax(spec, problem):
    with pytest.raises(ValueError, match=problem):
        parse_split_files(spec)


def test_split_file_formats(tmp_path):
    (tmp_path / "plain.txt").write_text("x1\nx2.tif\nsub/x3.PNG\nx1\n")
    assert read_split_file(tmp_path / "plain.txt") == ["x1", "x2", "x3"]
    (tmp_path / "emps.csv").write_text("id,filename,doi\n7,f788.png,10.1\n8,a.b.png,10.2\n")
    assert read_split_file(tmp_path / "emps.csv") == ["f788", "a.b"]
    (tmp_path / "noheader.csv").write_text("q1.png,1\nq2.png,2\n")
    assert read_split_file(tmp_path / "noheader.csv") == ["q1", "q2"]
    with pytest.raises(InputError, match="nothing.txt: split file does not exist"):
        read_split_file(tmp_path / "nothing.txt")


def test_frame_takes_one_frame_of_every_stack(tmp_path, pair_writer):
    images, labels = tmp_path / "images", tmp_path / "labels"
    for index in range(3):
        image, _ = pair_writer(images, labels, f"s{index}", seed=index)
        frame = tifffile.imread(image)
        # Frame 1 is the micrograph; frames 0 and 2 are darker and brighter copies.
        tifffile.imwrite(image, np.stack([frame // 2, frame, frame + 100]).astype(np.uint16), photometric="minisblack")
    pairs = match_masks(find_image_files(images), labels)
    with pytest.raises(InputError, match=r"s0\.tif: is a stack of 3 frames of 128x128 px, not a single image"):
        build_dataset(pairs, tmp_path / "a", patch_size=64, min_particle_pixels=20, progress=False)
    assert not (tmp_path / "a").exists()
    info = build_dataset(pairs, tmp_path / "b", patch_size=64, min_particle_pixels=20, progress=False,
                         split_fractions=(1 / 3, 1 / 3, 1 / 3), frame=1, num_shards=1)
    assert info["read_options"] == {"frame": 1}
    from tem_rf.data import load_split
    from tem_rf.data.preprocess import preprocess_micrograph

    # The patches are frame 1's: the first training patch equals frame 1, preprocessed.
    source = info["splits"]["train"]["sources"][0]
    expected = preprocess_micrograph(tifffile.imread(images / source)[1].astype(np.float32))[:64, :64]
    first = next(iter(load_split(tmp_path / "b", "train", batch_size=1, with_info=True)))
    assert first[2]["source"][0].numpy().decode() == source
    assert (first[2]["patch_row"][0], first[2]["patch_col"][0]) == (0, 0)
    np.testing.assert_allclose(first[0][0, :, :, 0].numpy(), expected, atol=1e-5)


def test_the_training_particles_sizes_are_recorded(built):
    out, info = built
    sizes = info["particle_diameter_px"]
    assert sizes == read_dataset_info(out)["particle_diameter_px"]
    # write_pair draws discs of radius 18 (37 px across; some overlap or touch the edge)
    assert sizes["count"] >= 1 and 34 <= sizes["q05"] <= sizes["median"] <= sizes["q95"]
    assert 35 <= sizes["median"] <= 40 or sizes["q95"] > 40  # merged discs are larger, never smaller


def test_an_xray_threshold_that_replaces_much_of_a_micrograph_is_said(pairs, tmp_path, caplog):
    with caplog.at_level("WARNING"):
        info = build_dataset(pairs, tmp_path / "low", patch_size=64, min_particle_pixels=50, xray_threshold=1.0,
                             progress=False)
    fractions = [s["xray_pixels_replaced"] / (s["height"] * s["width"]) for s in info["sources"]]
    assert min(fractions) > 0.05  # a threshold of 1 robust SD flags a good part of any noisy image
    assert "x-ray outlier removal replaced" in caplog.text and "raise --xray_threshold" in caplog.text
    assert all("x-ray outlier removal replaced" in s["notes"][-1] for s in info["sources"] if s["split"])
    caplog.clear()
    with caplog.at_level("WARNING"):
        build_dataset(pairs, tmp_path / "default", patch_size=64, min_particle_pixels=50, progress=False)
    assert "x-ray outlier removal replaced" not in caplog.text  # the default threshold: a few hits at most


def test_a_published_train_and_test_split_gets_validation_from_the_train_list(tmp_path, pair_writer):
    names = [f"{i:02d}ef{i}" for i in range(12)]
    images, labels = _emps_like(tmp_path / "emps", names, pair_writer)
    (tmp_path / "train.csv").write_text("".join(f"{n}\n" for n in names[:10]))
    (tmp_path / "test.csv").write_text("".join(f"{n}\n" for n in names[10:]))
    spec = f"train={tmp_path / 'train.csv'},test={tmp_path / 'test.csv'}"
    common = dict(patch_size=64, min_particle_pixels=20, num_shards=1, progress=False, split_files=spec)
    info = build_dataset_from_folders(images, labels, tmp_path / "a", seed=3, **common)
    val = info["splits"]["val"]["sources"]
    train = info["splits"]["train"]["sources"]
    assert len(val) == 1 and len(train) == 9  # 10 % of 10, by image
    assert set(val + train) == {f"{n}.png" for n in names[:10]}
    assert info["splits"]["test"]["sources"] == [f"{n}.png" for n in names[10:]]
    assert info["val_from_train"] == {"fraction": 0.1, "seed": 3, "images": 1}
    assert "val: 1 image(s) carved from the train list (--val_fraction=0.1, --seed=3)" in format_dataset_summary(
        info, tmp_path / "a")
    again = build_dataset_from_folders(images, labels, tmp_path / "b", seed=3, **common)
    assert again["splits"]["val"]["sources"] == val  # deterministic by seed
    other = build_dataset_from_folders(images, labels, tmp_path / "c", seed=3, val_fraction=0.3, **common)
    assert len(other["splits"]["val"]["sources"]) == 3
    none = build_dataset_from_folders(images, labels, tmp_path / "d", val_fraction=0.0, **common)
    assert none["counts"]["val"] == 0 and none["val_from_train"] is None


def test_val_fraction_that_cannot_apply_is_refused(tmp_path, pair_writer):
    from tem_rf.data.splits import carve_validation

    images, labels = _emps_like(tmp_path / "emps", ["a1", "b2", "c3"], pair_writer)
    (tmp_path / "train.txt").write_text("a1\nb2\n")
    (tmp_path / "val.txt").write_text("c3\n")
    common = dict(patch_size=64, min_particle_pixels=20, progress=False)
    with pytest.raises(ValueError, match="give one or the other"):
        build_dataset_from_folders(images, labels, tmp_path / "o", val_fraction=0.2,
                                   split_files=f"train={tmp_path / 'train.txt'},val={tmp_path / 'val.txt'}", **common)
    with pytest.raises(ValueError, match="with --split, give the validation fraction there"):
        build_dataset_from_folders(images, labels, tmp_path / "o", val_fraction=0.2, **common)
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\)"):
        build_dataset_from_folders(images, labels, tmp_path / "o", val_fraction=1.0,
                                   split_files=f"train={tmp_path / 'train.txt'}", **common)
    with pytest.raises(InputError, match="one.txt: holds 1 usable image"):
        carve_validation(["x"], 0.1, 0, "one.txt")
    assert not (tmp_path / "o").exists()
