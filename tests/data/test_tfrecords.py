"""TFRecord schema: bit-identical round trips, and damaged, truncated or edited datasets."""

import json
import math
import re
import struct

import numpy as np
import pytest
import tensorflow as tf

from tem_rf.data import load_split, preprocess_micrograph, read_dataset_info, split_size
from tem_rf.core.errors import InputError
from tem_rf.data.reading import read_mask, read_micrograph
from tem_rf.data.tfrecords import (
    ShardWriter,
    decode_example,
    encode_example,
    masked_crc32c,
    scan_tfrecord,
)


def test_example_round_trip_is_bit_identical():
    rng = np.random.default_rng(0)
    image = rng.normal(size=(16, 12)).astype(np.float32)
    image[0, :4] = [-0.0, np.float32(1e-45), np.finfo(np.float32).max, np.finfo(np.float32).tiny]
    label = (rng.random((16, 12)) > 0.5).astype(np.uint8)
    decoded = decode_example(tf.constant(encode_example(image, label, "a b/é.tif", 512, 1024, 0.02152)))
    assert decoded["image"].dtype == tf.float32 and decoded["label"].dtype == tf.uint8
    assert decoded["image"].numpy().tobytes() == image.tobytes()
    np.testing.assert_array_equal(decoded["label"].numpy(), label)
    assert decoded["source"].numpy().decode() == "a b/é.tif"
    assert (int(decoded["patch_row"]), int(decoded["patch_col"])) == (512, 1024)
    assert (int(decoded["height"]), int(decoded["width"])) == (16, 12)
    assert float(decoded["pixel_size_nm"]) == pytest.approx(0.02152)
    unknown = decode_example(tf.constant(encode_example(image, label, "x", 0, 0, None)))
    assert math.isnan(float(unknown["pixel_size_nm"]))


def test_dataset_patches_equal_preprocessed_source_bit_for_bit(built, pairs):
    out, info = built
    paths = {image.name: (image, mask) for image, mask in pairs}
    seen = 0
    for split in ("train", "val", "test"):
        for image, label, extra in load_split(out, split, batch_size=3, with_info=True):
            for i in range(image.shape[0]):
                source = extra["source"][i].numpy().decode()
                assert source in info["splits"][split]["sources"]
                row, col = int(extra["patch_row"][i]), int(extra["patch_col"][i])
                image_path, mask_path = paths[source]
                expected = preprocess_micrograph(read_micrograph(image_path).data)[row : row + 64, col : col + 64]
                assert image[i, ..., 0].numpy().tobytes() == expected.tobytes()
                np.testing.assert_array_equal(label[i].numpy(), read_mask(mask_path)[row : row + 64, col : col + 64])
                seen += 1
    assert seen == sum(info["counts"].values())


def test_shard_writer_round_robin_and_scan(tmp_path):
    writer = ShardWriter(tmp_path, "train", num_shards=4)
    records = [bytes([i]) * (10 + i) for i in range(3)]
    for record in records:
        writer.write(record)
    shards = writer.close()
    # Three records, so three shards, named with the count actually used.
    assert [s.file for s in shards] == [f"train/train-0000{i}-of-00003.tfrecord" for i in range(3)]
    located = [scan_tfrecord(tmp_path / s.file) for s in shards]
    assert [[r.length for r in loc] for loc in located] == [[10], [11], [12]]
    for loc, record in zip(located, records):
        with open(loc[0].path, "rb") as handle:
            handle.seek(loc[0].data_offset)
            assert handle.read(loc[0].length) == record
    assert not list(tmp_path.glob("train/*.partial"))


def test_truncated_shard_is_reported_at_load_time(built):
    out, info = built
    shard = out / info["splits"]["train"]["shards"][1]["file"]
    content = shard.read_bytes()
    shard.write_bytes(content[: len(content) - 100])
    with pytest.raises(InputError, match=r"train-00001-of-00002\.tfrecord: truncated TFRecord shard"):
        load_split(out, "train", batch_size=2)
    shard.write_bytes(content[:5])
    with pytest.raises(InputError, match="truncated TFRecord shard: record 0 header"):
        load_split(out, "train", batch_size=2)
    shard.unlink()
    with pytest.raises(InputError, match="shard file is missing"):
        load_split(out, "train", batch_size=2)
    assert read_dataset_info(out)["counts"]["train"] == info["counts"]["train"]


def test_masked_crc32c_matches_tensorflow_records(tmp_path):
    path = tmp_path / "a.tfrecord"
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in (b"", b"x", bytes(range(256)) * 3):
            writer.write(record)
    content = path.read_bytes()
    for location in scan_tfrecord(path):
        start, end = location.data_offset, location.data_offset + location.length
        assert masked_crc32c(content[start - 12 : start - 4]) == struct.unpack("<I", content[start - 4 : start])[0]
        assert masked_crc32c(content[start:end]) == struct.unpack("<I", content[end : end + 4])[0]


def _flip(path, offset):
    content = bytearray(path.read_bytes())
    content[offset] ^= 0x10
    path.write_bytes(bytes(content))


