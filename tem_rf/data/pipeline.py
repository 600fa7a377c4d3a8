"""The tf.data input pipeline over a dataset directory's TFRecord shards.

Each element of a split is a (patch, transform) pair; without augmentation transform is always 0
(identity). With ``shuffle_seed`` the elements of epoch ``e`` come in the order of a stateless
permutation fixed by ``(shuffle_seed, e)`` (`tf.random.experimental.index_shuffle`), which does
not depend on TensorFlow's global seed, on the model, or on how many epochs ran before: every
architecture sees the same batches, also after a resume. The permutation is over all patches and
transforms of the split, not a bounded shuffle buffer, so records are fetched by index. The
shards' record offsets come from a header scan, which also reports truncated shards up front.
A split of at most `IN_MEMORY_MAX_BYTES` (the paper's datasets are a few hundred MB) is read
into memory once per pipeline and records are gathered from there; a larger one is read record
by record with `tf.data.FixedLengthRecordDataset` at each record's offset, in parallel. Both
give the same elements in the same order.

Integrity, checked when the pipeline is made (before the first batch): each shard's record count
and size against dataset.json, every length field's CRC (the header scan), every record's data
CRC (TensorFlow's TFRecord reader streams the shards once per process and file version: a split
loaded again for the next epoch is not read an extra time), and dataset.json's patch_size
against the first record. A damaged, truncated or replaced shard ends in one `InputError` naming
the shard, instead of training on garbage.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import tensorflow as tf

from tem_rf.data.dataset_info import DATASET_JSON, read_dataset_info
from tem_rf.data.splits import SPLITS
from tem_rf.data.instance_masks import (
    BACKGROUND, BOUNDARY, DEFAULT_BOUNDARY_WIDTH, INTERIOR, check_boundary_width,
)
from tem_rf.core.errors import InputError
from tem_rf.data.tfrecords import decode_example, file_sha256, scan_tfrecord, verify_tfrecords

NUM_DIHEDRAL = 8
# What a label holds (`load_split`'s ``target``): the paper's two classes, or particle interiors
# and boundaries (`tem_rf.data.instance_masks`).
TARGETS = ("mask", "boundary")
AUTOTUNE = tf.data.AUTOTUNE
# Splits up to this size are held in memory as serialised records (about 4x less CPU per patch
# than opening the shard at an offset per element); kept well below protobuf's 2 GB graph limit,
# which applies when tf.distribute rewrites the pipeline.
IN_MEMORY_MAX_BYTES = 1 << 30


# Transform t as (transpose rows and columns?, axes to reverse afterwards): the same maps as
# np.rot90(a, t % 4), followed by np.fliplr for t >= 4, in at most two array passes each.
_DIHEDRAL_OPS = (
    (False, ()), (True, (0,)), (False, (0, 1)), (True, (1,)),
    (False, (1,)), (True, (0, 1)), (False, (0,)), (True, ()),
)


def dihedral_transform(image: tf.Tensor, index: tf.Tensor | int) -> tf.Tensor:
    """Transform ``index`` (0-7) of the dihedral group of the square on a [H, W, C] tensor.

    0-3: rotation by ``index`` x 90 degrees counter-clockwise (0 = identity); 4-7: the same
    rotation followed by a left-right flip. Apply the same index to image and label so the label
    follows the image.
    """
    image = tf.convert_to_tensor(image)

    def branch(transpose: bool, axes: tuple[int, ...]):
        def apply():
            out = tf.transpose(image, [1, 0, 2]) if transpose else image
            return tf.reverse(out, list(axes)) if axes else tf.identity(out)

        return apply

    return tf.switch_case(
        tf.convert_to_tensor(index, dtype=tf.int32), [branch(*ops) for ops in _DIHEDRAL_OPS]
    )


def boundary_classes_tf(instances: tf.Tensor, width: int) -> tf.Tensor:
    """`tem_rf.data.instance_masks.boundary_classes` of one patch's ids ``[H, W]`` as int32 0/1/2.

    Max pooling's SAME padding ignores pixels outside the patch, as the NumPy reference does.
    Ids are compared as float32, exact for the uint16 ids a patch holds."""
    ids = tf.cast(instances, tf.float32)[tf.newaxis, ..., tf.newaxis]
    size = 2 * int(width) + 1
    highest = tf.nn.max_pool2d(ids, size, 1, "SAME")
    lowest = -tf.nn.max_pool2d(-ids, size, 1, "SAME")
    particle = ids > 0
    boundary = particle & ((highest != ids) | (lowest != ids))
    classes = tf.where(boundary, BOUNDARY, tf.where(particle, INTERIOR, BACKGROUND))
    return classes[0, ..., 0]


def epoch_order(num_elements: int, shuffle_seed: int | None, epoch: int) -> np.ndarray:
    """The element order of one epoch, as `load_split` uses it (for inspection and tests)."""
    indices = tf.range(num_elements, dtype=tf.int64)
    if shuffle_seed is None:
        return indices.numpy()
    return _permute(indices, _seed_tensor(shuffle_seed, tf.constant(epoch, tf.int64)), num_elements).numpy()


def _seed_tensor(shuffle_seed: int, epoch: tf.Tensor) -> tf.Tensor:
    return tf.stack([tf.constant(shuffle_seed, tf.int64), tf.cast(epoch, tf.int64)])


def _permute(indices: tf.Tensor, seed: tf.Tensor, num_elements: int) -> tf.Tensor:
    if num_elements == 1:
        return indices
    return tf.random.experimental.index_shuffle(indices, seed=seed, max_index=num_elements - 1)


def _scan_shards(data_dir: Path, info: dict, split: str) -> list[tuple[Path, list]]:
    """(path, record locations) of each shard of a split, checked against dataset.json."""
    scanned = []
    for shard in info["splits"][split]["shards"]:
        path = data_dir / shard["file"]
        records = scan_tfrecord(path)
        if len(records) != shard["count"]:
            raise InputError(
                path,
                f"holds {len(records)} records but dataset.json lists {shard['count']}; "
                "the dataset was modified, rebuild it",
            )
        size = path.stat().st_size
        if "bytes" in shard and size != shard["bytes"]:
            raise InputError(
                path,
                f"is {size} bytes but dataset.json lists {shard['bytes']}; the shard or dataset.json "
                "changed after writing: rebuild the dataset or copy the shard again",
            )
        scanned.append((path, records))
    return scanned


def _written_order(counts: list[int]) -> list[tuple[int, int]]:
    """(shard, position in shard) of each record in written order (round-robin, see ShardWriter)."""
    return [
        (shard, position)
        for position in range(max(counts, default=0))
        for shard, count in enumerate(counts)
        if position < count
    ]


def _read_records(records: list) -> list[bytes]:
    """The serialised examples at ``records``' offsets, each shard opened once (no CRC check)."""
    by_path: dict[str, list[int]] = {}
    for index, record in enumerate(records):
        by_path.setdefault(record.path, []).append(index)
    blobs: list[bytes] = [b""] * len(records)
    for path, indices in by_path.items():
        with open(path, "rb") as handle:
            for index in indices:
                handle.seek(records[index].data_offset)
                blobs[index] = handle.read(records[index].length)
    return blobs


