"""The bioimage.io package's test input: any finished run packages without flags, from one of its
dataset's micrographs (a valid size), else a patch; what cannot serve is named."""

import json

import numpy as np
import pytest
import tifffile

from tem_rf.serve.bioimageio import TEST_INPUT_MAX_PX, choose_test_input, valid_size
from tem_rf.core.errors import InputError
from tem_rf.serve.export import ExportError

SIZES = {"min": 52, "step": 4, "halo": 24}


def test_the_largest_valid_size_within_the_micrograph_and_the_cap():
    assert valid_size(128, SIZES) == 128
    assert valid_size(130, SIZES) == 128  # 52 + 19 x 4
    assert valid_size(51, SIZES) is None
    assert valid_size(5000, SIZES) == 52 + (TEST_INPUT_MAX_PX - 52) // 4 * 4 == 512
    assert valid_size(5000, {"min": 600, "step": 64, "halo": 268}) == 600  # the smallest input beyond the cap


def _dataset(tmp_path, shapes):
    """A dataset.json whose sources (test, val, train) are micrographs of ``shapes``."""
    sources = []
    for split, shape in zip(("train", "test", "val"), shapes):
        path = tmp_path / f"{split}_image.tif"
        tifffile.imwrite(path, np.arange(shape[0] * shape[1], dtype=np.uint16).reshape(shape))
        sources.append({"image": path.name, "image_path": str(path), "split": split})
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "dataset.json").write_text(json.dumps({"sources": sources}))
    return {"data_dir": str(tmp_path / "data")}


def test_a_micrograph_of_the_test_split_first_then_val_then_train(tmp_path):
    config = _dataset(tmp_path, [(300, 300), (40, 400), (200, 130)])  # the test micrograph is too small
    chosen = choose_test_input(config, SIZES, None)
    assert chosen.where == "val_image.tif centre crop 128x128 px"
    assert chosen.image.shape == (128, 128) and chosen.image.dtype == np.float32
    assert chosen.whole.shape == (200, 130) and (chosen.top, chosen.left) == (36, 1)
    np.testing.assert_array_equal(chosen.image, chosen.whole[36:164, 1:129])
    given = choose_test_input(config, SIZES, tmp_path / "train_image.tif")  # --test_image wins
    assert given.where == "train_image.tif centre crop 300x300 px"
    mask = tmp_path / "mask.tif"
    tifffile.imwrite(mask, (np.arange(200 * 200).reshape(200, 200) % 7 == 0).astype(np.uint8) * 255)
    with pytest.raises(InputError, match=r"mask\.tif: holds two values only \(0 and 255\): a label mask"):
        choose_test_input(config, SIZES, mask)
    with pytest.raises(ExportError, match=r"test_image\.tif: micrograph 40x400 px is smaller than the package's "
                                          r"smallest input, 52 px"):
        choose_test_input(config, SIZES, tmp_path / "test_image.tif")


def test_without_micrographs_or_dataset_the_error_says_how_to_go_on(tmp_path):
    with pytest.raises(ExportError, match=r"the run's dataset .* is not there.*--test_image=MICROGRAPH"):
        choose_test_input({"data_dir": str(tmp_path / "moved")}, SIZES, None)
