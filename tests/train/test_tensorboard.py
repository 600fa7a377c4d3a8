"""TensorBoard records of a run and a sweep, read back through TensorBoard's own loading code.

Scalars, images and HParams summaries are read with the `EventAccumulator` TensorBoard's data
provider loads event files with (`plugin_event_accumulator`: TF2 summaries are tensors tagged
with their plugin), the HParams plugin's payloads are parsed with its `metadata` module, and
the HParams dashboard's two API calls (experiment, session groups) are answered by the
plugin's own handlers over a `MultiplexerDataProvider` of the sweep folder.
"""

from __future__ import annotations

import csv

import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing.plugin_event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import api_pb2
from tensorboard.plugins.hparams import metadata as hparams_metadata
from tensorboard.util import tensor_util

from tem_rf import train as training
from tem_rf.train import tensorboard as tb

from training_helpers import read_json

ARCHITECTURES = ("N2_k2-2_d1-1-1", "N2_k2-4_d1-1-1")
PIXEL_SIZE_NM = 0.5  # make_tiny_dataset's


def _accumulator(folder):
    accumulator = EventAccumulator(str(folder), size_guidance={"tensors": 0})  # 0: keep every step
    accumulator.Reload()
    return accumulator


def _series(folder, tag, plugin):
    """(step, value) of every ``tag`` event in ``folder``, checking it is the ``plugin``'s."""
    accumulator = _accumulator(folder)
    assert accumulator.SummaryMetadata(tag).plugin_data.plugin_name == plugin, tag
    return [(event.step, tensor_util.make_ndarray(event.tensor_proto)) for event in accumulator.Tensors(tag)]


def _scalars(folder, tag):
    return [(step, float(value)) for step, value in _series(folder, tag, "scalars")]


def _image_steps(folder, tag):
    return [step for step, _ in _series(folder, tag, "images")]


def _history(run):
    with open(run / "history.csv") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def sweep_run(tmp_path_factory, tiny_dataset):
    """A sweep of two architectures x one seed whose first run is trained (2 epochs)."""
    from tem_rf.study import sweep

    root = tmp_path_factory.mktemp("tensorboard")
    data_dir = tiny_dataset
    architectures = [sweep.Architecture(2, (2, 2), (1, 1, 1)), sweep.Architecture(2, (2, 4), (1, 1, 1))]
    runs = sweep.plan(architectures, (752,))
    base = dict(data_dir=str(data_dir), epochs=2, batch_size=8, learning_rate=1e-2, precision="float32",
                strategy="default", image_every=5, num_images=2)
    sweep_dir = root / "sweep"
    sweep.write_sweep_file(sweep_dir, runs, base)
    sweep.run_sweep(sweep_dir, runs[:1], base, progress=False)
    run = runs[0].run_dir(sweep_dir)
    assert run.name == "seed752" and run.parent.name == ARCHITECTURES[0]
    return sweep_dir, run, data_dir


def test_train_val_and_test_dice_scalars(sweep_run):
    _, run, _ = sweep_run
    metrics = read_json(run / "metrics.json")
    for tag in ("hard_dice", "soft_dice"):
        train = _scalars(run / "logs" / "train", tag)
        val = _scalars(run / "logs" / "val", tag)
        assert [step for step, _ in train] == [1, 2] and [step for step, _ in val] == [1, 2]
        assert all(0.0 <= value <= 1.0 for _, value in train + val)
        (test_step, test_value), = _scalars(run / "logs" / "test", tag)
        assert test_step == 2 and test_value == pytest.approx(metrics[f"test_{tag}"], rel=1e-6)
    best = _scalars(run / "logs" / "val", "best_hard_dice")
    assert best[-1][1] == pytest.approx(metrics["val_hard_dice"], rel=1e-6)
    assert best[1][1] == pytest.approx(max(value for _, value in _scalars(run / "logs" / "val", "hard_dice")))


def test_history_holds_the_logged_train_dice(sweep_run):
    _, run, _ = sweep_run
    history = _history(run)
    for tag in ("hard_dice", "soft_dice"):
        logged = [value for _, value in _scalars(run / "logs" / "train", tag)]
        assert [float(row[f"train_{tag}"]) for row in history] == pytest.approx(logged, rel=1e-6)
    # The soft dice of a network is not its hard dice: two separate metrics were logged.
    assert [row["train_hard_dice"] for row in history] != [row["train_soft_dice"] for row in history]


def test_validation_images_at_the_first_the_last_and_the_best_epochs(sweep_run):
    _, run, data_dir = sweep_run
    val = run / "logs" / "val"
    # --image_every=5 and 2 epochs: epoch 1 (the first) and 2 (the last) only.
    for tag in ("patch", "label", "particle_probability"):
        assert _image_steps(val, tag) == [1, 2], tag
    hard = [float(row["val_hard_dice"]) for row in _history(run)]
    new_best = [1, 2] if hard[1] > hard[0] else [1]
    best = _series(val, "best/particle_probability", "images")
    assert [step for step, _ in best] == new_best and new_best[-1] == read_json(run / "metrics.json")["best_epoch"]
    width, height, *pngs = best[-1][1]  # the images plugin's tensor: width, height, one PNG per image
    val_patches = read_json(data_dir / "dataset.json")["counts"]["val"]
    # 32 px patches coloured, a 1 px gap and the 4 px colour scale; --num_images=2
    assert (int(width), int(height), len(pngs)) == (37, 32, min(2, val_patches))
    assert tf.io.decode_png(pngs[0]).shape == (32, 37, 3)


