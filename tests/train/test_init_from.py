"""Fine-tuning: ``--init_from`` starts a run from another run's weights (same architecture and
target), records where they came from, and is part of the resume contract."""

from __future__ import annotations

import hashlib
import shutil

import numpy as np
import pytest

from tem_rf import train as training

from training_helpers import read_json, run_weights
from training_helpers import train_config as _config


def _sha256(weights):
    digest = hashlib.sha256()
    for array in weights:
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


@pytest.mark.large
def test_a_run_starts_from_the_weights_it_is_given(one_epoch_run, tiny_dataset, tmp_path):
    source = run_weights(one_epoch_run, "best.keras")
    trainer = training.Trainer(_config(tiny_dataset, tmp_path / "tuned", epochs=1, num_images=0,
                                       init_from=str(one_epoch_run)))
    for mine, theirs in zip(trainer.model.get_weights(), source):
        np.testing.assert_array_equal(mine, theirs)
    scratch = training.Trainer(_config(tiny_dataset, tmp_path / "scratch", epochs=1, num_images=0))
    assert any(not np.array_equal(a, b) for a, b in zip(scratch.model.get_weights(), source))
    trainer.fit(progress=False)
    config = read_json(tmp_path / "tuned" / "config.json")
    assert config["init_from"] == str(one_epoch_run) and config["init_weights_sha256"] == _sha256(source)
    assert read_json(tmp_path / "tuned" / "metrics.json")["epochs_trained"] == 1
    # a .keras file works as well, and its hash is that of the same weights
    keras_file = training.Trainer(_config(tiny_dataset, tmp_path / "k", init_from=str(one_epoch_run / "best.keras")))
    assert keras_file.init_weights_sha256 == _sha256(source)


@pytest.mark.parametrize("overrides, theirs, mine", [
    (dict(pool_sizes=(2, 4)), "N2_k2-2_d1-1-1 (2 classes)", "N2_k2-4_d1-1-1 (2 classes, --target=mask)"),
    (dict(target="boundary"), "N2_k2-2_d1-1-1 (2 classes)", "N2_k2-2_d1-1-1 (3 classes, --target=boundary)"),
])
def test_another_architecture_or_target_is_refused_naming_both(one_epoch_run, tiny_dataset, tmp_path, overrides,
                                                               theirs, mine):
    with pytest.raises(training.TrainingError) as refused:
        training.train(_config(tiny_dataset, tmp_path / "run", init_from=str(one_epoch_run), **overrides),
                       progress=False)
    assert str(refused.value).startswith(f"--init_from {one_epoch_run} holds {theirs} but this run is {mine}")
    assert not (tmp_path / "run").exists()
    with pytest.raises(training.TrainingError, match="nowhere: cannot be loaded"):
        training.Trainer(_config(tiny_dataset, tmp_path / "run", init_from=str(tmp_path / "nowhere")))


@pytest.mark.large  # an export or a training of its own: CI's full suite runs it
def test_resuming_needs_the_same_start_weights(one_epoch_run, tiny_dataset, tmp_path):
    source = tmp_path / "source"
    shutil.copytree(one_epoch_run, source)
    run = tmp_path / "tuned"
    training.train(_config(tiny_dataset, run, epochs=1, num_images=0, init_from=str(source)), progress=False)
    with pytest.raises(training.TrainingError, match="--init_from is  but this run was trained with"):
        training.train(_config(tiny_dataset, run, epochs=2, num_images=0), progress=False)
    # the source's weights changed since (another network saved there): its path is the same, its hash is not
    shutil.copy(run / "best.keras", source / "best.keras")
    with pytest.raises(training.TrainingError, match="the weights in --init_from changed"):
        training.train(_config(tiny_dataset, run, epochs=2, num_images=0, init_from=str(source)), progress=False)


def test_a_run_starts_from_the_shipped_network(tmp_path_factory, tmp_path):
    """``--init_from=pretrained:emps``: its weights, its name (not a path) in config.json, and
    another architecture refused naming both."""
    from training_helpers import make_tiny_dataset

    from tem_rf.core.pretrained import pretrained_dir

    data = make_tiny_dataset(tmp_path_factory.mktemp("p64"), num_images=4, size=128, patch_size=64)
    source = run_weights(pretrained_dir("emps"), "best.keras")
    settings = dict(pool_sizes=(8, 8), target="boundary", epochs=1, num_images=0, epoch_steps=1,
                    init_from="pretrained:emps")
    trainer = training.Trainer(_config(data, tmp_path / "tuned", **settings))
    for mine, theirs in zip(trainer.model.get_weights(), source):
        np.testing.assert_array_equal(mine, theirs)
    assert trainer.config.init_from == "pretrained:emps" and trainer.init_weights_sha256 == _sha256(source)
    assert trainer.resolved_config()["init_from"] == "pretrained:emps"
    with pytest.raises(training.TrainingError, match=r"--init_from pretrained:emps holds N2_k8-8_d1-1-1 \(3 classes\) "
                                                     r"but this run is N2_k2-2_d1-1-1 \(2 classes, --target=mask\)"):
        training.Trainer(_config(data, tmp_path / "other", init_from="pretrained:emps", pool_sizes=(2, 2)))
    with pytest.raises(training.TrainingError, match="pretrained:nothing: no such network in tem_rf"):
        training.Trainer(_config(data, tmp_path / "other", init_from="pretrained:nothing"))
