"""load_split: dihedral augmentation, deterministic epoch orders, shapes and errors."""

import json

import numpy as np
import pytest
import tensorflow as tf

from tem_rf.data import dihedral_transform, epoch_order, load_split, split_size
from tem_rf.core.errors import InputError


def _keys(dataset):
    """(source, row, col, transform) of every element, in order."""
    keys = []
    for _, _, extra in dataset:
        keys += list(
            zip(
                [s.decode() for s in extra["source"].numpy()],
                extra["patch_row"].numpy().tolist(),
                extra["patch_col"].numpy().tolist(),
                extra["transform"].numpy().tolist(),
            )
        )
    return keys


def test_dihedral_transforms_match_numpy_and_are_distinct():
    patch = np.random.default_rng(0).normal(size=(6, 6, 1)).astype(np.float32)
    variants = [dihedral_transform(tf.constant(patch), t).numpy() for t in range(8)]
    expected = [np.rot90(patch, k) for k in range(4)] + [np.fliplr(np.rot90(patch, k)) for k in range(4)]
    for got, want in zip(variants, expected):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(variants[0], patch)  # transform 0 is the identity
    assert len({v.tobytes() for v in variants}) == 8


def test_augmented_split_has_8_distinct_variants_with_labels_following(built):
    out, info = built
    count = info["counts"]["train"]
    dataset = load_split(out, "train", batch_size=5, augment=True, with_info=True)
    assert split_size(out, "train", augment=True) == 8 * count == int(
        load_split(out, "train", batch_size=1, augment=True).cardinality()
    )
    variants: dict[tuple, dict[int, tuple]] = {}
    for image, label, extra in dataset:
        assert image.dtype == tf.float32 and image.shape[1:] == (64, 64, 1)
        assert label.dtype == tf.int32 and label.shape[1:] == (64, 64)
        for i in range(image.shape[0]):
            key = (extra["source"][i].numpy(), int(extra["patch_row"][i]), int(extra["patch_col"][i]))
            variants.setdefault(key, {})[int(extra["transform"][i])] = (image[i, ..., 0].numpy(), label[i].numpy())
    assert len(variants) == count
    for by_transform in variants.values():
        assert sorted(by_transform) == list(range(8))
        base_image, base_label = by_transform[0]
        assert len({img.tobytes() for img, _ in by_transform.values()}) == 8
        for t, (img, lab) in by_transform.items():
            rotated = lambda a: np.rot90(a, t % 4)  # noqa: E731
            transform = (lambda a: np.fliplr(rotated(a))) if t >= 4 else rotated
            np.testing.assert_array_equal(img, transform(base_image))
            np.testing.assert_array_equal(lab, transform(base_label))  # the label follows the image


def test_epoch_order_fixed_by_seed_and_epoch(built):
    out, _ = built

    def keys(**kwargs):
        return _keys(load_split(out, "train", batch_size=4, augment=True, with_info=True, **kwargs))

    unshuffled = keys()
    first = keys(shuffle_seed=7, epoch=0)
    assert sorted(first) == sorted(unshuffled)  # a permutation: every variant exactly once
    assert first != unshuffled
    tf.random.set_seed(1234)  # a training script's global seed must not change the data order
    try:
        assert keys(shuffle_seed=7, epoch=0) == first
    finally:
        tf.random.set_seed(None)
    second = keys(shuffle_seed=7, epoch=1)
    assert second != first and sorted(second) == sorted(first)
    assert keys(shuffle_seed=8, epoch=0) != first
    # Unshuffled order: sources in split order, patches row-major, 8 variants consecutively.
    assert [k[3] for k in unshuffled[:8]] == list(range(8))


def test_repeat_continues_with_the_next_epochs(built):
    out, info = built
    n = 8 * info["counts"]["train"]
    repeated = load_split(out, "train", batch_size=n, augment=True, shuffle_seed=3, epoch=2, repeat=True, with_info=True)
    two_epochs = _keys(repeated.take(2))
    assert two_epochs[:n] == _keys(load_split(out, "train", n, augment=True, shuffle_seed=3, epoch=2, with_info=True))
    assert two_epochs[n:] == _keys(load_split(out, "train", n, augment=True, shuffle_seed=3, epoch=3, with_info=True))


def test_epoch_order_helper():
    order = epoch_order(20, shuffle_seed=5, epoch=0)
    assert sorted(order.tolist()) == list(range(20)) and order.tolist() != list(range(20))
    assert epoch_order(20, None, 3).tolist() == list(range(20))
    np.testing.assert_array_equal(order, epoch_order(20, 5, 0))