def test_probability_images_use_one_fixed_colour_scale_shown_beside_them():
    import matplotlib

    lut = matplotlib.colormaps[tb.PROBABILITY_COLOUR_MAP](np.linspace(0, 1, 256))[:, :3]
    probabilities = np.zeros((2, 16, 24, 1), np.float32)
    probabilities[0, :, :12] = 1.0
    probabilities[1, 3, 5] = 0.5
    shown = tb.probability_colour_image(tf.constant(probabilities)).numpy()
    assert shown.shape == (2, 16, 24 + 1 + 4, 3)
    np.testing.assert_allclose(shown[0, 0, 0], lut[255], atol=1e-6)  # 1: the top of the scale, in every image
    np.testing.assert_allclose(shown[0, 0, 12], lut[0], atol=1e-6)
    np.testing.assert_allclose(shown[1, 3, 5], lut[128], atol=1e-6)
    np.testing.assert_array_equal(shown[:, :, 24], 0.0)  # the gap
    np.testing.assert_allclose(shown[0, 0, 25], lut[255], atol=1e-6)  # scale: 1 at the top ...
    np.testing.assert_allclose(shown[0, -1, 28], lut[0], atol=1e-6)  # ... 0 at the bottom
    np.testing.assert_allclose(shown[0, :, 25:], shown[1, :, 25:])  # the same scale whatever the image


@pytest.mark.large
def test_best_images_stop_at_the_best_epoch_when_a_later_one_is_worse(tmp_path, sweep_run):
    _, _, data_dir = sweep_run
    config = training.TrainConfig(data_dir=str(data_dir), model_dir=str(tmp_path / "run"), num_blocks=2,
                                  pool_sizes=(2,), batch_size=8, epochs=2, learning_rate=1e-2, seed=752,
                                  precision="float32", strategy="default", image_every=5, num_images=1)
    trainer = training.Trainer(config)
    real, val_calls = trainer.evaluate, []

    def evaluate(split):  # validation hard dice 0.6 after epoch 1, 0.4 after epoch 2
        result = real(split)
        if split == "val":
            val_calls.append(split)
            if len(val_calls) <= 2:
                result = {**result, "hard_dice": (0.6, 0.4)[len(val_calls) - 1]}
        return result

    trainer.evaluate = evaluate
    trainer.fit(progress=False)
    val = tmp_path / "run" / "logs" / "val"
    assert _image_steps(val, "best/particle_probability") == [1]
    assert _image_steps(val, "particle_probability") == [1, 2]
    assert read_json(tmp_path / "run" / "metrics.json")["best_epoch"] == 1


def test_the_run_logs_its_hparams_session(sweep_run):
    import keras

    import tem_rf.models  # noqa: F401  (registers the custom layers)
    from tem_rf.models.geometry import receptive_field

    _, run, _ = sweep_run
    contents = _accumulator(run / "logs").PluginTagToContent(hparams_metadata.PLUGIN_NAME)
    info = hparams_metadata.parse_session_start_info_plugin_data(contents[hparams_metadata.SESSION_START_INFO_TAG])
    values = {name: getattr(value, value.WhichOneof("kind")) for name, value in info.hparams.items()}
    model = keras.models.load_model(run / "model.keras", compile=False)
    rf = receptive_field(model).pixels
    config = read_json(run / "config.json")
    assert values == {
        "architecture": ARCHITECTURES[0], "num_blocks": 2, "pool_sizes": "2,2", "dilations": "1,1,1",
        "receptive_field_px": rf, "receptive_field_nm": pytest.approx(rf * PIXEL_SIZE_NM),
        "trainable_params": config["trainable_params"], "seed": 752, "learning_rate": pytest.approx(1e-2),
        "batch_size": 8, "precision": "float32", "target": "mask",
    }
    assert rf == config["receptive_field_px"] == 44


def test_the_sweep_root_holds_the_hparams_experiment(sweep_run):
    sweep_dir, _, _ = sweep_run
    contents = _accumulator(sweep_dir / "logs").PluginTagToContent(hparams_metadata.PLUGIN_NAME)
    experiment = hparams_metadata.parse_experiment_plugin_data(contents[hparams_metadata.EXPERIMENT_TAG])
    infos = {info.name: info for info in experiment.hparam_infos}
    assert list(infos) == list(tb.HPARAMS)
    assert [v.string_value for v in infos["architecture"].domain_discrete.values] == list(ARCHITECTURES)
    assert [v.string_value for v in infos["pool_sizes"].domain_discrete.values] == ["2,2", "2,4"]
    assert [v.number_value for v in infos["seed"].domain_discrete.values] == [752]
    rf = infos["receptive_field_px"].domain_interval
    assert (rf.min_value, rf.max_value) == (44, 64)  # pools (2,2) and (2,4): Eq. 1 (README)
    nm = infos["receptive_field_nm"].domain_interval
    assert (nm.min_value, nm.max_value) == pytest.approx((44 * PIXEL_SIZE_NM, 64 * PIXEL_SIZE_NM))
    metrics = {(m.name.group, m.name.tag) for m in experiment.metric_infos}
    assert {("val", "hard_dice"), ("val", "soft_dice"), ("test", "hard_dice"), ("test", "soft_dice"),
            ("train", "hard_dice"), ("train", "soft_dice")} <= metrics


