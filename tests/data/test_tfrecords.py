"""TFRecord schema: bit-identical round trips and truncated shards."""

import math

import numpy as np
import pytest
import tensorflow as tf

from tem_rf.data import load_split, preprocess_micrograph, read_dataset_info
from tem_rf.data.tfrecords import ShardWriter, decode_example, encode_example, scan_tfrecord
from tem_rf.data.reading import InputError, read_mask, read_micrograph


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