def test_batches_and_drop_remainder(built):
    out, info = built
    count = info["counts"]["train"]
    sizes = [int(x.shape[0]) for x, _ in load_split(out, "train", batch_size=4)]
    assert sum(sizes) == count and all(s == 4 for s in sizes[:-1])
    dropped = [int(x.shape[0]) for x, _ in load_split(out, "train", batch_size=4, drop_remainder=True)]
    assert dropped == [4] * (count // 4)


def test_load_split_errors(tmp_path, built):
    out, info = built
    with pytest.raises(ValueError, match="split must be one of"):
        load_split(out, "training", batch_size=2)
    with pytest.raises(InputError, match="is not a dataset"):
        load_split(tmp_path, "train", batch_size=2)
    empty = tmp_path / "empty_split"
    (empty / "test").mkdir(parents=True)
    info = json.loads((out / "dataset.json").read_text())
    info["splits"]["test"] = {"count": 0, "shards": [], "sources": []}
    info["counts"]["test"] = 0
    (empty / "dataset.json").write_text(json.dumps(info))
    with pytest.raises(InputError, match="split 'test' is empty"):
        load_split(empty, "test", batch_size=2)


def test_disk_and_memory_reading_give_identical_elements(built, monkeypatch):
    from tem_rf.data import pipeline

    out, _ = built

    def elements():
        dataset = load_split(out, "train", batch_size=7, augment=True, shuffle_seed=4, epoch=1, with_info=True)
        return [(x.numpy().tobytes(), y.numpy().tobytes(), extra["transform"].numpy().tobytes()) for x, y, extra in dataset]

    in_memory = elements()
    monkeypatch.setattr(pipeline, "IN_MEMORY_MAX_BYTES", 0)  # force record-by-record disk reads
    assert elements() == in_memory


def test_training_subsets_are_nested_per_seed_and_refused_beyond_the_split(built):
    from tem_rf.data import training_subset

    _, info = built
    names = info["splits"]["train"]["sources"]
    subsets = [training_subset(info, k, seed=752) for k in range(1, len(names) + 1)]
    for smaller, larger in zip(subsets, subsets[1:]):
        assert larger[:len(smaller)] == smaller  # the micrographs of k are among those of k + 1
    assert sorted(subsets[-1]) == sorted(names)
    assert training_subset(info, 2, seed=752) == subsets[1]  # fixed by the seed
    assert any(training_subset(info, len(names) - 1, seed=s) != subsets[-2] for s in range(5))
    for count in (0, len(names) + 1):
        with pytest.raises(ValueError, match=f"has {len(names)} micrographs; cannot choose {count}"):
            training_subset(info, count, seed=752)


def test_a_split_of_some_micrographs_holds_exactly_their_patches(built):
    out, info = built
    names = info["splits"]["train"]["sources"]
    patches = {s["image"]: s["patches"] for s in info["sources"]}
    chosen = [names[-1], names[0]]
    keys = _keys(load_split(out, "train", batch_size=4, sources=chosen, with_info=True))
    everything = _keys(load_split(out, "train", batch_size=4, with_info=True))
    assert sorted({k[0] for k in keys}) == sorted(chosen)
    assert len(keys) == patches[names[0]] + patches[names[-1]]
    assert keys == [k for k in everything if k[0] in chosen]  # the written order, other patches left out
    with pytest.raises(InputError, match="split 'train' has no micrograph nothing.tif"):
        load_split(out, "train", batch_size=4, sources=["nothing.tif"])


def test_a_dataset_whose_patch_counts_do_not_place_the_micrographs_is_refused(built):
    out, info = built
    names = info["splits"]["train"]["sources"]
    edited = json.loads((out / "dataset.json").read_text())
    first = next(s for s in edited["sources"] if s["image"] == names[0])
    second = next(s for s in edited["sources"] if s["image"] == names[1])
    first["patches"], second["patches"] = first["patches"] + 1, second["patches"] - 1  # same total
    (out / "dataset.json").write_text(json.dumps(edited))
    for chosen in names[:2]:  # one holds a patch too many, the other misses it
        with pytest.raises(InputError, match=f"a patch of {chosen}, against dataset.json's patch counts; rebuild"):
            load_split(out, "train", batch_size=4, sources=[chosen])


def test_start_skips_into_an_epoch(built):
    out, info = built
    n = 8 * info["counts"]["train"]
    whole = _keys(load_split(out, "train", batch_size=n, augment=True, shuffle_seed=3, epoch=1, repeat=True,
                             with_info=True).take(2))
    later = _keys(load_split(out, "train", batch_size=n, augment=True, shuffle_seed=3, epoch=1, start=5,
                             repeat=True, with_info=True).take(1))
    assert later == whole[5:5 + n]
    with pytest.raises(ValueError, match=r"start must lie in \[0, "):
        load_split(out, "train", batch_size=4, augment=True, start=n)
