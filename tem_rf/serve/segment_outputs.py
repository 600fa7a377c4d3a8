"""What ``segment`` writes, by name: each micrograph's ``<stem>_mask.tif``, ``_prob.tif``,
``_overlay.png``, ``_labels.tif``, ``_particles.csv`` and ``_sizes.png``, the run's
``segmentation.json``, ``summary.csv`` and pooled tables, and the check that a run would replace
none of them without ``--overwrite``. `tem_rf.serve.inputs` uses the same names to leave earlier
outputs out of a run's inputs.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any


from tem_rf.core.errors import InputError
from tem_rf.serve.overlay import (  # noqa: F401  (OVERLAY_COLOUR, MASK_OUTLINE_COLOUR: segment's overlay colours)
    MASK_OUTLINE_COLOUR, OVERLAY_COLOUR, OVERLAY_MAX_SIZE, overlay_background, write_overlay,
)
from tem_rf.serve.particle_reports import (
    HISTOGRAM_FILE, POOLED_PARTICLES_FILE, SUMMARY_CSV_FILE,
)

if TYPE_CHECKING:
    pass


# What `segment_file` (and `tem_rf.serve.movie`) write next to ``<stem>``; never read back as micrographs.
OUTPUT_SUFFIXES = ("_mask.tif", "_masks.tif", "_prob.tif", "_overlay.png", "_labels.tif", "_particles.csv", "_sizes.png")


# What `segment_files` writes once per run (pooled particles of several micrographs).
SUMMARY_FILE = "segmentation.json"


def output_stem(path: str | os.PathLike) -> str:
    """``dir/sample_01.dm4`` -> ``sample_01``: outputs are ``<stem>_mask.tif`` and so on."""
    return Path(path).stem


def output_files(
    path: str | os.PathLike, output_dir: str | os.PathLike, *, save_probability: bool = False,
    overlay: bool = True, measure: bool = True,
) -> dict[str, Path]:
    """The files `segment_file` writes for micrograph ``path``, by kind (mask, probability,
    overlay, particles_csv, labels)."""
    stem, output_dir = output_stem(path), Path(output_dir)
    files = {"mask": output_dir / f"{stem}_mask.tif"}
    if save_probability:
        files["probability"] = output_dir / f"{stem}_prob.tif"
    if overlay:
        files["overlay"] = output_dir / f"{stem}_overlay.png"
    if measure:
        files["particles_csv"] = output_dir / f"{stem}_particles.csv"
        files["labels"] = output_dir / f"{stem}_labels.tif"
        files["histogram"] = output_dir / f"{stem}_sizes.png"
    return files


def run_output_files(
    paths: Sequence[str | os.PathLike], output_dir: str | os.PathLike, *, measure: bool = True
) -> dict[str, Path]:
    """The files `segment_files` writes once per run: ``segmentation.json``, measuring
    ``summary.csv`` (a row per micrograph) and, for more than one micrograph, the pooled
    ``particles.csv`` and ``particle_sizes.png``."""
    output_dir = Path(output_dir)
    files = {"summary": output_dir / SUMMARY_FILE}
    if measure:
        files["summary_csv"] = output_dir / SUMMARY_CSV_FILE
    if measure and len(paths) > 1:
        files["particles_csv"] = output_dir / POOLED_PARTICLES_FILE
        files["histogram"] = output_dir / HISTOGRAM_FILE
    return files


def file_options(options: dict[str, Any]) -> dict[str, Any]:
    """The `output_files` options among `segment_file`'s."""
    return {
        "save_probability": options.get("save_probability", False),
        "overlay": options.get("overlay", True),
        "measure": options.get("measure", True),
    }


def planned_outputs(paths: Sequence[str | os.PathLike], output_dir: str | os.PathLike, **options: Any) -> list[Path]:
    """Every file a run over ``paths`` may write into ``output_dir``: the run's own files
    (segmentation.json, pooled particles) and each micrograph's."""
    output_dir = Path(output_dir)
    return list(run_output_files(paths, output_dir, measure=options.get("measure", True)).values()) + [
        file for path in paths for file in output_files(path, output_dir, **file_options(options)).values()
    ]


def check_no_overwrite(paths: Sequence[str | os.PathLike], output_dir: str | os.PathLike, **options: Any) -> None:
    """Raises `InputError` naming ``output_dir`` when a file this run would write is already there
    (an earlier run's results, or a user's file of that name): replaced only with ``overwrite``."""

    output_dir = Path(output_dir)
    planned = planned_outputs(paths, output_dir, **options)
    existing = [file.name for file in planned if file.exists() or file.is_symlink()]
    if existing:
        more = f" and {len(existing) - 1} more of this run's outputs" if len(existing) > 1 else ""
        raise InputError(
            output_dir,
            f"already holds {existing[0]}{more}; pass --overwrite to replace them, or choose "
            "another --out_dir",
        )


__all__ = ["OUTPUT_SUFFIXES", "SUMMARY_FILE", "check_no_overwrite", "file_options", "output_files", "output_stem", "planned_outputs", "run_output_files"]
