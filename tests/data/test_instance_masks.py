"""Instance truth: the public reader, the boundary target, and particle ids kept in datasets."""

import json

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tem_rf.data import build_dataset, load_split
from tem_rf.data.instance_masks import (
    BOUNDARY, INTERIOR, boundary_classes, patch_instance_ids, read_instance_labels,
)
from tem_rf.data.pipeline import boundary_classes_tf, dihedral_transform
from tem_rf.core.errors import InputError
from tem_rf.data.tfrecords import decode_example, encode_example


def touching_squares() -> np.ndarray:
    """Two 6x6 particles (ids 7 and 9) sharing an edge, and a 3x3 one (id 2) alone."""
    labels = np.zeros((12, 16), np.int32)
    labels[2:8, 1:7] = 7
    labels[2:8, 7:13] = 9
    labels[9:12, 13:16] = 2  # touches the array's bottom-right corner
    return labels


def test_boundary_classes_by_hand():
    classes = boundary_classes(touching_squares(), width=1)
    expected = np.zeros((12, 16), np.uint8)
    expected[2:8, 1:13] = BOUNDARY
    expected[3:7, 2:6] = INTERIOR  # the left square's inside ring
    expected[3:7, 8:12] = INTERIOR  # the right square's: column 7 borders the left square
    expected[9:12, 13:16] = BOUNDARY
    expected[10:12, 14:16] = INTERIOR  # outside the array is not background: no boundary there
    np.testing.assert_array_equal(classes, expected)
    wide = boundary_classes(touching_squares(), width=2)
    assert (wide[2:8, 5:9] == BOUNDARY).all()  # two pixels either side of the contact
    np.testing.assert_array_equal(np.argwhere(wide[2:8, 1:13] == INTERIOR)[:, 1] + 1, np.tile([3, 4, 9, 10], 2))
    with pytest.raises(ValueError, match="positive"):
        boundary_classes(touching_squares(), width=0)


@pytest.mark.parametrize("width", [1, 2, 3])
def test_tensorflow_boundary_classes_equal_numpy(width):
    rng = np.random.default_rng(width)
    labels = np.kron(rng.integers(0, 6, (12, 14)), np.ones((3, 3), int))[:33, :40]
    ids = patch_instance_ids(labels)
    np.testing.assert_array_equal(boundary_classes_tf(ids, width).numpy(), boundary_classes(labels, width))


def test_patch_ids_are_renumbered_uint16():
    ids = patch_instance_ids(np.array([[0, 70000], [5, 5]]))
    assert ids.dtype == np.uint16
    np.testing.assert_array_equal(ids, [[0, 2], [1, 1]])
    np.testing.assert_array_equal(patch_instance_ids(np.array([[4, 9]])), [[1, 2]])  # no background


def test_reader_keeps_instance_ids_and_splits_binary_masks(tmp_path):
    labels = touching_squares() * 1000  # ids beyond 8 bits: a 16-bit PNG
    Image.fromarray(labels.astype(np.uint16)).save(tmp_path / "ids.png")
    read = read_instance_labels(tmp_path / "ids.png")
    assert read.dtype == np.int32 and read.max() == 3
    for value in (2000, 7000, 9000):  # every particle kept whole and apart
        assert len(np.unique(read[labels == value])) == 1
    assert len(np.unique(read[labels > 0])) == 3
    Image.fromarray(((labels > 0) * 255).astype(np.uint8)).save(tmp_path / "binary.png")
    binary = read_instance_labels(tmp_path / "binary.png")
    assert binary.max() == 2  # the touching squares are one component of a binary mask
    (tmp_path / "photo.png").write_bytes(b"not a png")
    with pytest.raises(InputError, match="photo.png"):
        read_instance_labels(tmp_path / "photo.png")