def test_the_hparams_dashboard_shows_the_run_with_its_metrics(sweep_run):
    """The plugin's own handlers of /experiment and /session_groups, as the dashboard calls them."""
    from tensorboard import context
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.hparams import backend_context, get_experiment, list_session_groups

    sweep_dir, run, _ = sweep_run
    multiplexer = plugin_event_multiplexer.EventMultiplexer()
    multiplexer.AddRunsFromDirectory(str(sweep_dir))
    multiplexer.Reload()
    provider = data_provider.MultiplexerDataProvider(multiplexer, str(sweep_dir))
    backend = backend_context.Context(base_plugin.TBContext(
        logdir=str(sweep_dir), multiplexer=multiplexer, data_provider=provider))
    request = context.RequestContext()
    experiment = get_experiment.Handler(request, backend, "", api_pb2.GetExperimentRequest()).run()
    assert sorted(info.name for info in experiment.hparam_infos) == sorted(tb.HPARAMS)
    assert {(m.name.group, m.name.tag) for m in experiment.metric_infos} == set(tb.METRICS)
    statuses = [api_pb2.STATUS_UNKNOWN, api_pb2.STATUS_SUCCESS, api_pb2.STATUS_FAILURE, api_pb2.STATUS_RUNNING]
    groups = list_session_groups.Handler(request, backend, "", api_pb2.ListSessionGroupsRequest(
        start_index=0, slice_size=10, allowed_statuses=statuses)).run()  # what the dashboard asks
    assert groups.total_size == 1
    (group,) = groups.session_groups
    assert group.hparams["architecture"].string_value == ARCHITECTURES[0]
    assert group.hparams["receptive_field_px"].number_value == 44
    (session,) = group.sessions
    assert session.name == f"runs/{ARCHITECTURES[0]}/seed752/logs" and session.status == api_pb2.STATUS_SUCCESS
    values = {(m.name.group, m.name.tag): m.value for m in group.metric_values}
    metrics = read_json(run / "metrics.json")
    history = _history(run)
    assert values[("test", "hard_dice")] == pytest.approx(metrics["test_hard_dice"], rel=1e-6)
    assert values[("test", "soft_dice")] == pytest.approx(metrics["test_soft_dice"], rel=1e-6)
    assert values[("val", "hard_dice")] == pytest.approx(float(history[-1]["val_hard_dice"]), rel=1e-6)
    assert values[("val", "best_hard_dice")] == pytest.approx(metrics["val_hard_dice"], rel=1e-6)
    assert values[("train", "hard_dice")] == pytest.approx(float(history[-1]["train_hard_dice"]), rel=1e-6)


@pytest.mark.parametrize("replicas", [1, pytest.param(2, marks=pytest.mark.large)])
def test_the_train_step_pools_dice_over_the_batch_it_trains_on(replicas):
    """The step's metrics equal dice of a training-mode forward pass over the global batch."""
    import keras

    from tem_rf import metrics as metrics_lib
    from tem_rf.models import residual_unet
    from tem_rf.train.train_step import build_train_step

    strategy = (training.make_strategy("mirrored", ["/cpu:0", "/cpu:1"]) if replicas == 2
                else tf.distribute.get_strategy())
    images = tf.random.stateless_normal((4, 32, 32, 1), seed=(1, 2))
    labels = tf.cast(tf.random.stateless_uniform((4, 32, 32), seed=(3, 4)) > 0.6, tf.int32)
    with strategy.scope():
        model = residual_unet(2, 2, seed=0, synchronized_bn=replicas > 1)
        optimizer = keras.optimizers.SGD(0.0)  # the weights stay: the step sees what we compute below
        optimizer.build(model.trainable_variables)
        hard, soft = metrics_lib.HardDice(), metrics_lib.SoftDice()
    step = build_train_step(strategy, model, optimizer, metrics=(hard, soft))
    dataset = tf.data.Dataset.from_tensors((images, labels))
    for batch in strategy.experimental_distribute_dataset(dataset):
        step(batch)
    probabilities = model(images, training=True).numpy()
    from tem_rf.metrics import hard_dice, soft_dice

    assert float(hard.result()) == pytest.approx(hard_dice(labels.numpy(), probabilities), abs=1e-5)
    assert float(soft.result()) == pytest.approx(soft_dice(labels.numpy(), probabilities), rel=1e-5)
    assert 0.0 < float(soft.result()) < 1.0 and float(hard.result()) != float(soft.result())
    assert np.isfinite(float(hard.result()))
