"""Many micrographs as one result (`segment_files`): each micrograph segmented, then written (and
its particles measured) in a thread while the next is read and segmented; the pooled particles,
``summary.csv`` and ``segmentation.json`` at the end. A failure or interrupt undoes the whole run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any
from collections.abc import Sequence

from tem_rf.core.errors import InputError
from tem_rf.core.files import make_parents, remove_made_folders
from tem_rf.serve.particle_reports import write_pooled_particles, write_summary_csv
from tem_rf.serve.segment import read_and_segment
from tem_rf.serve.segment_outputs import SUMMARY_FILE, file_options, output_files, run_output_files
from tem_rf.serve.segmented_micrograph import SegmentationResult, write_segmented

if TYPE_CHECKING:
    from tem_rf.serve.predictor import Predictor

logger = logging.getLogger("tem_rf.serve.segment")  # what segment says, under one name


def segment_files(
    paths: Sequence[str | os.PathLike],
    predictor: Predictor,
    output_dir: str | os.PathLike,
    *,
    progress: bool = True,
    **options: Any,
) -> tuple[list[SegmentationResult], list[tuple[str, str]]]:
    """Segments every file (`tem_rf.serve.segment.segment_file`'s options), with a progress bar over files.

    A bad file does not stop the others: returns ``(results, failures)`` where each failure is
    ``(path, message)``; failures are logged as errors as they happen. A ``segmentation.json``
    summary (model, tiling, per-file results and failures) is written to ``output_dir``, unless no
    file could be segmented: then a folder this call made is removed again. The run is one
    result: a write error (disk full) or an interrupt deletes every file the run wrote, puts back
    the files it replaced and removes the folders it made, then is raised. Each micrograph's
    outputs are written (and its particles measured) in a thread while the next one is read and
    segmented.
    """
    from tem_rf.core.files import json_safe, write_json
    from tem_rf.core.outputs import WriteJournal
    from tem_rf.core.progress import progress_bar

    output_dir = Path(output_dir)
    # The run is one result: a failure or interrupt, up to the summary, deletes every file it
    # wrote and puts back what it replaced (--overwrite), so no mix of old and new is left.
    journal = WriteJournal()
    made = make_parents(output_dir)  # removed again on failure, only while empty: nothing of anyone's goes
    results: list[SegmentationResult] = []
    failures: list[tuple[str, str]] = []

    measure = options.get("measure", True)
    particles_of: dict[str, list] = {}

    def remove_outputs(path: str | os.PathLike) -> None:
        for file in output_files(path, output_dir, **file_options(options)).values():
            with contextlib.suppress(OSError):
                file.unlink()

    # One micrograph's outputs (and particles) are written in a thread while the next one is read
    # and segmented: writing and measuring overlap the network instead of following it.
    writer = ThreadPoolExecutor(max_workers=1)
    writing: tuple[str | os.PathLike, Future] | None = None

    def finish_writing() -> None:
        """Joins the micrograph being written: its result, or its failure in file order; a
        write error (disk full) removes its outputs and is raised."""
        nonlocal writing
        if writing is None:
            return
        path, future = writing
        writing = None
        try:
            result, particles = future.result()
        except InputError as error:  # e.g. too many particles: its outputs are removed already
            logger.error("%s", error)
            failures.append((str(path), str(error)))
            return
        except BaseException:
            remove_outputs(path)  # incomplete
            raise
        results.append(result)
        particles_of[result.input] = particles

    try:
        for path in progress_bar(paths, desc="segmenting", unit="micrograph", enabled=progress):
            try:
                segmented = read_and_segment(path, predictor, output_dir, tile_progress=progress, **options)
            except InputError as error:
                finish_writing()
                logger.error("%s", error)
                failures.append((str(path), str(error)))
                continue
            finish_writing()
            journal.claim(segmented.files.values())
            writing = (path, writer.submit(write_segmented, segmented))
        finish_writing()
        if not results:  # nothing segmented: no result, so what was there before stays
            journal.roll_back()
            remove_made_folders(made)
            return results, failures
        run_files = run_output_files(paths, output_dir, measure=measure)
        journal.claim(run_files.values())
        pooled = None
        if "particles_csv" in run_files:
            pooled = write_pooled_particles(
                results, particles_of, run_files["particles_csv"], run_files["histogram"]
            )
        if "summary_csv" in run_files:
            write_summary_csv(results, run_files["summary_csv"])
        summary = _run_summary(predictor, options, results, failures, pooled)
        if "summary_csv" in run_files:
            summary["summary_csv"] = str(run_files["summary_csv"])
        write_json(output_dir / SUMMARY_FILE, json_safe(summary))
    except BaseException:
        # A write failed or the user interrupted. A micrograph still being written is waited for
        # (a thread cannot be stopped), then the whole run is undone.
        if writing is not None:
            with contextlib.suppress(BaseException):
                finish_writing()
        writer.shutdown(wait=True)
        journal.roll_back()
        remove_made_folders(made)
        raise
    finally:
        writer.shutdown(wait=True)
    journal.commit()
    return results, failures


def _run_summary(predictor: Predictor, options: dict[str, Any], results: list[SegmentationResult],
                 failures: list[tuple[str, str]], pooled: dict[str, Any] | None) -> dict[str, Any]:
    """segmentation.json: the model, tiling, options, each micrograph's result and each failure."""
    summary = {
        "model": predictor.source,
        "architecture": predictor.metadata.get("architecture"),
        "training_pixel_size_nm": predictor.pixel_size_nm,
        "size_divisor": predictor.size_divisor,
        "halo_px": predictor.halo_px,
        "options": {k: v for k, v in options.items()},
        "results": [dataclasses.asdict(r) for r in results],
        "failures": [{"input": p, "error": m} for p, m in failures],
    }
    if pooled is not None:
        summary["pooled"] = pooled
    return summary
