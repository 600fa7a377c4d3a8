"""A dataset split's unaugmented patches as numpy arrays, for analyses that are not tf.data."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from typing import Any

import numpy as np


@dataclasses.dataclass(frozen=True)
class Patches:
    """Unaugmented patches of a split: images ``[N, H, W]`` float32, labels ``[N, H, W]`` int32,
    and per patch a dict of ``source``, ``patch_row``, ``patch_col``."""

    images: np.ndarray
    labels: np.ndarray
    info: list[dict[str, Any]]



def iterate_patches(
    data_dir: str | os.PathLike, split: str, *, batch_size: int = 8, max_patches: int | None = None
) -> Iterator[Patches]:
    """Batches of the split's unaugmented patches in their written order (as numpy)."""
    from tem_rf import data as data_lib

    if max_patches is not None and max_patches < 1:
        raise ValueError(f"max_patches must be >= 1, got {max_patches}")
    dataset = data_lib.load_split(data_dir, split, batch_size, augment=False, with_info=True)
    seen = 0
    for images, labels, info in dataset:
        images = images.numpy()[..., 0]
        labels = labels.numpy()
        infos = [
            {
                "source": info["source"][i].numpy().decode(),
                "patch_row": int(info["patch_row"][i]),
                "patch_col": int(info["patch_col"][i]),
            }
            for i in range(len(images))
        ]
        if max_patches is not None:
            keep = max_patches - seen
            images, labels, infos = images[:keep], labels[:keep], infos[:keep]
        seen += len(images)
        if len(images):
            yield Patches(images, labels, infos)
        if max_patches is not None and seen >= max_patches:
            return



def load_patches(
    data_dir: str | os.PathLike, split: str, *, max_patches: int | None = None, batch_size: int = 8
) -> Patches:
    """All (or the first ``max_patches``) unaugmented patches of a split, in memory."""
    batches = list(iterate_patches(data_dir, split, batch_size=batch_size, max_patches=max_patches))
    if not batches:
        raise ValueError(f"{data_dir}: split {split!r} has no patches")
    return Patches(
        np.concatenate([b.images for b in batches]),
        np.concatenate([b.labels for b in batches]),
        [i for b in batches for i in b.info],
    )
