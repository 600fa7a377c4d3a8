"""The ``segment`` command's one library call (`segment_micrographs`): options checked, inputs
expanded, the model loaded, then every micrograph segmented (`tem_rf.serve.segment_batch.segment_files`)
or every frame of every movie (`tem_rf.serve.movie.segment_movies`), under the output folder's
lock; `SegmentationRun` says what was done.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from tem_rf.core.errors import InputError
from tem_rf.serve.inputs import expand_inputs
from tem_rf.serve.predictor import Predictor
from tem_rf.serve.scale import check_scale_options
from tem_rf.serve.options import check_burned_in_options, check_particle_options
from tem_rf.serve.segment import check_threshold
from tem_rf.serve.segment_batch import segment_files
from tem_rf.serve.segmented_micrograph import SegmentationResult
from tem_rf.serve.segment_outputs import check_no_overwrite, planned_outputs

logger = logging.getLogger("tem_rf.serve.segment")

def check_output_dir(out_dir: str | os.PathLike) -> None:
    """Raises `tem_rf.data.reading.InputError` when ``out_dir`` is, or lies under, a file.

    Checked before the model is loaded, so a mistyped folder fails in a second, not after it.
    """
    from tem_rf.core.outputs import blocking_file

    blocking = blocking_file(out_dir)
    if blocking is not None:
        raise InputError(blocking, "is a file, not a folder (--out_dir)")


def describe_predictor(predictor: Predictor) -> str:
    """One line: architecture, where it came from, size divisor, halo, training pixel size."""
    pixel_size = f"{predictor.pixel_size_nm:.4g} nm" if predictor.pixel_size_nm else "unknown"
    return (
        f"model {predictor.metadata.get('architecture')} ({predictor.source}): size divisor "
        f"{predictor.size_divisor}, halo {predictor.halo_px} px, training pixel size {pixel_size}"
    )


def _particle_text(summary: dict[str, Any] | None) -> str:
    """``"12 particles, median 4.1 nm, "`` from a result's particle summary ('' when not measured)."""
    if summary is None:
        return ""
    median = summary.get("diameter_median")
    size = "" if median is None else f", median diameter {median:.3g} {summary['diameter_unit']}"
    return f"{summary['count']} particles{size}, "


@dataclasses.dataclass
class SegmentationRun:
    """What `segment_micrographs` did: the model, the inputs, what was written, what failed."""

    model: str  # describe_predictor's line
    inputs: list[Path]
    out_dir: Path
    results: list[SegmentationResult]
    failures: list[tuple[str, str]]  # (input, message), as `segment_files` returns them

    def summary_lines(self) -> list[str]:
        """One line per segmented micrograph, then how many of the inputs were written where."""
        lines = [
            f"{r.input}: {r.shape[0]}x{r.shape[1]} px, {100 * r.particle_fraction:.1f}% particle, "
            f"{_particle_text(r.particles)}{r.seconds:.1f} s -> {r.mask}"
            for r in self.results
        ]
        written = f"wrote {len(self.results)} of {len(self.inputs)} segmentations to {self.out_dir}"
        return [*lines, written]

    def failure_line(self) -> str | None:
        """The failures in one line (None when there are none): one failure with its reason;
        several by file only, since each reason was logged and is in segmentation.json."""
        if not self.failures:
            return None
        count = f"{len(self.failures)} of {len(self.inputs)} micrographs failed"
        if len(self.failures) == 1:
            return f"{count}: {self.failures[0][1]}"
        files = ", ".join(path for path, _ in self.failures)
        return f"{count}: {files} (reasons above and in {self.out_dir / 'segmentation.json'})"


