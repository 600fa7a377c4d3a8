r"""The whole study in miniature on built-in synthetic micrographs (README's first command).

  python -m experiments.demo --out_dir=demo_out

Generates high-resolution-like demo micrographs, writes them as TFRecords, trains a small
receptive-field sweep (N=2 with pools 2-2 and 4-4, two seeds), scores it, plots dice against
receptive field, exports the best network as a SavedModel and segments a new, larger micrograph,
whose particles it counts and measures against the particles it drew.
A few minutes on 2 CPU cores. Running it again reuses finished stages (finished runs are skipped).
"""

from __future__ import annotations

import logging

from absl import flags

from tem_rf.core import cli
from tem_rf.core.parsing import parse_int_list
from tem_rf.core.parsing import parse_sequences

_OUT_DIR = flags.DEFINE_string("out_dir", "demo_out", "Folder for every demo output.")
_KIND = flags.DEFINE_enum("kind", "high_res", ["high_res", "low_res"], "Which demo micrographs.")
_NUM_IMAGES = flags.DEFINE_integer("num_images", 10, "Demo micrographs to generate.")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", 256, "Demo micrograph size (px).")
_PIXEL_SIZE_NM = flags.DEFINE_float("pixel_size_nm", 0.05, "Demo pixel size (nm).")
_PATCH_SIZE = flags.DEFINE_integer("patch_size", 128, "Patch size (px).")
_POOL_SIZES = cli.define_int_list(
    "pool_sizes", [(2, 2), (4, 4)], "Pools of one sweep architecture, repeatable: --pool_sizes=2,2 "
    "--pool_sizes=4,4 (N from length).", multi=True)
cli.define_deprecated_alias("pools", "pool_sizes", lambda text: parse_sequences(text, "pools"))
_DILATIONS = flags.DEFINE_string("dilation_grid", "", "Dilation sets (N=2, pool 2), e.g. 2-2-4.")
_SEEDS = flags.DEFINE_string("seeds", "752,2245", "Seeds per architecture.")
_EPOCHS = flags.DEFINE_integer("epochs", 8, "Epochs per run.")
_LEARNING_RATE = flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate (short demo runs).")
_SEGMENT_SIZE = flags.DEFINE_integer("segment_size", 768, "Size of the new micrograph to segment.")
_OVERWRITE = flags.DEFINE_boolean("overwrite", False, "Redo every stage from scratch.")
_PROGRESS = flags.DEFINE_boolean("progress", True, "Progress bars.")


def main(argv: list[str]) -> None:
    del argv
    from tem_rf.study import demo

    logging.getLogger("tem_rf").setLevel(logging.INFO)
    config = demo.DemoConfig(
        out_dir=_OUT_DIR.value, kind=_KIND.value, num_images=_NUM_IMAGES.value,
        image_size=_IMAGE_SIZE.value, pixel_size_nm=_PIXEL_SIZE_NM.value,
        patch_size=_PATCH_SIZE.value,
        pools=tuple(_POOL_SIZES.value),
        dilations=tuple(parse_sequences(_DILATIONS.value, "dilation_grid")),
        seeds=parse_int_list(_SEEDS.value, "seeds"),
        epochs=_EPOCHS.value, learning_rate=_LEARNING_RATE.value, segment_size=_SEGMENT_SIZE.value,
        overwrite=_OVERWRITE.value,
    )
    summary = demo.run_demo(config, progress=_PROGRESS.value)
    print(demo.format_summary(summary))

if __name__ == "__main__":
    cli.run(main)
