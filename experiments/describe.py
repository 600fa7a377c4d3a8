r"""Describes a residual UNet: layers, trainable parameters, receptive field and size divisor.

  python -m experiments.describe --num_blocks=2 --pool_sizes=2,8 --pixel_size_nm=0.02152
  python -m experiments.describe --grid --pixel_size_nm=0.02152     # the paper's Table S1
"""

from __future__ import annotations

import os

from absl import flags

from tem_rf.core import cli
from tem_rf.core.parsing import int_or_list, parse_int_list

_NUM_BLOCKS = flags.DEFINE_integer("num_blocks", 2, "Residual blocks per arm (N).")
_POOL_SIZES = flags.DEFINE_string("pool_sizes", "2", "Pool size, one value or one per level, e.g. 2,8.")
_DILATIONS = flags.DEFINE_string(
    "dilations", "1", "Dilation, one value or one per level plus the bottleneck, e.g. 1,1,2."
)
_PIXEL_SIZE_NM = flags.DEFINE_float("pixel_size_nm", None, "Pixel size in nm, for the RF in nm.")
_GRID = flags.DEFINE_boolean("grid", False, "Print the whole N x pool-size table instead.")
_GRID_NUM_BLOCKS = flags.DEFINE_string("grid_num_blocks", "2,3,4", "N values of the --grid table.")
_GRID_KERNELS = flags.DEFINE_string("grid_pool_choices", "2,4,8", "Pool sizes of the --grid table.")
_UNIFORM = flags.DEFINE_boolean(
    "uniform_pools", False, "--grid: only equal pools at every level instead of every combination."
)
_MAX_DIVISOR = flags.DEFINE_integer(
    "max_divisor", 512, "--grid: leave out pool sequences whose product exceeds this (patch size)."
)
_JSON = flags.DEFINE_string("json_out", None, "Also write the table/description as JSON here.")
_OVERWRITE = flags.DEFINE_boolean("overwrite", False, "Replace an existing --json_out file.")
_PROGRESS = flags.DEFINE_boolean("progress", True, "Show a progress bar while --grid builds the networks.")


def main(argv: list[str]) -> None:
    del argv
    # Keras prints the summary through rich, which falls back to 80 columns when the output is
    # piped or redirected and then cuts the "Connected to" column off.
    os.environ.setdefault("COLUMNS", "130")
    _describe()


def _describe() -> None:
    from tem_rf.core.units import require_pixel_size
    from tem_rf.models import architectures

    if _PIXEL_SIZE_NM.value is not None:  # a negative or NaN size would print negative or NaN nm
        require_pixel_size(_PIXEL_SIZE_NM.value, "--pixel_size_nm")
    if _JSON.value:  # refused before the work, as every binary's existing output
        from tem_rf.core.outputs import check_new_files

        check_new_files([_JSON.value], _OVERWRITE.value)

    if _GRID.value:
        grid = architectures.architecture_grid(
            parse_int_list(_GRID_NUM_BLOCKS.value, "grid_num_blocks"),
            parse_int_list(_GRID_KERNELS.value, "grid_pool_choices"),
            max_divisor=_MAX_DIVISOR.value,
            per_level=not _UNIFORM.value,
        )
        rows = architectures.architecture_table(grid, _PIXEL_SIZE_NM.value, progress=_PROGRESS.value)
        print(architectures.format_table(rows))
    else:
        model, row = architectures.describe_architecture(
            _NUM_BLOCKS.value,
            int_or_list(parse_int_list(_POOL_SIZES.value, "pool_sizes")),
            int_or_list(parse_int_list(_DILATIONS.value, "dilations")),
            _PIXEL_SIZE_NM.value,
        )
        model.summary(line_length=100)
        print(architectures.format_description(row, _PIXEL_SIZE_NM.value))
        rows = [row]
    if _JSON.value:
        architectures.write_table_json(_JSON.value, rows)
        print(f"wrote {_JSON.value}")


if __name__ == "__main__":
    cli.run(main)
