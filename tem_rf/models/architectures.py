"""Tables of architectures: the sweep grid and each network's params, receptive field, divisor."""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Iterable, Sequence
from typing import Any

import keras

from tem_rf.core.files import os_error_text, write_json
from tem_rf.models.geometry import model_geometry


def architecture_grid(
    num_blocks: Iterable[int] = (2, 3, 4),
    kernel_choices: Sequence[int] = (2, 4, 8),
    max_divisor: int | None = 512,
    per_level: bool = True,
) -> list[tuple[int, tuple[int, ...]]]:
    """(N, pool sizes) pairs of a sweep: every per-level choice from ``kernel_choices``.

    With ``per_level=False`` only uniform pools (k, k, ...) are listed. Pool sequences whose
    product exceeds ``max_divisor`` (the patch size) are left out: they cannot pool a patch.
    """
    grid = []
    for n in num_blocks:
        combos = (
            itertools.product(kernel_choices, repeat=n)
            if per_level
            else ((k,) * n for k in kernel_choices)
        )
        for pools in combos:
            if max_divisor is None or math.prod(pools) <= max_divisor:
                grid.append((n, tuple(pools)))
    return grid



def describe_model(model: keras.Model, pixel_size_nm: float | None = None) -> dict[str, Any]:
    """Params, receptive field (px, and nm if the pixel size is known) and size divisor of a model."""
    from tem_rf.models import count_trainable_parameters

    geometry = model_geometry(model)
    rf = geometry.receptive_field
    return {
        "architecture": model.name,
        "trainable_params": count_trainable_parameters(model),
        "receptive_field_px": rf.pixels,
        "receptive_field_nm": None if pixel_size_nm is None else rf.nanometres(pixel_size_nm),
        "size_divisor": geometry.size_divisor,
    }



def describe_architecture(
    num_blocks: int,
    pool_sizes: int | Sequence[int],
    dilations: int | Sequence[int] = 1,
    pixel_size_nm: float | None = None,
) -> tuple[keras.Model, dict[str, Any]]:
    """Builds one residual UNet; returns it and its `architecture_table` row.

    A single int for ``pool_sizes`` or ``dilations`` applies at every level.
    """
    from tem_rf.models import normalize_architecture, residual_unet

    n, pools, dils = normalize_architecture(num_blocks, pool_sizes, dilations)
    model = residual_unet(n, pools, dils)
    row = {"num_blocks": n, "pool_sizes": list(pools), "dilations": list(dils)}
    return model, row | describe_model(model, pixel_size_nm)


def format_description(row: dict[str, Any], pixel_size_nm: float | None = None) -> str:
    """One `describe_architecture` row as four aligned lines: name, params, RF, size divisor."""
    nm = row["receptive_field_nm"]
    nm_text = (
        f" = {nm:.2f} nm at {pixel_size_nm} nm/px" if nm is not None else " (give --pixel_size_nm for nm)"
    )
    return "\n".join([
        f"architecture:          {row['architecture']}",
        f"trainable parameters:  {row['trainable_params']}",
        f"receptive field:       {row['receptive_field_px']} px{nm_text}",
        f"input size divisor:    {row['size_divisor']} (height and width must be multiples)",
    ])


def write_table_json(path: str | os.PathLike, rows: Sequence[dict[str, Any]]) -> None:
    """Writes ``rows`` as indented JSON, atomically; an OSError names ``path`` in one line."""
    try:
        write_json(path, list(rows))
    except OSError as err:  # name the file asked for, not the temporary one
        raise OSError(f"{path}: cannot write: {os_error_text(err)}") from None


def architecture_table(
    architectures: Iterable[tuple[int, Sequence[int]] | tuple[int, Sequence[int], Sequence[int]]],
    pixel_size_nm: float | None = None,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """One row per architecture: params, receptive field (px, nm), size divisor.

    Each architecture is ``(num_blocks, pool_sizes)`` or ``(num_blocks, pool_sizes, dilations)``;
    every row comes from building the model and walking its layers (paper Table S1), about half a
    second each on a laptop CPU, once per process (later calls reuse the row); ``progress``
    shows a bar over the models still to build.
    """
    from tem_rf.models import normalize_architecture

    architectures = [normalize_architecture(arch[0], arch[1], arch[2] if len(arch) > 2 else 1)
                     for arch in architectures]
    todo = [arch for arch in dict.fromkeys(architectures) if arch not in _ROWS]
    if progress:
        from tem_rf.core.progress import progress_bar

        todo = progress_bar(todo, desc="building models", unit="model")
    for arch in todo:
        model, _ROWS[arch] = describe_architecture(*arch)
        del model
        keras.backend.clear_session()
    rows = []
    for arch in architectures:
        row = dict(_ROWS[arch], pool_sizes=list(arch[1]), dilations=list(arch[2]))
        if pixel_size_nm is not None:
            row["receptive_field_nm"] = row["receptive_field_px"] * pixel_size_nm  # ReceptiveField.nanometres
        rows.append(row)
    return rows


# Rows already built in this process, by normalised architecture and without nm: a sweep, its
# TensorBoard record and `recommend` ask for the same networks, and building one takes a while.
_ROWS: dict[tuple, dict[str, Any]] = {}



def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """A fixed-width text table of ``architecture_table`` rows."""
    header = f"{'architecture':<22}{'N':>3}{'pools':>12}{'dilations':>12}{'params':>9}{'RF px':>8}{'RF nm':>9}{'divisor':>9}"
    lines = [header, "-" * len(header)]
    for r in rows:
        nm = "-" if r["receptive_field_nm"] is None else f"{r['receptive_field_nm']:.2f}"
        lines.append(
            f"{r['architecture']:<22}{r['num_blocks']:>3}{','.join(map(str, r['pool_sizes'])):>12}"
            f"{','.join(map(str, r['dilations'])):>12}{r['trainable_params']:>9}"
            f"{r['receptive_field_px']:>8}{nm:>9}{r['size_divisor']:>9}"
        )
    return "\n".join(lines)
