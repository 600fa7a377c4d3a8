"""The network shipped in the package (``pretrained:emps``) segments, measures and exports out
of the box, as a user's run does."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tem_rf.core import pretrained
from tem_rf.serve.predictor import load_predictor

from binaries import call_main


@pytest.fixture(scope="module")
def low_res_demo(tmp_path_factory):
    """Two 512 px low-resolution demo micrographs with their masks (particles of 13-30 px, the
    sizes the EMPS network learned)."""
    from tem_rf.data.synthetic import write_demo_dataset

    folder = tmp_path_factory.mktemp("pretrained") / "demo"
    write_demo_dataset(folder, num_images=2, size=512, kind="low_res", seed=0)
    return folder


def test_the_shipped_network_loads_with_its_fitted_instance_rule():
    predictor = load_predictor("pretrained:emps")
    config = json.loads((pretrained.pretrained_dir("emps") / "config.json").read_text())
    rule = json.loads((pretrained.pretrained_dir("emps") / "instance_rule.json").read_text())
    assert predictor.has_boundary and predictor.pixel_size_nm is None
    assert predictor.metadata["architecture"] == config["architecture"] == "N2_k8-8_d1-1-1"
    assert predictor.metadata["trainable_params"] == 8079
    assert predictor.instance_rule.boundary_threshold == rule["boundary_threshold"]
    assert predictor.particle_diameter_px["median"] == config["particle_diameter_px"]["median"]
    probability = predictor(np.zeros((1, 64, 64, 1), np.float32))
    assert probability.shape == (1, 64, 64, 2)


def test_measure_with_the_shipped_network_finds_the_demo_particles(low_res_demo, tmp_path):
    from tem_rf.study.instances import measure_instances

    run = measure_instances(low_res_demo / "images", low_res_demo / "labels", tmp_path / "scores",
                            model="pretrained:emps")
    # measured 0.870 pixel dice and instance F1 1.000 (8 true, 8 found) when it was shipped
    assert run.pooled["pixel_dice"] > 0.8
    assert run.pooled["f1"] > 0.8
    assert run.description.startswith("model N2_k8-8_d1-1-1 (pretrained:emps)")


def test_segment_and_export_take_pretrained_names(low_res_demo, tmp_path):
    image = sorted((low_res_demo / "images").iterdir())[0]
    segmented = call_main("experiments.segment", "--model=pretrained:emps", f"--images={image}",
                          f"--out_dir={tmp_path / 'seg'}")
    assert segmented.returncode == 0, segmented.stderr
    assert "particles" in segmented.stdout and (tmp_path / "seg" / "segmentation.json").is_file()
    exported = call_main("experiments.export", "--model=pretrained:emps", f"--out_dir={tmp_path / 'export'}",
                         "--raw_dtypes=")
    assert exported.returncode == 0, exported.stderr
    metadata = json.loads((tmp_path / "export" / "assets" / "tem_rf.json").read_text())
    assert metadata["target"] == "boundary" and metadata["instance_rule"]["boundary_threshold"] > 0
    unknown = call_main("experiments.segment", "--model=pretrained:nothing", f"--images={image}",
                        f"--out_dir={tmp_path / 'seg2'}")
    assert unknown.returncode == 1
    assert unknown.stderr.strip().endswith(
        "error: pretrained:nothing: no such network in tem_rf (shipped: pretrained:emps)")
    assert not (tmp_path / "seg2").exists()
