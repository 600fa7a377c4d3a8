"""The TFRecord schema of a dataset (one `tf.train.Example` per unaugmented patch), the shard
writer, a header scan that finds every record and detects truncated shards and damaged length
fields, and a CRC check of every record that detects damaged records.

Features (documented in README, "TFRecord schema"):
``image`` bytes, float32 little-endian row-major H*W (standardised);
``label`` bytes, uint8 H*W (0 background, 1 particle); ``height``, ``width`` int64;
``source`` bytes (source image file name); ``patch_row``, ``patch_col`` int64 (top-left corner
in the source image); ``pixel_size_nm`` float (NaN when unknown); ``instances`` bytes, uint16
little-endian H*W: each particle's id within the patch (0 background, 1..m,
`tem_rf.data.instance_masks`), absent in datasets written before tem_rf 0.4 (dataset.json says
whether it is there: ``instances``).
"""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from tem_rf.core.errors import InputError

FEATURES = {
    "image": tf.io.FixedLenFeature([], tf.string),
    "label": tf.io.FixedLenFeature([], tf.string),
    "height": tf.io.FixedLenFeature([], tf.int64),
    "width": tf.io.FixedLenFeature([], tf.int64),
    "source": tf.io.FixedLenFeature([], tf.string),
    "patch_row": tf.io.FixedLenFeature([], tf.int64),
    "patch_col": tf.io.FixedLenFeature([], tf.int64),
    "pixel_size_nm": tf.io.FixedLenFeature([], tf.float32),
    # Empty in records written before instance ids were stored.
    "instances": tf.io.FixedLenFeature([], tf.string, default_value=b""),
}

# A TFRecord is: uint64 length, uint32 masked CRC of the length, data, uint32 masked CRC of data.
_HEADER_BYTES = 12
_FOOTER_BYTES = 4
_CRC_MASK_DELTA = 0xA282EAD8
_REBUILD = "rebuild the dataset or copy the shard again"


def _crc32c_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC32C_TABLE = _crc32c_table()


def masked_crc32c(data: bytes) -> int:
    """The TFRecord checksum of ``data``: CRC-32C (Castagnoli), rotated and offset ("masked").

    Pure Python (about 0.3 us per byte): the scan uses it for the 8-byte length fields only;
    record data is checked by TensorFlow's reader (`verify_tfrecords`).
    """
    crc = 0xFFFFFFFF
    table = _CRC32C_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    crc ^= 0xFFFFFFFF
    return (((crc >> 15) | (crc << 17)) + _CRC_MASK_DELTA) & 0xFFFFFFFF


def encode_example(
    image: np.ndarray,
    label: np.ndarray,
    source: str,
    patch_row: int,
    patch_col: int,
    pixel_size_nm: float | None,
    instances: np.ndarray | None = None,
) -> bytes:
    """Serialises one patch (image float32 [H,W], label 0/1 [H,W], optionally its particles'
    ids uint16 [H,W], nonzero exactly where the label is) as a `tf.train.Example`."""
    image = np.asarray(image)
    label = np.asarray(label)
    if image.ndim != 2 or image.shape != label.shape:
        raise ValueError(f"image {image.shape} and label {label.shape} must be equal 2-D shapes")
    if label.size and label.max() > 1:
        raise ValueError("label must be 0/1")
    if instances is not None:
        instances = np.asarray(instances)
        if instances.shape != label.shape or instances.dtype != np.uint16:
            raise ValueError(f"instances must be uint16 {label.shape}, got {instances.dtype} {instances.shape}")
        if not np.array_equal(instances != 0, label != 0):
            raise ValueError("instances must be nonzero exactly where the label is particle")

    def int64(value: int) -> tf.train.Feature:
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))

    def raw(value: bytes) -> tf.train.Feature:
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))

    size = float("nan") if pixel_size_nm is None else float(pixel_size_nm)
    example = tf.train.Example(
        features=tf.train.Features(
            feature={
                "image": raw(np.ascontiguousarray(image, dtype="<f4").tobytes()),
                "label": raw(np.ascontiguousarray(label, dtype=np.uint8).tobytes()),
                "height": int64(image.shape[0]),
                "width": int64(image.shape[1]),
                "source": raw(source.encode("utf-8")),
                "patch_row": int64(patch_row),
                "patch_col": int64(patch_col),
                "pixel_size_nm": tf.train.Feature(float_list=tf.train.FloatList(value=[size])),
                **({} if instances is None else
                   {"instances": raw(np.ascontiguousarray(instances, dtype="<u2").tobytes())}),
            }
        )
    )
    return example.SerializeToString()


