"""Fitting how particles are read from a boundary-target network's maps, on its validation
micrographs, as the best epoch is picked on them.

A boundary-target network (``train --target=boundary``) says how likely each pixel is to be a
particle's boundary; particles are the regions its boundaries enclose
(`tem_rf.particles.learned_instances`). Where those regions start depends on the network: one
trained briefly on a dataset where boundaries are rare predicts them with probabilities far
below 0.5 (on EMPS after 6 CPU epochs, a tenth of the contact pixels reach 0.1), and the smallest
seed worth a particle follows the particles' size. So `fit_instance_rule` segments the whole
micrographs of the run's validation split (as ``segment`` does: info bars left out, the
network's own grid) and scores every rule of a small grid against their instance masks
(`tem_rf.particles.score_instances`, instance F1 at IoU 0.5, pooled): boundary thresholds
`BOUNDARY_THRESHOLDS`, and seed areas of discs whose diameters are `SEED_DIAMETER_FRACTIONS` of
the training particles' 5th-percentile diameter (`SEED_AREAS_PX` when the run does not know its
particles' sizes). The best rule, its scores and the whole grid go to ``RUN_DIR/instance_rule.json``;
loading the run (`tem_rf.train.rundir.load_run`) and exporting it carry the rule, and ``segment``
and ``measure`` read particles with it. `train_and_fit` is training followed by the fit, what
``experiments/train.py`` and sweeps run. The test split is never looked at.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from tem_rf.core.errors import InputError

logger = logging.getLogger(__name__)

BOUNDARY_THRESHOLDS = (0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.3, 0.5)
SEED_DIAMETER_FRACTIONS = (0.0, 0.5, 0.75, 1.0, 1.25, 1.5)
SEED_AREAS_PX = (4.0, 16.0, 64.0, 128.0, 256.0)


def seed_areas(particle_diameter_px: dict[str, Any] | None) -> tuple[float, ...]:
    """The seed areas (px) the fit tries: discs of `SEED_DIAMETER_FRACTIONS` of the training
    particles' 5th-percentile diameter (at least `MIN_SEED_PX`), else `SEED_AREAS_PX`."""
    from tem_rf.particles.learned_instances import MIN_SEED_PX

    q05 = (particle_diameter_px or {}).get("q05")
    if not q05:
        return SEED_AREAS_PX
    areas = [max(float(MIN_SEED_PX), math.pi / 4 * (fraction * q05) ** 2) for fraction in SEED_DIAMETER_FRACTIONS]
    return tuple(sorted(set(round(area, 1) for area in areas)))


def _validation_maps(run_dir: Path, split: str, predictor: Any) -> list[tuple[Any, np.ndarray, np.ndarray | None]]:
    """(maps, true labels, left-out pixels) of every micrograph of the run dataset's ``split``."""
    from tem_rf.data.dataset_info import read_dataset_info
    from tem_rf.data.instance_masks import read_instance_labels
    from tem_rf.data.reading import read_micrograph
    from tem_rf.particles.masks import fill_holes
    from tem_rf.serve.scale import plan_scale
    from tem_rf.serve.segment import segment_sample
    from tem_rf.train.rundir import RunDir

    config = RunDir(run_dir).config()
    info = read_dataset_info(config["data_dir"])
    sources = [s for s in info["sources"] if s.get("split") == split]
    if not sources:
        raise InputError(Path(config["data_dir"]), f"has no {split} micrographs to fit the instance rule on")
    found = []
    for source in sources:
        path = Path(source["image_path"])
        micrograph = read_micrograph(path, **(info.get("read_options") or {}))
        # The network's own grid: these micrographs are the ones it trained beside.
        def plan_for(shape, path=path):
            return plan_scale(path, shape, None, "unknown", None, "never")

        maps, _, excluded, _ = segment_sample(micrograph.data, predictor, plan_for, path=path)
        # holes filled once here, not in each of the grid's rules (`_score` passes fill=False)
        maps = dataclasses.replace(maps, mask=fill_holes(maps.mask.astype(bool)))
        found.append((maps, read_instance_labels(source["mask_path"]), excluded))
    return found


