"""The instance rule of a boundary-target network, fitted on its validation micrographs."""

import json
import math
import shutil

import numpy as np
import pytest

from tem_rf.particles import pool_scores, score_instances
from tem_rf.particles.learned_instances import InstanceRule, instances_from_boundary
from tem_rf.serve.instance_rule import (
    BOUNDARY_THRESHOLDS, SEED_AREAS_PX, fit_instance_rule, seed_areas,
)
from tem_rf.serve.predictor import load_predictor


def test_seed_areas_follow_the_training_particles():
    areas = seed_areas({"q05": 12.0, "median": 30.0})
    # discs of 0, 0.5, 0.75, 1, 1.25, 1.5 x 12 px, at least 4 px
    assert areas == tuple(round(max(4.0, math.pi / 4 * (f * 12.0) ** 2), 1) for f in (0, 0.5, 0.75, 1, 1.25, 1.5))
    assert seed_areas(None) == SEED_AREAS_PX == seed_areas({"q05": None})


def test_training_fits_the_best_rule_of_the_grid(boundary_run, tiny_dataset):
    run, results = boundary_run
    record = json.loads((run / "instance_rule.json").read_text())
    info = json.loads((tiny_dataset / "dataset.json").read_text())
    assert record["split"] == "val" and record["images"] == len(info["splits"]["val"]["sources"])
    assert len(record["grid"]) == len(BOUNDARY_THRESHOLDS) * len(seed_areas(info["particle_diameter_px"]))
    best = max(record["grid"], key=lambda row: row["f1"])
    assert {k: record[k] for k in best} == best
    assert results["instance_rule"] == {k: record[k] for k in ("boundary_threshold", "min_seed_px", "f1")}
    rule = load_predictor(run).instance_rule
    assert rule == InstanceRule(record["boundary_threshold"], record["min_seed_px"])


def test_the_recorded_f1_is_the_rules_f1_on_those_micrographs(boundary_run, tmp_path):
    from tem_rf.serve.instance_rule import _validation_maps

    run, _ = boundary_run
    record = json.loads((run / "instance_rule.json").read_text())
    items = _validation_maps(run, "val", load_predictor(run))
    scores = []
    for maps, true, excluded in items:
        labels = instances_from_boundary(maps.probability, maps.boundary, maps.mask,
                                         rule=InstanceRule(record["boundary_threshold"], record["min_seed_px"]),
                                         min_area_px=record["min_particle_area_px"])
        assert excluded is None
        scores.append(score_instances(labels, true, None, return_samples=True))
    assert pool_scores(scores)["f1"] == pytest.approx(record["f1"])


def test_a_two_class_run_has_no_rule_to_fit(one_epoch_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(one_epoch_run, run)
    with pytest.raises(ValueError, match="two-class"):
        fit_instance_rule(run)
    assert not (run / "instance_rule.json").exists()
    assert load_predictor(run).instance_rule is None


def test_without_a_fitted_rule_the_defaults_apply(boundary_run, tmp_path):
    run, _ = boundary_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    (copy / "instance_rule.json").unlink()
    assert load_predictor(copy).instance_rule == InstanceRule()
    assert np.isfinite(InstanceRule().boundary_threshold)