def decode_example(serialized: tf.Tensor, *, instances: bool = False) -> dict[str, tf.Tensor]:
    """Parses one serialised example: ``image`` float32 [H,W], ``label`` uint8 [H,W], and the
    scalar features as stored; with ``instances``, ``instances`` uint16 [H,W] (only for records
    that hold it: an older record fails the reshape). Without, ``instances`` is left as bytes."""
    features = tf.io.parse_single_example(serialized, FEATURES)
    shape = tf.stack([features["height"], features["width"]])
    features["image"] = tf.reshape(tf.io.decode_raw(features["image"], tf.float32, little_endian=True), shape)
    features["label"] = tf.reshape(tf.io.decode_raw(features["label"], tf.uint8), shape)
    if instances:
        features["instances"] = tf.reshape(
            tf.io.decode_raw(features["instances"], tf.uint16, little_endian=True), shape)
    return features


def shard_name(split: str, index: int, num_shards: int) -> str:
    return f"{split}-{index:05d}-of-{num_shards:05d}.tfrecord"


@dataclass(frozen=True)
class ShardInfo:
    file: str  # relative to the dataset directory, e.g. "train/train-00000-of-00004.tfrecord"
    count: int
    bytes: int
    sha256: str = ""  # of the whole file: another build's shard of the same size is told apart


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes, read in 1 MiB blocks."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class ShardWriter:
    """Writes a split's records round-robin into up to ``num_shards`` shards.

    Record k goes to shard ``k % S`` (S = shards actually used = min(num_shards, records)), so a
    round-robin read of the shards returns the records in the order they were written. Shard names
    carry S, which is only known at the end: files get their final names in `close`.
    """

    def __init__(self, dataset_dir: str | os.PathLike, split: str, num_shards: int):
        if num_shards < 1:
            raise ValueError(f"num_shards must be >= 1, got {num_shards}")
        self._dataset_dir = Path(dataset_dir)
        self._split = split
        self._split_dir = self._dataset_dir / split
        self._split_dir.mkdir(parents=True, exist_ok=True)
        self._num_shards = num_shards
        self._writers: list[tf.io.TFRecordWriter] = []
        self._counts: list[int] = []
        self._closed = False

    def _partial(self, index: int) -> Path:
        return self._split_dir / f"{self._split}-{index:05d}.partial"

    def write(self, record: bytes) -> None:
        total = sum(self._counts)
        index = total % self._num_shards
        if index == len(self._writers):
            self._writers.append(tf.io.TFRecordWriter(str(self._partial(index))))
            self._counts.append(0)
        self._writers[index].write(record)
        self._counts[index] += 1

    def close(self) -> list[ShardInfo]:
        """Flushes, renames shards to their final names and returns their descriptions."""
        if self._closed:
            raise RuntimeError("ShardWriter already closed")
        self._closed = True
        for writer in self._writers:
            writer.close()
        shards = []
        used = len(self._writers)
        for index, count in enumerate(self._counts):
            name = shard_name(self._split, index, used)
            final = self._split_dir / name
            os.replace(self._partial(index), final)
            shards.append(ShardInfo(f"{self._split}/{name}", count, final.stat().st_size, file_sha256(final)))
        return shards


@dataclass(frozen=True)
class RecordLocation:
    path: str
    data_offset: int  # first byte of the serialised example
    length: int
    file_size: int