@contextlib.contextmanager
def frozen_heap() -> Iterator[None]:
    """Keeps the objects alive at entry (TensorFlow's and a loaded model's: about half a million)
    out of Python's full garbage collections for the block (`gc.freeze`), then hands them back.

    A full collection walks every live container object: in a process holding a loaded model each
    one took about 0.25 s, a stall that fell on whichever micrograph was being segmented, and more
    often when its particles were measured (thousands of records). Garbage made inside the block is
    collected as usual. When the caller has frozen objects already, nothing is changed."""
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def segment_micrographs(
    model: str | os.PathLike,
    inputs: Iterable[str],
    out_dir: str | os.PathLike,
    *,
    keep_mixed_precision: bool = False,
    on_model_loaded: Callable[[str], Any] | None = None,
    overwrite: bool = False,
    **options: Any,
) -> SegmentationRun:
    """Checks ``out_dir``, expands ``inputs``, loads ``model``, then runs `segment_files`.

    ``options`` go to `segment_files` (progress and `segment_file`'s options). ``on_model_loaded``
    gets `describe_predictor`'s line before the first file, so a caller can show it during a long
    run. Bad input raises `tem_rf.data.reading.InputError` or `tem_rf.train.rundir.ModelLoadError`
    before anything is written; results that cannot be written (folder not writable, disk full)
    raise InputError naming ``out_dir``. Files that cannot be segmented are the run's failures.
    Outputs already in ``out_dir`` under the names this run would write are refused unless
    ``overwrite``.
    """
    from tem_rf.core.files import os_error_text
    from tem_rf.core.locks import output_lock, remove_stale_temporaries
    from tem_rf.serve.predictor import load_predictor

    out_dir = Path(out_dir)
    check_output_dir(out_dir)
    # Option mistakes fail before the model is loaded, in one line each.
    if "threshold" in options:
        options["threshold"] = check_threshold(options["threshold"])
    frame = options.get("frame")
    if frame is not None and (isinstance(frame, bool) or not isinstance(frame, int) or frame < 0):
        raise InputError(None, f"--frame must be a frame number, 0 or more, got {frame!r}")
    movie = {"frames": options.pop("frames", None), "frame_interval_s": options.pop("frame_interval_s", None)}
    if movie["frames"] is not None and frame is not None:
        raise InputError(None, "give --frame (one frame, a micrograph's outputs) or --frames (a movie's), not both")
    check_particle_options(options)
    check_scale_options(options.get("pixel_size_nm"), options.get("resample", "auto"), options.get("rescale", "never"),
                        options.get("override_pixel_size", False))
    check_burned_in_options(options)
    paths = expand_inputs(inputs)
    if movie["frames"] is not None:  # every frame of each movie (`tem_rf.serve.movie`)
        from tem_rf.serve.movie import segment_movies

        with output_lock(out_dir):
            predictor = load_predictor(model, keep_mixed_precision=keep_mixed_precision)
            description = describe_predictor(predictor)
            if on_model_loaded is not None:
                on_model_loaded(description)
            per_frame = {k: v for k, v in options.items() if k not in ("frame", "save_probability", "overlay",
                                                                       "overlay_max_size", "measure")}
            return segment_movies(paths, predictor, description, out_dir, overwrite=overwrite, **movie, **per_frame)
    # One writer per output folder: a second segment into it is refused instead of both ending
    # well and one replacing the other's files. Under the lock a killed run's temporaries go.
    with output_lock(out_dir):
        if not overwrite:
            check_no_overwrite(paths, out_dir, **options)
        remove_stale_temporaries(planned_outputs(paths, out_dir, **options))
        predictor = load_predictor(model, keep_mixed_precision=keep_mixed_precision)
        description = describe_predictor(predictor)
        if on_model_loaded is not None:
            on_model_loaded(description)
        try:
            with frozen_heap():
                results, failures = segment_files(paths, predictor, out_dir, **options)
        except OSError as error:
            raise InputError(out_dir, f"cannot write the results: {os_error_text(error)}") from None
    return SegmentationRun(description, paths, out_dir, results, failures)


__all__ = ["SegmentationRun", "check_output_dir", "describe_predictor", "frozen_heap", "segment_micrographs"]
