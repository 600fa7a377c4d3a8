"""Training with the boundary target (``--target=boundary``) and serving what it learned:
three output classes, exports carrying the boundary probability, particles from the interiors."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from tem_rf.data.reading import read_micrograph

from training_helpers import read_json


def test_the_network_learns_three_classes(boundary_run):
    import tem_rf.models  # noqa: F401  (custom layers)

    run, results = boundary_run
    with open(run / "history.csv") as f:
        losses = [float(line.split(",")[1]) for line in f.readlines()[1:]]
    assert losses[-1] < 0.8 * losses[0], losses
    config = read_json(run / "config.json")
    # The head's 1x1 convolution has one more output: 4 weights and a bias over the paper's 8074.
    assert (config["target"], config["boundary_width"], config["trainable_params"]) == ("boundary", 1, 8079)
    model = keras.models.load_model(run / "best.keras", compile=False)
    assert model.outputs[0].shape[-1] == 3
    assert 0.0 < results["test_hard_dice"] <= 1.0


@pytest.mark.large  # a full export of the boundary network: CI's full suite runs it
def test_the_export_serves_the_boundary_as_keras_does(boundary_run, tiny_dataset, tmp_path):
    import tensorflow as tf

    from tem_rf.serve.signatures import BOUNDARY_OUTPUT
    from tem_rf.serve.export import export_run
    from tem_rf.serve.predictor import load_predictor
    from tem_rf.serve.segment import segment_maps

    run, _ = boundary_run
    metadata = export_run(run, tmp_path / "exported", raw_dtypes=("uint16",))
    assert metadata["target"] == "boundary"
    assert metadata["class_names"] == ["background", "particle interior", "particle boundary"]
    fitted = read_json(run / "instance_rule.json")
    assert metadata["instance_rule"] == {key: fitted[key] for key in ("boundary_threshold", "min_seed_px", "split",
                                                                        "images", "f1")}
    info = json.loads((tiny_dataset / "dataset.json").read_text())
    micrograph = read_micrograph(info["sources"][0]["image_path"]).data
    keras_maps = segment_maps(micrograph, load_predictor(run), tile_size=None)
    exported = load_predictor(tmp_path / "exported")
    assert exported.has_boundary
    saved_maps = segment_maps(micrograph, exported, tile_size=32)  # tiled: the same to round-off
    np.testing.assert_allclose(saved_maps.probability, keras_maps.probability, atol=1e-6)
    np.testing.assert_allclose(saved_maps.boundary, keras_maps.boundary, atol=1e-6)
    assert keras_maps.boundary.max() > 0.0 and (keras_maps.boundary <= keras_maps.probability + 1e-6).all()
    raw = tf.saved_model.load(str(tmp_path / "exported")).signatures["serving_raw_uint16"]
    outputs = raw(micrograph=tf.constant(micrograph.astype(np.uint16)[None]))
    np.testing.assert_allclose(outputs[BOUNDARY_OUTPUT][0].numpy(), keras_maps.boundary, atol=1e-6)


def test_segment_counts_the_particles_the_interiors_give(boundary_run, tiny_dataset, tmp_path):
    import tifffile

    from tem_rf.particles.learned_instances import instances_from_boundary
    from tem_rf.serve.predictor import load_predictor
    from tem_rf.serve.segment import segment_file, segment_maps

    run, _ = boundary_run
    predictor = load_predictor(run)
    image = json.loads((tiny_dataset / "dataset.json").read_text())["sources"][0]["image_path"]
    result = segment_file(image, predictor, tmp_path / "out", tile_size=None, min_particle_area_px=1)
    maps = segment_maps(read_micrograph(image).data, predictor, tile_size=None)
    expected = instances_from_boundary(maps.probability, maps.boundary, maps.mask, rule=predictor.instance_rule,
                                       min_area_px=1)
    np.testing.assert_array_equal(tifffile.imread(result.labels), expected)
    assert result.particles["count"] == expected.max()