def scan_tfrecord(path: str | os.PathLike) -> list[RecordLocation]:
    """Walks a TFRecord file's record headers (reading 12 bytes per record, seeking over data).

    Raises `InputError` naming the file when a record runs past the end of the file (a truncated
    or partly copied shard) or a length field fails its CRC check (a damaged shard), so a bad
    shard is reported before training starts, not mid-epoch. Record data is not read: its CRCs
    are checked by `verify_tfrecords`.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "shard file is missing")
    file_size = path.stat().st_size
    records = []
    offset = 0
    with open(path, "rb") as handle:
        while offset < file_size:
            header = handle.read(_HEADER_BYTES)
            if len(header) < _HEADER_BYTES:
                raise InputError(
                    path,
                    f"truncated TFRecord shard: record {len(records)} header cut off at byte "
                    f"{file_size}; rebuild the dataset or copy the shard again",
                )
            (length, length_crc) = struct.unpack("<QI", header)
            if masked_crc32c(header[:8]) != length_crc:
                raise InputError(
                    path,
                    f"damaged TFRecord shard: record {len(records)} (at byte {offset}) has a length "
                    f"field that fails its CRC check (data changed after writing); {_REBUILD}",
                )
            end = offset + _HEADER_BYTES + length + _FOOTER_BYTES
            if end > file_size:
                raise InputError(
                    path,
                    f"truncated TFRecord shard: record {len(records)} needs bytes up to {end} but "
                    f"the file has {file_size}; rebuild the dataset or copy the shard again",
                )
            records.append(RecordLocation(str(path), offset + _HEADER_BYTES, length, file_size))
            offset = end
            handle.seek(offset)
    return records


def _damaged(path: Path, records: list[RecordLocation], error: tf.errors.DataLossError) -> InputError:
    """The `InputError` for TensorFlow's DataLossError on ``path``, naming the failing record.

    TensorFlow reports "corrupted record at OFFSET" (OFFSET: the record's start for a bad length
    field, its data for bad data) or "truncated record at OFFSET".
    """
    message = error.message or ""
    match = re.search(r"(corrupted|truncated) record at (\d+)", message)
    if match is None:
        reason = re.sub(r"\{\{.*?\}\}\s*|\s*\[Op:.*$", "", message, flags=re.DOTALL).strip()
        return InputError(path, f"damaged TFRecord shard: {reason}; {_REBUILD}")
    offset = int(match.group(2))
    index = next(
        (
            i for i, r in enumerate(records)
            if r.data_offset - _HEADER_BYTES <= offset < r.data_offset + r.length + _FOOTER_BYTES
        ),
        None,
    )
    which = f"record {index}" if index is not None else f"the record at byte {offset}"
    if match.group(1) == "truncated":
        return InputError(path, f"truncated TFRecord shard: {which} is cut off; {_REBUILD}")
    return InputError(
        path, f"damaged TFRecord shard: {which} fails its CRC check (data changed after writing); {_REBUILD}"
    )


def verify_tfrecords(shards: list[tuple[Path, list[RecordLocation]]]) -> None:
    """Checks every record's CRCs in ``shards`` ((path, `scan_tfrecord` of it) pairs) by streaming
    them through TensorFlow's TFRecord reader, several shards at once, keeping nothing.

    Raises `InputError` naming the shard and the record when a check fails (TensorFlow's own
    error does not name the file, so the shards are then checked one by one).
    """
    if not shards:
        return
    paths = [str(path) for path, _ in shards]
    reader = tf.data.TFRecordDataset(paths, num_parallel_reads=min(len(paths), os.cpu_count() or 1))
    try:
        reader.reduce(tf.constant(0, tf.int64), lambda n, _: n + 1)
        return
    except tf.errors.DataLossError as error:
        first_error = error
    for path, records in shards:
        try:
            tf.data.TFRecordDataset(str(path)).reduce(tf.constant(0, tf.int64), lambda n, _: n + 1)
        except tf.errors.DataLossError as error:
            raise _damaged(Path(path), records, error) from None
    raise _damaged(Path(paths[0]).parent, [], first_error)  # not seen again: name the folder
