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


def test_no_room_for_a_scratch_array_is_one_error_naming_the_folder(tmp_path, monkeypatch):
    # Without the reservation, a full disk would end the process with SIGBUS at the first write.
    import errno
    import os

    import pytest

    from tem_rf.core.errors import WriteError

    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(os, "posix_fallocate", full)
    with pytest.raises(WriteError) as refused:
        scratch_array((1000, 1000, 2), np.float32)
    assert str(refused.value) == (f"{tmp_path}: cannot write (no room in the temporary folder {tmp_path} for 0.008 GB "
                                  "of scratch maps of a large micrograph (No space left on device); set TMPDIR to a "
                                  "folder with room)")
    assert list(tmp_path.iterdir()) == []
