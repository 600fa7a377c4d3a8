"""Shared test setup: quiet TensorFlow, two logical CPU devices, a fresh Keras state per test, and
read-only inputs built once per test process (a tiny dataset and a one-epoch run on it)."""

import gc
import hashlib
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import pytest  # noqa: E402


def pytest_configure(config):
    import tensorflow as tf

    # Two logical CPUs so MirroredStrategy tests run on a machine without GPUs. This must happen
    # before TensorFlow initialises its devices, i.e. before any test touches a tensor.
    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2
        )
    except RuntimeError:
        pass


def pytest_collection_finish(session):
    # Every test starts with `keras.backend.clear_session()`, which runs a full garbage collection.
    # With TensorFlow, Keras and all test modules imported that walk took ~0.2 s a test (about a
    # third of the fast suite); the modules loaded by now live as long as the process, so they
    # move to the permanent generation and each collection walks only what the tests made.
    gc.collect()
    gc.freeze()


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    import keras

    # Keras' names and settings start afresh; the full garbage collection clear_session would run
    # is left to Python's own collector: after a few hundred tests that had made models, datasets
    # and graphs it took 0.1-0.2 s a test, the largest cost of the fast suite.
    keras.backend.clear_session(free_memory=False)
    keras.mixed_precision.set_global_policy("float32")
    yield
    keras.mixed_precision.set_global_policy("float32")


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _read_only(root: Path):
    """Yields ``root``; afterwards fails the session if a test changed, added or removed a file."""
    before = _digest(root)
    yield root
    assert _digest(root) == before, f"{root}: a test changed this shared read-only input; work on a copy"


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """`make_tiny_dataset`'s default dataset (5 low-res demo micrographs, 32 px patches), read-only."""
    from training_helpers import make_tiny_dataset

    yield from _read_only(make_tiny_dataset(tmp_path_factory.mktemp("tiny_dataset")))


@pytest.fixture(scope="session")
def one_epoch_run(tiny_dataset, tmp_path_factory):
    """A finished one-epoch run on `tiny_dataset` (N=2, pools 2, batch 8, learning rate 1e-2, seed
    752, float32, no TensorBoard images), read-only: tests that train on or change it use a copy."""
    from training_helpers import train_config
    from tem_rf import train

    run = tmp_path_factory.mktemp("one_epoch") / "run"
    train.train(train_config(tiny_dataset, run, epochs=1, num_images=0), progress=False)
    yield from _read_only(run)


@pytest.fixture(scope="session")
def boundary_run(tiny_dataset, tmp_path_factory):
    """A finished 3-epoch boundary-target run on `tiny_dataset` (boundary width 1, otherwise as
    `one_epoch_run`) with its instance rule fitted (`train_and_fit`), and its results; read-only."""
    import keras

    from training_helpers import train_config
    from tem_rf.serve.instance_rule import train_and_fit

    run = tmp_path_factory.mktemp("boundary") / "run"
    keras.backend.clear_session()
    results = train_and_fit(train_config(tiny_dataset, run, epochs=3, num_images=1, target="boundary",
                                         boundary_width=1), progress=False)
    for root in _read_only(run):
        yield root, results
