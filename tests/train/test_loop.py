"""The custom training loop: learning, determinism, strategies, resume, events, bad input."""

from __future__ import annotations

import csv
import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from tem_rf import train as training

from training_helpers import make_tiny_dataset, max_weight_difference, read_json, run_weights
from training_helpers import train_config as _config


@pytest.fixture
def tiny_data(tiny_dataset):
    return tiny_dataset


def _history(run_dir):
    with open(run_dir / "history.csv") as f:
        return list(csv.DictReader(f))


def test_loss_falls_and_outputs_are_written(tiny_data, tmp_path):
    run = tmp_path / "run"
    results = training.train(_config(tiny_data, run, epochs=4), progress=False)
    losses = [float(r["train_loss"]) for r in _history(run)]
    assert len(losses) == 4
    assert losses[-1] < 0.7 * losses[0], losses
    for name in ("config.json", "best.keras", "model.keras", "metrics.json", "history.csv"):
        assert (run / name).exists(), name
    config = read_json(run / "config.json")
    assert config["trainable_params"] == 8074 and config["receptive_field_px"] == 44
    assert config["receptive_field_nm"] == pytest.approx(22.0)
    assert config["precision"] == "float32" and config["pool_sizes"] == [2, 2]
    assert read_json(run / "metrics.json") == results
    assert 0.0 <= results["test_hard_dice"] <= 1.0
    assert results["best_epoch"] >= 1 and results["epochs_trained"] == 4


@pytest.mark.large
def test_event_files_hold_dice_scalars(tiny_data, tmp_path):
    run = tmp_path / "run"
    training.train(_config(tiny_data, run, epochs=1), progress=False)
    tags = {}
    for split in ("train", "val", "test"):
        for path in (run / "logs" / split).glob("events.out.tfevents.*"):
            for event in tf.compat.v1.train.summary_iterator(str(path)):
                for value in event.summary.value:
                    tags.setdefault(split, set()).add(value.tag)
    assert {"hard_dice", "soft_dice", "loss", "particle_probability", "label", "best/particle_probability",
            "best_hard_dice"} <= tags["val"]
    assert {"loss", "hard_dice", "soft_dice", "learning_rate", "steps_per_second"} <= tags["train"]
    assert tags["test"] == {"hard_dice", "soft_dice", "loss"}
    # (tests/train/test_tensorboard.py reads them back through TensorBoard's own loader)


@pytest.mark.large  # several whole training runs: CI's full suite runs it
def test_same_seed_gives_identical_weights(tiny_data, tmp_path):
    training.train(_config(tiny_data, tmp_path / "a", epochs=1), progress=False)
    training.train(_config(tiny_data, tmp_path / "b", epochs=1), progress=False)
    training.train(_config(tiny_data, tmp_path / "c", epochs=1, seed=2245), progress=False)
    a, b, c = (run_weights(tmp_path / name) for name in "abc")
    assert max_weight_difference(a, b) == 0.0
    assert max_weight_difference(a, c) > 1e-3


@pytest.mark.large  # several whole training runs: CI's full suite runs it
def test_resume_after_epoch_one_equals_uninterrupted_run(tiny_data, tmp_path):
    training.train(_config(tiny_data, tmp_path / "full", epochs=3), progress=False)
    training.train(_config(tiny_data, tmp_path / "resumed", epochs=1), progress=False)
    first = json.loads((tmp_path / "resumed" / "metrics.json").read_text())
    assert first["epochs_trained"] == 1
    training.train(_config(tiny_data, tmp_path / "resumed", epochs=3), progress=False)
    assert max_weight_difference(run_weights(tmp_path / "full"), run_weights(tmp_path / "resumed")) == 0.0
    assert [r["epoch"] for r in _history(tmp_path / "resumed")] == ["1", "2", "3"]
    drop_timing = lambda rows: [{k: v for k, v in r.items() if k not in ("seconds", "steps_per_second")} for r in rows]
    assert drop_timing(_history(tmp_path / "full")) == drop_timing(_history(tmp_path / "resumed"))


