"""Tiny datasets and run helpers shared by the training, sweep and evaluation tests."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np


def make_tiny_dataset(root: Path, kind: str = "low_res", num_images: int = 5, size: int = 64,
                      patch_size: int = 32, seed: int = 0,
                      split_fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)) -> Path:
    """Demo micrographs -> a TFRecord dataset of 32x32 patches (a few seconds on 2 cores)."""
    from tem_rf import data
    from tem_rf.data import synthetic
    from tem_rf.data import dataset

    demo = root / f"demo_{kind}"
    synthetic.write_demo_dataset(demo, num_images=num_images, size=size, kind=kind, seed=seed,
                                 pixel_size_nm=0.5)
    pairs = dataset.match_masks(dataset.find_image_files(demo / "images"), demo / "labels")
    out = root / f"data_{kind}_{'-'.join(map(str, split_fractions))}"
    data.build_dataset(pairs, out, patch_size=patch_size, min_particle_pixels=20,
                       split_fractions=split_fractions, num_shards=2, progress=False)
    return out


def train_config(data_dir: Path, model_dir: Path, **overrides):
    """The tests' small training setup (N=2, pools 2, batch 8, 2 epochs, learning rate 1e-2, seed
    752, float32, default strategy, images every epoch) with ``overrides``."""
    from tem_rf import train

    values = dict(data_dir=str(data_dir), model_dir=str(model_dir), num_blocks=2, pool_sizes=(2,),
                  batch_size=8, epochs=2, learning_rate=1e-2, seed=752, precision="float32",
                  strategy="default", image_every=1)
    values.update(overrides)
    return train.TrainConfig(**values)


def run_weights(run_dir: Path, name: str = "model.keras") -> list[np.ndarray]:
    import tem_rf.models  # noqa: F401  (custom layers)

    return keras.models.load_model(run_dir / name, compile=False).get_weights()


def max_weight_difference(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    assert len(a) == len(b)
    return max(float(np.abs(x - y).max()) for x, y in zip(a, b))


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())