def test_encode_checks_instances_against_the_label():
    image = np.zeros((4, 4), np.float32)
    label = np.zeros((4, 4), np.uint8)
    label[1, 1] = 1
    ids = label.astype(np.uint16)
    decoded = decode_example(tf.constant(encode_example(image, label, "a", 0, 0, None, ids)), instances=True)
    np.testing.assert_array_equal(decoded["instances"].numpy(), ids)
    with pytest.raises(ValueError, match="exactly where"):
        encode_example(image, label, "a", 0, 0, None, np.zeros((4, 4), np.uint16))
    with pytest.raises(ValueError, match="uint16"):
        encode_example(image, label, "a", 0, 0, None, ids.astype(np.int32))


@pytest.fixture(scope="module")
def instance_dataset(tmp_path_factory):
    """Three 48x48 micrographs with instance-id masks of touching rectangles, 32 px patches."""
    root = tmp_path_factory.mktemp("instances")
    (root / "images").mkdir()
    (root / "labels").mkdir()
    rng = np.random.default_rng(3)
    truth = {}
    for index in range(3):
        labels = np.zeros((48, 48), np.uint16)
        for k in range(6):
            row, col = rng.integers(0, 40, 2)
            labels[row:row + 9, col:col + 7] = 300 + 11 * k + index  # later ones cover earlier ones
        image = rng.normal(100, 5, (48, 48)) + 40 * (labels > 0)
        Image.fromarray(image.astype(np.uint16)).save(root / "images" / f"m{index}.png")
        Image.fromarray(labels).save(root / "labels" / f"m{index}_mask.png")
        truth[f"m{index}.png"] = labels
    pairs = [(root / "images" / f"m{i}.png", root / "labels" / f"m{i}_mask.png") for i in range(3)]
    out = root / "data"
    build_dataset(pairs, out, patch_size=32, min_particle_pixels=1, split_fractions=(0.34, 0.33, 0.33),
                  num_shards=1, progress=False)
    return out, truth


def test_datasets_keep_each_patchs_particle_ids(instance_dataset):
    out, truth = instance_dataset
    info = json.loads((out / "dataset.json").read_text())
    assert info["instances"] and {s["instances_from"] for s in info["sources"]} == {"instance ids"}
    for split in ("train", "val", "test"):
        for _, label, extra in load_split(out, split, batch_size=4, with_info=True, target="boundary"):
            for i in range(label.shape[0]):
                labels = truth[extra["source"][i].numpy().decode()]
                row, col = int(extra["patch_row"][i]), int(extra["patch_col"][i])
                window = labels[row:row + 32, col:col + 32]
                np.testing.assert_array_equal(label[i].numpy(), boundary_classes(window, 2))


def test_boundary_labels_follow_the_augmentation(instance_dataset):
    out, _ = instance_dataset
    plain = [label for _, label in load_split(out, "train", batch_size=1, target="boundary", boundary_width=1)]
    augmented = [label for _, label in load_split(out, "train", batch_size=1, augment=True, target="boundary",
                                                   boundary_width=1)]
    assert len(augmented) == 8 * len(plain)
    for index, label in enumerate(augmented):
        expected = dihedral_transform(plain[index // 8][0][..., None], index % 8)[..., 0]
        np.testing.assert_array_equal(label[0].numpy(), expected.numpy())
    masks = [label for _, label in load_split(out, "train", batch_size=1)]
    for mask, boundary in zip(masks, plain):  # the two targets agree on which pixels are particle
        np.testing.assert_array_equal(mask.numpy(), (boundary.numpy() > 0).astype(np.int32))


def test_a_dataset_without_ids_is_refused_for_the_boundary_target(instance_dataset, tmp_path):
    import shutil

    out, _ = instance_dataset
    old = tmp_path / "old"
    shutil.copytree(out, old)
    info = json.loads((old / "dataset.json").read_text())
    del info["instances"]  # as datasets written before ids were stored
    (old / "dataset.json").write_text(json.dumps(info))
    with pytest.raises(InputError, match="particle ids.*rebuild"):
        load_split(old, "train", 1, target="boundary")
    assert sum(1 for _ in load_split(old, "train", 1)) > 0  # the paper's target still trains