def _train_shard(out, info, index=1):
    shard = out / info["splits"]["train"]["shards"][index]["file"]
    records = scan_tfrecord(shard)
    assert len(records) >= 3
    return shard, records


def _in_memory_and_disk(monkeypatch, reading):
    if reading == "disk":
        from tem_rf.data import pipeline

        monkeypatch.setattr(pipeline, "IN_MEMORY_MAX_BYTES", 0)  # record-by-record disk reads


@pytest.mark.parametrize("reading", ["memory", "disk"])
def test_flipped_data_byte_is_reported_naming_the_shard(built, monkeypatch, reading):
    # The dataset.json of `built` holds no checksums, like every dataset written before this
    # check existed: the records' own CRCs find the damage.
    out, info = built
    _in_memory_and_disk(monkeypatch, reading)
    shard, records = _train_shard(out, info)
    _flip(shard, records[2].data_offset + records[2].length // 2)  # inside the image bytes
    with pytest.raises(InputError) as error:
        load_split(out, "train", batch_size=2, augment=True, shuffle_seed=0)
    assert error.value.path == shard
    assert str(error.value) == (
        f"{shard}: damaged TFRecord shard: record 2 fails its CRC check (data changed after "
        "writing); rebuild the dataset or copy the shard again"
    )
    load_split(out, "val", batch_size=2)  # the other splits are whole


@pytest.mark.parametrize("reading", ["memory", "disk"])
def test_flipped_data_crc_byte_is_reported(built, monkeypatch, reading):
    out, info = built
    _in_memory_and_disk(monkeypatch, reading)
    shard, records = _train_shard(out, info, index=0)
    _flip(shard, records[1].data_offset + records[1].length + 2)  # the data's stored CRC
    message = r"train-00000-of-00002\.tfrecord: damaged TFRecord shard: record 1 fails its CRC"
    with pytest.raises(InputError, match=message):
        load_split(out, "train", batch_size=2)


@pytest.mark.parametrize("byte", [0, 5, 9])  # the length's low and high bytes, and its CRC
def test_flipped_length_field_is_reported_naming_the_shard(built, byte):
    out, info = built
    shard, records = _train_shard(out, info)
    start = records[1].data_offset - 12
    _flip(shard, start + byte)
    with pytest.raises(InputError) as error:
        load_split(out, "train", batch_size=2)
    assert error.value.path == shard
    assert (
        f"damaged TFRecord shard: record 1 (at byte {start}) has a length field that fails its CRC check"
        in str(error.value)
    )


@pytest.mark.parametrize("reading", ["memory", "disk"])
def test_shards_are_checked_once_and_again_after_they_change(built, monkeypatch, reading):
    import os

    from tem_rf.data import pipeline

    out, info = built
    _in_memory_and_disk(monkeypatch, reading)
    checked = []
    verify = pipeline.verify_tfrecords
    monkeypatch.setattr(pipeline, "verify_tfrecords", lambda shards: (checked.append(shards), verify(shards)))
    shard, records = _train_shard(out, info)
    load_split(out, "train", batch_size=2)
    assert [path for path, _ in checked[-1]] == [out / s["file"] for s in info["splits"]["train"]["shards"]]
    load_split(out, "train", batch_size=2, epoch=1)  # the next epoch: nothing read again
    assert checked[-1] == []
    before = shard.stat().st_mtime_ns
    _flip(shard, records[0].data_offset + 30)
    os.utime(shard, ns=(before + 10**9, before + 10**9))  # as a later copy or write would
    with pytest.raises(InputError, match="train-00001-of-00002.tfrecord: damaged TFRecord shard: record 0 fails"):
        load_split(out, "train", batch_size=2)
    assert [path for path, _ in checked[-1]] == [shard]


def test_train_binary_refuses_a_damaged_shard(built, tmp_path):
    from binaries import call_main

    out, info = built
    shard, records = _train_shard(out, info)
    _flip(shard, records[2].data_offset + 100)
    result = call_main(
        "experiments.train", "--progress=false", f"--data_dir={out}", f"--model_dir={tmp_path / 'run'}",
        "--epochs=1", "--batch_size=4", "--num_blocks=2",
    )
    assert result.returncode != 0
    assert f"error: {shard}: damaged TFRecord shard: record 2 fails its CRC check" in result.stderr
    assert "Traceback" not in result.stderr


def _edit_json(out, edit):
    path = out / "dataset.json"
    info = json.loads(path.read_text())
    edit(info)
    path.write_text(json.dumps(info))
    return path


@pytest.mark.parametrize(
    "edit,message",
    [
        (lambda i: i["splits"]["train"]["shards"][1].update(count=i["splits"]["train"]["shards"][1]["count"] + 1),
         r"splits\.train\.count is (\d+) but its shards list (\d+) records; dataset\.json was edited"),
        (lambda i: i["splits"]["train"].update(count=i["splits"]["train"]["count"] - 1),
         r"splits\.train\.count is (\d+) but its shards list (\d+) records; dataset\.json was edited"),
        (lambda i: i["counts"].update(train=i["counts"]["train"] + 1),
         r"counts\.train is (\d+) but splits\.train\.count is (\d+); dataset\.json was edited"),
        (lambda i: i["counts"].update(val="2"), r"counts\.val is '2' but splits\.val\.count is"),
        (lambda i: i["splits"]["test"]["shards"][0].update(count=-1), r"splits\.test\.shards has an invalid entry"),
        (lambda i: i["splits"]["test"]["shards"][0].update(file="../elsewhere.tfrecord"),
         r"lies outside the dataset folder"),
    ],
    ids=["shard_count", "split_count", "counts", "counts_not_a_number", "negative_shard_count", "outside_path"],
)
def test_edited_counts_in_dataset_json_are_refused(built, edit, message):
    out, _ = built
    path = _edit_json(out, edit)
    for call in (read_dataset_info, lambda d: split_size(d, "train"), lambda d: load_split(d, "train", batch_size=2)):
        with pytest.raises(InputError) as error:
            call(out)
        assert error.value.path == path
        match = re.search(message, str(error.value))
        assert match, str(error.value)
        assert len(set(match.groups())) == len(match.groups())  # the numbers named differ


def test_a_shard_count_edited_everywhere_is_refused_by_the_shard(built):
    out, info = built
    shard = info["splits"]["train"]["shards"][0]

    def edit(i):
        i["splits"]["train"]["shards"][0]["count"] += 1
        i["splits"]["train"]["count"] += 1
        i["counts"]["train"] += 1

    _edit_json(out, edit)
    assert read_dataset_info(out)["counts"]["train"] == info["counts"]["train"] + 1  # consistent in itself
    with pytest.raises(
        InputError,
        match=rf"{shard['file']}: holds {shard['count']} records but dataset.json lists {shard['count'] + 1}",
    ):
        load_split(out, "train", batch_size=2)


def test_an_edited_shard_size_is_refused(built):
    out, info = built
    shard = info["splits"]["val"]["shards"][0]
    _edit_json(out, lambda i: i["splits"]["val"]["shards"][0].update(bytes=shard["bytes"] + 7))
    with pytest.raises(
        InputError, match=rf"{shard['file']}: is {shard['bytes']} bytes but dataset.json lists {shard['bytes'] + 7}"
    ):
        load_split(out, "val", batch_size=2)
    load_split(out, "train", batch_size=2)


def test_edited_patch_size_is_refused_with_one_clear_error(built):
    out, info = built
    assert info["patch_size"] == 64

    def set_both(size):
        def edit(i):
            i["patch_size"] = size
            i["preprocessing"]["patch_size"] = size
        return edit

    path = _edit_json(out, set_both(32))
    assert read_dataset_info(out)["patch_size"] == 32  # consistent in itself: only the records tell
    for split in ("train", "test"):
        with pytest.raises(InputError) as error:
            load_split(out, split, batch_size=2, augment=True)
        assert error.value.path == path
        assert "patch_size is 32 but the records are 64x64 pixels (record 0 of" in str(error.value)
        assert "dataset.json was edited: restore it or rebuild the dataset" in str(error.value)

    _edit_json(out, lambda i: i.update(patch_size=64))  # one of the two edited back
    with pytest.raises(InputError, match="patch_size is 64 but preprocessing.patch_size is 32"):
        load_split(out, "train", batch_size=2)
    for bad in (0, -64, 64.0, "64", True, None):
        _edit_json(out, set_both(bad))
        message = rf"dataset.json: patch_size must be a positive whole number of pixels, got {re.escape(repr(bad))}"
        with pytest.raises(InputError, match=message):
            read_dataset_info(out)
    _edit_json(out, set_both(64))
    assert sum(int(x.shape[0]) for x, _ in load_split(out, "train", batch_size=3)) == info["counts"]["train"]



def test_tensorflow_data_loss_messages_become_named_errors(tmp_path):
    from tem_rf.data.tfrecords import _damaged

    path = tmp_path / "a.tfrecord"
    with tf.io.TFRecordWriter(str(path)) as writer:
        for _ in range(3):
            writer.write(b"x" * 20)
    records = scan_tfrecord(path)  # records of 36 bytes at 0, 36, 72

    def error(text):
        return tf.errors.DataLossError(None, None, f"{{{{function_node __wrapped__Reduce}}}} {text} [Op:ReduceDataset]")

    assert str(_damaged(path, records, error("corrupted record at 84"))) == (
        f"{path}: damaged TFRecord shard: record 2 fails its CRC check (data changed after writing); "
        "rebuild the dataset or copy the shard again"
    )
    truncated = _damaged(path, records, error("truncated record at 36"))
    assert "truncated TFRecord shard: record 1 is cut off" in str(truncated)
    assert "the record at byte 500 fails" in str(_damaged(path, records, error("corrupted record at 500")))
    other = _damaged(path, records, error("something else"))
    assert str(other).startswith(f"{path}: damaged TFRecord shard: something else;")