def _score(items: list, rule: Any, min_area_px: float) -> dict[str, Any]:
    from tem_rf.particles import pool_scores, score_instances
    from tem_rf.particles.learned_instances import instances_from_boundary

    scores = []
    for maps, true, excluded in items:
        labels = instances_from_boundary(maps.probability, maps.boundary, maps.mask, rule=rule, min_area_px=min_area_px,
                                         fill=False)
        if excluded is not None:
            labels[excluded] = 0
        scores.append(score_instances(labels, true, None, return_samples=True))
    return pool_scores(scores)


def fit_instance_rule(run_dir: str | os.PathLike, *, split: str = "val") -> dict[str, Any]:
    """Fits the instance rule of a boundary-target run on its ``split`` micrographs (module
    docstring), writes ``RUN_DIR/instance_rule.json`` and returns what it holds. Raises
    ValueError for a two-class run, `InputError` for a dataset without such micrographs."""
    from tem_rf.core.files import write_json
    from tem_rf.particles.learned_instances import InstanceRule
    from tem_rf.particles.measure import min_area_in_px
    from tem_rf.serve.predictor import load_predictor
    from tem_rf.serve.scale import trained_min_area_px
    from tem_rf.serve.segment import trained_particles
    from tem_rf.train.rundir import RunDir

    run_dir = Path(run_dir)
    predictor = load_predictor(run_dir)
    if not predictor.has_boundary:
        raise ValueError(f"{run_dir}: a two-class network (--target=mask) has no instance rule to fit")
    items = _validation_maps(run_dir, split, predictor)
    # the smallest particle counted, as segment counts it on these micrographs
    min_area = trained_min_area_px(trained_particles(predictor)) or min_area_in_px(predictor.pixel_size_nm)
    grid = []
    for threshold in BOUNDARY_THRESHOLDS:
        for seed in seed_areas(predictor.particle_diameter_px):
            pooled = _score(items, InstanceRule(threshold, seed), min_area)
            grid.append({"boundary_threshold": threshold, "min_seed_px": seed, "f1": pooled["f1"],
                         "precision": pooled["precision"], "recall": pooled["recall"],
                         "median_diameter_error_percent": pooled["median_diameter_error_percent"]})
    best = max(grid, key=lambda row: row["f1"])  # the first of equals: the lowest threshold and seed
    record = {
        **best,
        "split": split,
        "images": len(items),
        "min_particle_area_px": min_area,
        "model_file": predictor.source and Path(predictor.source).name,
        "fitted_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "grid": grid,
    }
    write_json(RunDir(run_dir).instance_rule_file, record)
    logger.info("%s: instance rule fitted on %d %s micrographs: boundary below %g, seeds of %g px or more "
                "(instance F1 %.3f)", run_dir, len(items), split, best["boundary_threshold"], best["min_seed_px"],
                best["f1"])
    return record


def train_and_fit(config: Any, strategy: Any = None, progress: bool = True) -> dict[str, Any]:
    """Trains (or resumes) a run (`tem_rf.train.train`); a boundary-target run then fits its
    instance rule (on the chief only), added to the results as ``instance_rule``."""
    from tem_rf.train import Trainer

    trainer = Trainer(config, strategy)
    results = trainer.fit(progress=progress)
    if trainer.config.target == "boundary" and trainer.chief:
        record = fit_instance_rule(trainer.config.model_dir)
        results["instance_rule"] = {key: record[key] for key in ("boundary_threshold", "min_seed_px", "f1")}
    return results


__all__ = ["BOUNDARY_THRESHOLDS", "SEED_AREAS_PX", "SEED_DIAMETER_FRACTIONS", "fit_instance_rule", "seed_areas",
           "train_and_fit"]
