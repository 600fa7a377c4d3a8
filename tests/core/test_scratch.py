"""Disk-backed scratch arrays (`tem_rf.core.scratch`)."""

import gc
import tempfile

import numpy as np

from tem_rf.core.scratch import scratch_array


def test_a_scratch_array_is_a_zeroed_writable_map_of_a_file_that_leaves_nothing_behind(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    array = scratch_array((300, 200, 2), np.float32)
    assert isinstance(array, np.memmap) and array.shape == (300, 200, 2) and array.dtype == np.float32
    assert not array.any()
    array[..., 1] = 0.25
    view = array[..., 1]
    assert list(tmp_path.iterdir()) == []  # its file is deleted while mapped: nothing to clean up after a kill
    del array
    gc.collect()
    assert float(view.sum()) == 0.25 * 300 * 200  # the map lives as long as a view of it
    assert scratch_array((0, 5), np.uint8).shape == (0, 5)
