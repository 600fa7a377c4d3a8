"""Shared test setup: quiet TensorFlow, two logical CPU devices, a fresh Keras state per test."""

import gc
import os

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

    keras.backend.clear_session()
    keras.mixed_precision.set_global_policy("float32")
    yield
    keras.mixed_precision.set_global_policy("float32")