# Shards whose CRCs this process checked, by (path, size, mtime, ctime, inode): a split loaded
# again (each epoch) is not read an extra time; a file written or replaced since is checked again.
_VERIFIED_SHARDS: set[tuple] = set()


def _verify_shards(scanned: list[tuple[Path, list]], digests: dict[Path, str] | None = None) -> None:
    """Record CRCs of each shard not checked yet in this process, and its SHA-256 against
    ``digests`` (dataset.json's, where it lists one): a shard copied from another build of the
    same images has the same size and record count, not the same bytes."""
    keys = []
    for path, records in scanned:
        stat = path.stat()
        keys.append((str(path.resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino))
    unchecked = [shard for shard, key in zip(scanned, keys) if key not in _VERIFIED_SHARDS]
    verify_tfrecords(unchecked)  # first: a damaged record is named as such
    for path, _ in unchecked:
        expected = (digests or {}).get(path)
        if expected and file_sha256(path) != expected:
            raise InputError(
                path, "is not the shard this dataset wrote (its SHA-256 differs from dataset.json's, though size, "
                "count and record checksums agree: a shard of another build?); rebuild the dataset or copy the right shard",
            )
    _VERIFIED_SHARDS.update(keys)


def _check_patch_size(data_dir: Path, patch_size: int, shard: Path, serialized: bytes) -> None:
    """dataset.json's patch_size against the first record's stored height and width."""
    from google.protobuf.message import DecodeError

    try:
        feature = tf.train.Example.FromString(serialized).features.feature
        height, width = feature["height"].int64_list.value[0], feature["width"].int64_list.value[0]
        image_bytes, label_bytes = len(feature["image"].bytes_list.value[0]), len(feature["label"].bytes_list.value[0])
    except (DecodeError, IndexError):
        raise InputError(
            shard, "record 0 is not a tem_rf patch (no image, label, height and width); rebuild the dataset"
        ) from None
    if (image_bytes, label_bytes) != (4 * height * width, height * width):
        raise InputError(
            shard, f"record 0 holds {image_bytes} image and {label_bytes} label bytes, not those of a "
            f"{height}x{width} patch; rebuild the dataset"
        )
    if (height, width) != (patch_size, patch_size):
        raise InputError(
            data_dir / DATASET_JSON,
            f"patch_size is {patch_size} but the records are {height}x{width} pixels (record 0 of "
            f"{shard.relative_to(data_dir)}); dataset.json was edited: restore it or rebuild the dataset",
        )


def split_sources(info: dict, split: str) -> list[str]:
    """The micrographs of ``split`` (names as dataset.json lists them), in written order."""
    return [str(name) for name in info["splits"][split].get("sources", [])]


def patch_counts(info: dict, split: str = "train") -> dict[str, int]:
    """The patches dataset.json lists per micrograph of ``split`` (by the names `split_sources` gives)."""
    return {s["image"]: int(s.get("patches", 0)) for s in info.get("sources", []) if s.get("split") == split}


def training_subset(info: dict, count: int, seed: int) -> list[str]:
    """``count`` of the training split's micrographs: the first ones of an order fixed by ``seed``,
    so one seed's subsets are nested (the 2 micrographs of a learning curve hold its 1). Refused
    (`ValueError`) beyond the split's size."""
    names = split_sources(info, "train")
    if not 1 <= count <= len(names):
        raise ValueError(f"the training split has {len(names)} micrographs; cannot choose {count}")
    order = np.random.default_rng(seed).permutation(len(names))
    return [names[i] for i in order[:count]]


def _source_of(record) -> str:
    """The micrograph a stored patch was cut from (its ``source`` feature)."""
    example = tf.train.Example.FromString(_read_records([record])[0])
    return example.features.feature["source"].bytes_list.value[0].decode("utf-8")


def _source_records(data_dir: Path, info: dict, split: str, records: list, sources) -> list:
    """The records (in written order) of the micrographs ``sources``: each source's patches are
    consecutive, as many as dataset.json's ``patches`` says. The ends of each range and the
    records beside them are read to check that the range holds that micrograph's patches, all
    of them."""
    counts = patch_counts(info, split)
    names = split_sources(info, split)
    unknown = sorted(set(sources) - set(names))
    if unknown:
        raise InputError(data_dir / DATASET_JSON, f"split {split!r} has no micrograph {', '.join(unknown[:3])}")
    if sum(counts.get(name, 0) for name in names) != len(records):
        raise InputError(data_dir / DATASET_JSON, f"its per-micrograph patch counts of split {split!r} do not "
                         f"add up to the {len(records)} records of its shards; rebuild the dataset")
    kept, start = [], 0
    wanted = set(sources)
    for name in names:
        stop = start + counts.get(name, 0)
        if name in wanted and stop > start:
            ends = [(start, True), (stop - 1, True), (start - 1, False), (stop, False)]
            for index, inside in ends:
                if 0 <= index < len(records) and (_source_of(records[index]) == name) != inside:
                    raise InputError(Path(records[index].path), f"record {index} of split {split!r} is "
                                     f"{'not ' if inside else ''}a patch of {name}, against dataset.json's "
                                     "patch counts; rebuild the dataset")
            kept.extend(records[start:stop])
        start = stop
    return kept


def load_split(
    data_dir: str | os.PathLike,
    split: str,
    batch_size: int,
    *,
    sources: list[str] | None = None,
    start: int = 0,
    augment: bool = False,
    shuffle_seed: int | None = None,
    epoch: int = 0,
    repeat: bool = False,
    drop_remainder: bool = False,
    with_info: bool = False,
    target: str = "mask",
    boundary_width: int = DEFAULT_BOUNDARY_WIDTH,
) -> tf.data.Dataset:
    """A batched `tf.data.Dataset` of ``(image [B,H,W,1] float32, label [B,H,W] int32)``.

    ``target``: the label's classes (`TARGETS`): ``"mask"`` the paper's 0 background, 1 particle;
    ``"boundary"`` 0 background, 1 particle interior, 2 particle boundary, made from the stored
    particle ids with ``boundary_width`` (`tem_rf.data.instance_masks`; datasets written before
    ids were stored are refused with `InputError`).

    ``augment=True`` expands every patch into its 8 dihedral variants (image and label together),
    so an epoch has ``8 * count`` elements. With ``shuffle_seed`` the order of epoch ``epoch`` is a
    permutation fixed by ``(shuffle_seed, epoch)``; with None the order is the written one (source
    by source, patches row-major, the 8 variants of a patch consecutively). ``repeat=True`` runs
    epochs ``epoch, epoch + 1, ...`` without end, each in its own order. ``with_info=True`` adds a
    third element, a dict of ``source``, ``patch_row``, ``patch_col`` and ``transform``.
    ``sources`` keeps only the patches of these micrographs (`training_subset`), in written order.
    ``start`` skips that many elements of epoch ``epoch`` (a training epoch of a set number of
    steps begins inside a pass over the data).
    Raises `InputError` for a missing dataset, an empty split, a damaged, truncated or missing
    shard (every record's CRCs are checked, see the module notes), or a dataset.json whose
    counts, shard sizes or patch_size do not match the shards.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
    boundary_width = check_boundary_width(boundary_width)
    data_dir = Path(data_dir)
    info = read_dataset_info(data_dir)
    if target == "boundary" and not info.get("instances"):
        raise InputError(
            data_dir / DATASET_JSON, "was written before datasets stored particle ids, which the boundary target "
            "is made from: rebuild it with make_tfrecords (same flags) to train with --target=boundary",
        )
    scanned = _scan_shards(data_dir, info, split)
    records = [scanned[shard][1][position] for shard, position in _written_order([len(r) for _, r in scanned])]
    if sources is not None:
        records = _source_records(data_dir, info, split, records, sources)
    if not records:
        raise InputError(data_dir / split, f"split {split!r} is empty (no patches); check dataset.json")
    variants = NUM_DIHEDRAL if augment else 1
    num_elements = len(records) * variants
    patch_size = int(info["patch_size"])
    _verify_shards(scanned, {data_dir / s["file"]: s["sha256"] for s in info["splits"][split]["shards"] if s.get("sha256")})
    _check_patch_size(data_dir, patch_size, Path(records[0].path), _read_records(records[:1])[0])

    def epoch_indices(epoch_number: tf.Tensor) -> tf.data.Dataset:
        indices = tf.range(num_elements, dtype=tf.int64)
        if shuffle_seed is not None:
            indices = _permute(indices, _seed_tensor(shuffle_seed, epoch_number), num_elements)
        return tf.data.Dataset.from_tensor_slices(indices)

    if repeat:
        elements = tf.data.Dataset.counter(start=epoch).flat_map(epoch_indices)
    else:
        elements = epoch_indices(tf.constant(epoch, tf.int64))
    if start:
        if not 0 <= start < num_elements:
            raise ValueError(f"start must lie in [0, {num_elements}), got {start}")
        elements = elements.skip(start)  # indices only: nothing is read for the skipped ones

    if sum(r.length for r in records) <= IN_MEMORY_MAX_BYTES:
        serialized_records = tf.constant(_read_records(records))

        def fetch(element: tf.Tensor):
            return tf.gather(serialized_records, element // variants), tf.cast(element % variants, tf.int32)

        dataset = elements.map(fetch, num_parallel_calls=AUTOTUNE, deterministic=True)
    else:
        paths = tf.constant([r.path for r in records])
        header_bytes = tf.constant([r.data_offset for r in records], tf.int64)
        record_bytes = tf.constant([r.length for r in records], tf.int64)
        footer_bytes = tf.constant([r.file_size - r.data_offset - r.length for r in records], tf.int64)

        def read_record(element: tf.Tensor) -> tf.data.Dataset:
            record = element // variants
            return tf.data.FixedLengthRecordDataset(
                paths[record],
                record_bytes[record],
                header_bytes=header_bytes[record],
                footer_bytes=footer_bytes[record],
            ).map(lambda serialized: (serialized, tf.cast(element % variants, tf.int32)))

        # Each inner dataset holds one record, so a deterministic interleave keeps the element
        # order while reading several records at once.
        dataset = elements.interleave(
            read_record, cycle_length=16, block_length=1, num_parallel_calls=AUTOTUNE, deterministic=True
        )

    def parse(serialized: tf.Tensor, transform: tf.Tensor):
        features = decode_example(serialized, instances=target == "boundary")
        image = features["image"][..., tf.newaxis]
        if target == "boundary":  # the window is symmetric: the classes commute with the transform
            label = tf.cast(boundary_classes_tf(features["instances"], boundary_width), tf.uint8)[..., tf.newaxis]
        else:
            label = features["label"][..., tf.newaxis]
        if augment:
            # The same transform index for both, so the label follows the image; transforming
            # the uint8 label separately moves a quarter of the bytes a stacked float copy would.
            image = dihedral_transform(image, transform)
            label = dihedral_transform(label, transform)
        image = tf.ensure_shape(image, [patch_size, patch_size, 1])
        label = tf.ensure_shape(tf.cast(label[..., 0], tf.int32), [patch_size, patch_size])
        if not with_info:
            return image, label
        extra = {
            "source": features["source"],
            "patch_row": features["patch_row"],
            "patch_col": features["patch_col"],
            "transform": transform,
        }
        return image, label, extra

    dataset = dataset.map(parse, num_parallel_calls=AUTOTUNE, deterministic=True)
    if not repeat:
        dataset = dataset.apply(tf.data.experimental.assert_cardinality(num_elements))
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder, num_parallel_calls=AUTOTUNE, deterministic=True)
    options = tf.data.Options()
    options.deterministic = True
    # Records are addressed by offset, not by file, so a multi-worker pipeline shards elements.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options).prefetch(AUTOTUNE)
