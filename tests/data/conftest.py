"""Tiny raw datasets (micrograph TIFFs + masks) for the tem_rf.data tests."""

from pathlib import Path

import numpy as np
import pytest
import tifffile


def write_pair(
    images: Path,
    labels: Path,
    name: str,
    shape=(128, 128),
    seed=0,
    pixel_size_nm=None,
    mask_suffix="_mask",
    mask=None,
):
    """Writes images/<name>.tif (uint16 noise with darker discs) and labels/<name><suffix>.tif."""
    rng = np.random.default_rng(seed)
    if mask is None:
        rows, cols = np.mgrid[: shape[0], : shape[1]]
        mask = np.zeros(shape, np.uint8)
        for _ in range(4):
            r, c = rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
            mask[(rows - r) ** 2 + (cols - c) ** 2 <= 18**2] = 1
    image = rng.poisson(200, size=shape) - 60 * mask
    kwargs = {}
    if pixel_size_nm is not None:
        kwargs = dict(imagej=True, resolution=(1 / pixel_size_nm, 1 / pixel_size_nm), metadata={"unit": "nm"})
    images.mkdir(parents=True, exist_ok=True)
    labels.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(images / f"{name}.tif", image.astype(np.uint16), **kwargs)
    tifffile.imwrite(labels / f"{name}{mask_suffix}.tif", (mask * 255).astype(np.uint8))
    return images / f"{name}.tif", labels / f"{name}{mask_suffix}.tif"


@pytest.fixture
def raw_dir(tmp_path):
    """tmp_path/raw with 5 image/mask pairs of 128x128 px (pixel size 0.1 nm in metadata)."""
    root = tmp_path / "raw"
    for index in range(5):
        write_pair(root / "images", root / "labels", f"img{index}", seed=index, pixel_size_nm=0.1)
    return root


@pytest.fixture
def pairs(raw_dir):
    return [
        (raw_dir / "images" / f"img{i}.tif", raw_dir / "labels" / f"img{i}_mask.tif") for i in range(5)
    ]


@pytest.fixture
def built(tmp_path, pairs):
    """A built dataset: 64x64 patches, every patch with >= 50 particle pixels kept."""
    from tem_rf.data import build_dataset

    out = tmp_path / "dataset"
    info = build_dataset(pairs, out, patch_size=64, min_particle_pixels=50, num_shards=2, progress=False)
    return out, info


@pytest.fixture
def pair_writer():
    """The `write_pair` helper, for tests that need their own pairs."""
    return write_pair