@pytest.mark.large  # several whole training runs: CI's full suite runs it
def test_mirrored_over_two_cpus_matches_default_strategy(tiny_data, tmp_path):
    assert len(tf.config.list_logical_devices("CPU")) >= 2
    mirrored = training.make_strategy("mirrored", ["/cpu:0", "/cpu:1"])
    assert mirrored.num_replicas_in_sync == 2
    config = dict(epochs=1, learning_rate=1e-4)
    training.train(_config(tiny_data, tmp_path / "default", **config), progress=False)
    training.train(_config(tiny_data, tmp_path / "mirrored", **config), strategy=mirrored, progress=False)
    # Synchronised batch norm and a global-batch mean loss: the same maths, summed in another
    # order, so the weights agree to float32 round-off amplified by Adam's normalisation.
    assert max_weight_difference(run_weights(tmp_path / "default"), run_weights(tmp_path / "mirrored")) < 2e-4
    loss_default = float(_history(tmp_path / "default")[0]["train_loss"])
    loss_mirrored = float(_history(tmp_path / "mirrored")[0]["train_loss"])
    assert loss_mirrored == pytest.approx(loss_default, rel=1e-5)
    mirrored_config = read_json(tmp_path / "mirrored" / "config.json")
    assert mirrored_config["num_replicas"] == 2 and mirrored_config["strategy"] == "mirrored"


@pytest.mark.large
def test_nan_loss_stops_with_clear_message_and_keeps_last_checkpoint(tiny_data, tmp_path):
    run = tmp_path / "run"
    training.train(_config(tiny_data, run, epochs=1), progress=False)
    trainer = training.Trainer(_config(tiny_data, run, epochs=2))
    trainer._train_step = lambda batch: tf.constant(float("nan"))
    with pytest.raises(training.TrainingError, match=r"loss became nan at epoch 2, step 1.*epoch 1\) is kept"):
        trainer.fit(progress=False)
    assert tf.train.latest_checkpoint(str(run / "checkpoints")).endswith("ckpt-1")


@pytest.mark.parametrize(
    "overrides,message",
    [
        (dict(precision="float64"), "unknown precision 'float64'"),
        (dict(strategy="tpu"), "unknown strategy 'tpu'"),
        (dict(pool_sizes=(8, 8)), r"patch size 32 .* is not divisible by 64, the product of pool sizes \(8, 8\)"),
        (dict(batch_size=10_000), "fewer than one batch of 10000"),
        (dict(pool_sizes=(2, 2, 2)), "pool_sizes must have 2 values"),
        (dict(learning_rate=-1.0), "learning_rate must be a positive number"),
    ],
)
def test_bad_config_fails_before_training(tiny_data, tmp_path, overrides, message):
    with pytest.raises(training.TrainingError, match=message):
        training.Trainer(_config(tiny_data, tmp_path / "run", **overrides))
    assert not (tmp_path / "run").exists()


def test_empty_validation_split_is_refused_before_anything_is_written(tmp_path):
    data_dir = make_tiny_dataset(tmp_path, split_fractions=(1.0, 0.0, 0.0))
    with pytest.raises(training.TrainingError, match="the val and test splits of .* hold no patches"):
        training.Trainer(_config(data_dir, tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def test_missing_data_dir(tmp_path):
    with pytest.raises(training.TrainingError, match="does not exist"):
        training.Trainer(_config(tmp_path / "nowhere", tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def _copy_run(run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    config = read_json(copy / "config.json")
    (copy / "config.json").write_text(json.dumps({**config, "model_dir": str(copy)}, indent=2) + "\n")
    return copy


def _snapshot(folder):
    """Every file under ``folder`` with its bytes: equal snapshots, nothing written."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(
    "overrides,message",
    [
        (dict(learning_rate=1e-3), "--learning_rate is 0.001 but this run was trained with 0.01"),
        (dict(precision="mixed_bfloat16"), "--precision is mixed_bfloat16 but this run was trained with float32"),
        (dict(augment=False), "--augment is false but this run was trained with true"),
        (dict(deterministic=False), "--deterministic is false but this run was trained with true"),
        (dict(batch_size=4), "--batch_size is 4 but this run was trained with 8"),
        (dict(pool_sizes=(2, 4)), "--pool_sizes is 2,4 but this run was trained with 2,2"),
        (dict(target="boundary"), "--target is boundary but this run was trained with mask"),
        (dict(boundary_width=3), "--boundary_width is 3 but this run was trained with 2"),
        (dict(train_images=1), "--train_images is 1 but this run was trained with 0"),
        (dict(epoch_steps=5), "--epoch_steps is 5 but this run was trained with 0"),
        (dict(seed=2245, eval_augment=False), "--seed is 2245 but this run was trained with 752; "
                                             "--eval_augment is false but this run was trained with true"),
    ],
)
def test_resume_with_a_changed_setting_is_refused_naming_it(one_epoch_run, tiny_data, overrides, message):
    before = _snapshot(one_epoch_run)
    with pytest.raises(training.TrainingError) as refused:
        training.train(_config(tiny_data, one_epoch_run, epochs=1, num_images=0, **overrides), progress=False)
    assert str(refused.value) == (
        f"{one_epoch_run}: {message}; use another --model_dir, or pass the run's values to resume it")
    assert _snapshot(one_epoch_run) == before  # config.json byte-identical, nothing else written


def test_every_config_field_has_a_resume_rule():
    import dataclasses

    from tem_rf.train.config import RESUME_RULES, resume_rule

    rules = {f.name: resume_rule(f.name) for f in dataclasses.fields(training.TrainConfig)}
    assert set(rules.values()) <= set(RESUME_RULES)
    assert rules["epochs"] == "grow"
    assert {name for name, rule in rules.items() if rule == "free"} == {
        "model_dir", "image_every", "num_images", "keep_worker_dirs", "worker_timeout_s"}


@pytest.mark.large
def test_resume_may_grow_epochs_and_change_what_is_logged_but_not_shrink(one_epoch_run, tiny_data, tmp_path):
    run = _copy_run(one_epoch_run, tmp_path)
    results = training.train(_config(tiny_data, run, epochs=2, num_images=1, image_every=3), progress=False)
    assert results["epochs_trained"] == 2 and [r["epoch"] for r in _history(run)] == ["1", "2"]
    config = read_json(run / "config.json")
    assert (config["epochs"], config["image_every"], config["num_images"]) == (2, 3, 1)
    before = _snapshot(run)
    with pytest.raises(training.TrainingError, match="--epochs is 1 but this run was trained with 2 "
                                                     r"\(it may only grow\)"):
        training.train(_config(tiny_data, run, epochs=1), progress=False)
    assert _snapshot(run) == before


def test_a_moved_run_resumes_in_its_new_folder(one_epoch_run, tiny_data, tmp_path):
    run = tmp_path / "moved"
    shutil.copytree(one_epoch_run, run)  # config.json still names the old folder: model_dir is "free"
    assert training.train(_config(tiny_data, run, epochs=1, num_images=0), progress=False)["epochs_trained"] == 1
    assert read_json(run / "config.json")["model_dir"] == str(run)


@pytest.mark.large
def test_a_run_that_failed_before_its_first_checkpoint_starts_anew_with_new_settings(one_epoch_run, tiny_data,
                                                                                      tmp_path):
    run = _copy_run(one_epoch_run, tmp_path)
    for name in ("checkpoints", "history.csv", "metrics.json", "model.keras"):
        shutil.rmtree(run / name) if name == "checkpoints" else (run / name).unlink()
    results = training.train(_config(tiny_data, run, epochs=1, learning_rate=1e-3, num_images=0), progress=False)
    assert results["epochs_trained"] == 1 and read_json(run / "config.json")["learning_rate"] == 1e-3


def test_a_checkpoint_without_config_is_never_resumed(one_epoch_run, tiny_data, tmp_path):
    run = _copy_run(one_epoch_run, tmp_path)
    (run / "config.json").unlink()
    before = _snapshot(run)
    with pytest.raises(training.TrainingError, match=f"{run}: holds checkpoints/, history.csv, metrics.json, "
                                                     "best.keras, model.keras but no config.json"):
        training.train(_config(tiny_data, run, epochs=1, pool_sizes=(2, 4)), progress=False)
    assert _snapshot(run) == before


def test_a_corrupt_checkpoint_is_named(one_epoch_run, tiny_data, tmp_path):
    run = _copy_run(one_epoch_run, tmp_path)
    index = run / "checkpoints" / "ckpt-1.index"
    index.write_bytes(index.read_bytes()[:20])
    with pytest.raises(training.TrainingError, match="ckpt-1: corrupt or unreadable checkpoint"):
        training.train(_config(tiny_data, run, epochs=2), progress=False)


def test_model_dir_that_is_a_file_is_refused(tiny_data, tmp_path):
    (tmp_path / "run").write_text("notes")
    with pytest.raises(training.TrainingError, match=f"--model_dir {tmp_path / 'run'} is a file, not a folder"):
        training.Trainer(_config(tiny_data, tmp_path / "run"))
    assert (tmp_path / "run").read_text() == "notes"


def test_the_run_folder_is_locked_while_training_and_released_after(one_epoch_run, tiny_data, tmp_path):
    from tem_rf.core.files import exclusive_lock

    run = _copy_run(one_epoch_run, tmp_path)
    before = _snapshot(run)
    with exclusive_lock(run / ".lock"):
        with pytest.raises(training.TrainingError, match=f"{run}: another tem_rf process is training in this "
                                                         rf"folder \(pid {os.getpid()}\)"):
            training.train(_config(tiny_data, run, epochs=1, num_images=0), progress=False)
        assert _snapshot(run) == before
    trainer = training.Trainer(_config(tiny_data, run, epochs=1, num_images=0))
    held = []
    trainer._final_metrics = lambda: held.append(_lock_is_held(run)) or {}
    trainer.fit(progress=False)
    assert held == [True] and not _lock_is_held(run)


def _lock_is_held(run) -> bool:
    from tem_rf.core.files import LockHeldError, exclusive_lock

    try:
        with exclusive_lock(run / ".lock"):
            return False
    except LockHeldError:
        return True


def test_a_failed_checkpoint_write_leaves_no_partial_checkpoint(tmp_path):
    import errno

    from tem_rf.train.resume import save_checkpoint

    class FullDisk:
        directory = str(tmp_path)

        def save(self, checkpoint_number):
            (tmp_path / f"ckpt-{checkpoint_number}.index.tempstate42").write_bytes(b"half")
            (tmp_path / f"ckpt-{checkpoint_number}_temp").mkdir()
            (tmp_path / f"ckpt-{checkpoint_number}_temp" / "part-00000-of-00001.data").write_bytes(b"half")
            raise OSError(errno.ENOSPC, "No space left on device")

    for name in ("ckpt-1.index", "ckpt-20.index", "checkpoint"):  # of earlier epochs: kept
        (tmp_path / name).write_bytes(b"a complete checkpoint")
    with pytest.raises(training.TrainingError) as failed:
        save_checkpoint(FullDisk(), 2)
    assert str(failed.value) == f"{tmp_path / 'ckpt-2'}: cannot write the checkpoint (No space left on device)"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint", "ckpt-1.index", "ckpt-20.index"]


def test_auto_precision_is_float32_on_cpu():
    assert training.resolve_precision("auto") == "float32"
    assert training.resolve_precision("mixed_bfloat16") == "mixed_bfloat16"


def test_mixed_bfloat16_trains_with_float32_outputs(tiny_data, tmp_path):
    results = training.train(_config(tiny_data, tmp_path / "run", epochs=1, precision="mixed_bfloat16"),
                             progress=False)
    assert np.isfinite(results["test_loss"])
    assert read_json(tmp_path / "run" / "config.json")["precision"] == "mixed_bfloat16"


@pytest.mark.large  # the GPU precision path on the CPU: a training of its own
def test_mixed_float16_uses_loss_scaling_and_learns(tiny_data, tmp_path):
    # The GPU default; float16 kernels also run on the CPU, so the loss-scaling path is tested here.
    import keras

    trainer = training.Trainer(_config(tiny_data, tmp_path / "run", epochs=2, precision="mixed_float16"))
    assert isinstance(trainer.optimizer, keras.optimizers.LossScaleOptimizer)
    assert trainer.model.get_layer("enc1_conv1").compute_dtype == "float16"
    assert trainer.model.get_layer("probabilities").compute_dtype == "float32"
    results = trainer.fit(progress=False)
    losses = [float(r["train_loss"]) for r in _history(tmp_path / "run")]
    assert np.isfinite(results["test_loss"]) and losses[-1] < losses[0]


def test_a_run_records_the_particle_sizes_it_learned(tmp_path):
    import numpy as np
    import tifffile

    from tem_rf import data
    from tem_rf.serve.export_metadata import build_metadata

    rows, cols = np.mgrid[:96, :96]
    pairs = []
    for index in range(3):  # two whole discs of radius 10 each: 21 px across
        mask = (((rows - 30) ** 2 + (cols - 30) ** 2 <= 100) | ((rows - 64) ** 2 + (cols - 60) ** 2 <= 100))
        image = np.random.default_rng(index).poisson(300, (96, 96)) - 100 * mask
        tifffile.imwrite(tmp_path / f"m{index}.tif", image.astype(np.uint16))
        tifffile.imwrite(tmp_path / f"m{index}_mask.tif", mask.astype(np.uint8) * 255)
        pairs.append((tmp_path / f"m{index}.tif", tmp_path / f"m{index}_mask.tif"))
    info = data.build_dataset(pairs, tmp_path / "data", patch_size=32, min_particle_pixels=20,
                              split_fractions=(0.34, 0.33, 0.33), num_shards=1, progress=False)
    sizes = info["particle_diameter_px"]
    assert sizes["count"] == 2 and sizes["median"] == pytest.approx(np.sqrt(4 * 317 / np.pi), abs=0.01)
    config = training.Trainer(_config(tmp_path / "data", tmp_path / "run")).resolved_config()
    assert config["particle_diameter_px"] == sizes
    assert build_metadata(_network_of(config), config)["particle_diameter_px"] == sizes


def _network_of(config):
    from tem_rf.models import residual_unet

    return residual_unet(config["num_blocks"], config["pool_sizes"], config["dilations"])


@pytest.mark.parametrize("edit", [lambda config: {}, lambda config: {k: v for k, v in config.items() if k != "pool_sizes"},
                                  lambda config: {**config, "num_blocks": None}], ids=["empty", "no-pools", "null-depth"])
def test_a_damaged_config_never_resumes_into_another_network(one_epoch_run, tiny_data, tmp_path, edit):
    run = _copy_run(one_epoch_run, tmp_path)
    config = read_json(run / "config.json")
    (run / "config.json").write_text(json.dumps(edit(config)))
    before = _snapshot(run)
    with pytest.raises(training.TrainingError, match=r"config\.json: lacks .*so the network its checkpoints hold is unknown"):
        training.train(_config(tiny_data, run, epochs=2, num_blocks=3, num_images=0), progress=False)  # another network
    assert _snapshot(run) == before


@pytest.mark.parametrize("index", ["names a deleted checkpoint", "deleted"])
def test_a_damaged_checkpoint_index_resumes_from_the_checkpoint_that_is_there(one_epoch_run, tiny_data, tmp_path,
                                                                             caplog, index):
    run = _copy_run(one_epoch_run, tmp_path)
    if index == "deleted":
        (run / "checkpoints" / "checkpoint").unlink()
    else:
        (run / "checkpoints" / "checkpoint").write_text('model_checkpoint_path: "ckpt-5"\n'
                                                         'all_model_checkpoint_paths: "ckpt-5"\n')
    first_epoch = _history(one_epoch_run)[0]
    with caplog.at_level("WARNING"):
        results = training.train(_config(tiny_data, run, epochs=2, num_images=0), progress=False)
    assert "resuming from" in caplog.text and "ckpt-1, the newest checkpoint in the folder" in caplog.text
    assert results["epochs_trained"] == 2
    history = _history(run)
    assert [int(row["epoch"]) for row in history] == [1, 2] and history[0] == first_epoch  # epoch 1 not trained again


def test_a_truncated_checkpoint_data_file_is_named(one_epoch_run, tiny_data, tmp_path):
    run = _copy_run(one_epoch_run, tmp_path)
    data = next((run / "checkpoints").glob("ckpt-1.data-*"))
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    before = _snapshot(run)
    with pytest.raises(training.TrainingError, match="ckpt-1: corrupt or unreadable checkpoint"):
        training.train(_config(tiny_data, run, epochs=2, num_images=0), progress=False)
    assert _snapshot(run) == before


def test_a_resume_on_a_rebuilt_dataset_is_refused(one_epoch_run, tiny_dataset, tmp_path):
    from tem_rf.data.dataset import build_dataset, dataset_fingerprint
    from tem_rf.data.source_files import find_image_files, match_masks

    run = _copy_run(one_epoch_run, tmp_path)
    info = read_json(tiny_dataset / "dataset.json")
    assert read_json(run / "config.json")["dataset_fingerprint"] == dataset_fingerprint(info)
    # The same micrographs built again with another split, in place of the run's dataset.
    demo = tiny_dataset.parent / "demo_low_res"
    rebuilt = tmp_path / "rebuilt"
    build_dataset(match_masks(find_image_files(demo / "images"), demo / "labels"), rebuilt, patch_size=32,
                  min_particle_pixels=20, split_fractions=(0.6, 0.2, 0.2), seed=7, num_shards=2, progress=False)
    config = read_json(run / "config.json")
    (run / "config.json").write_text(json.dumps({**config, "data_dir": str(rebuilt)}))
    before = _snapshot(run)
    with pytest.raises(training.TrainingError, match="the dataset in --data_dir was rebuilt"):
        training.train(_config(rebuilt, run, epochs=2, num_images=0), progress=False)
    assert _snapshot(run) == before


def test_a_shard_of_another_build_is_refused_though_size_and_count_agree(tiny_dataset, tmp_path):
    from tem_rf import data
    from tem_rf.core.errors import InputError

    copy = tmp_path / "data"
    shutil.copytree(tiny_dataset, copy)
    info = read_json(copy / "dataset.json")
    shard = copy / info["splits"]["train"]["shards"][0]["file"]
    # Another valid shard of the same size and count: its first two records swapped, as another
    # build of the same images could have written them.
    records = [r.numpy() for r in tf.data.TFRecordDataset(str(shard))]
    assert len(records) >= 2 and len(records[0]) == len(records[1]) and records[0] != records[1]
    records[0], records[1] = records[1], records[0]
    with tf.io.TFRecordWriter(str(shard)) as writer:
        for record in records:
            writer.write(record)
    assert shard.stat().st_size == info["splits"]["train"]["shards"][0]["bytes"]
    with pytest.raises(InputError, match="is not the shard this dataset wrote"):
        data.load_split(copy, "train", 4)


@pytest.mark.large
def test_a_run_on_some_micrographs_with_set_epoch_steps_continues_its_data_stream(tiny_data, tmp_path):
    """--train_images picks the seed's nested micrographs; --epoch_steps makes every epoch that many
    batches, epoch e starting where e - 1 stopped in the endless seeded stream of passes."""
    from tem_rf.data import load_split, training_subset

    info = read_json(tiny_data / "dataset.json")
    chosen = training_subset(info, 1, seed=752)
    trainer = training.Trainer(_config(tiny_data, tmp_path / "run", train_images=1, epoch_steps=3, epochs=2,
                                       num_images=0))
    assert trainer.train_sources == chosen and trainer.steps_per_epoch == 3

    def batches(dataset):
        return [(images.numpy(), labels.numpy()) for images, labels in dataset]

    stream = batches(load_split(tiny_data, "train", 8, sources=chosen, augment=True, shuffle_seed=752,
                                repeat=True, drop_remainder=True).take(6))
    for epoch in (0, 1):
        got = batches(trainer._train_data(epoch))
        assert len(got) == 3
        for (image, label), (want_image, want_label) in zip(got, stream[3 * epoch:3 * epoch + 3]):
            np.testing.assert_array_equal(image, want_image)
            np.testing.assert_array_equal(label, want_label)
    results = trainer.fit(progress=False)
    assert results["epochs_trained"] == 2
    config = read_json(tmp_path / "run" / "config.json")
    assert (config["train_images"], config["train_sources"], config["epoch_steps"], config["steps_per_epoch"]) == (
        1, chosen, 3, 3)
    with pytest.raises(training.TrainingError, match=r"--train_images=9: the training split has 3 micrographs; "
                                                     "cannot choose 9"):
        training.Trainer(_config(tiny_data, tmp_path / "other", train_images=9))


@pytest.mark.large  # two trainings
def test_a_dataset_rebuilt_while_training_stops_the_run_and_keeps_the_last_good_epoch(tiny_data, tmp_path,
                                                                                     monkeypatch):
    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    original = (data / "dataset.json").read_text()
    run = tmp_path / "run"
    real_evaluate = training.Trainer.evaluate
    calls = []

    def rebuilt_during_epoch_two(self, split, *args, **kwargs):
        calls.append(split)
        if calls.count("val") == 2:  # make_tfrecords --overwrite swapped another build in meanwhile
            info = json.loads(original)
            info["splits"]["train"]["shards"][0]["sha256"] = "0" * 64
            (data / "dataset.json").write_text(json.dumps(info))
        return real_evaluate(self, split, *args, **kwargs)

    monkeypatch.setattr(training.Trainer, "evaluate", rebuilt_during_epoch_two)
    with pytest.raises(training.TrainingError, match=r"data: the dataset was rebuilt or changed while this run "
                                                     r"trained \(noticed after epoch 2\); that epoch is not kept, "
                                                     r"the last checkpoint \(epoch 1\) is"):
        training.train(_config(data, run, epochs=2, num_images=0), progress=False)
    assert [row["epoch"] for row in _history(run)] == ["1"] and not (run / "metrics.json").exists()
    monkeypatch.setattr(training.Trainer, "evaluate", real_evaluate)
    (data / "dataset.json").write_text(original)  # the dataset it started on: it resumes
    results = training.train(_config(data, run, epochs=2, num_images=0), progress=False)
    assert results["epochs_trained"] == 2 and [row["epoch"] for row in _history(run)] == ["1", "2"]
