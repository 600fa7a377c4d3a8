"""Disk-backed scratch arrays: the maps of a micrograph too large to hold twice in memory.

A scratch array is a `numpy.memmap` of a temporary file that is already deleted (POSIX keeps the
file while it is mapped), in the system's temporary folder (``TMPDIR``): nothing is left behind,
even when the process is killed, and its pages are written out and dropped by the system under
memory pressure instead of counting as the process's own memory. Where ``TMPDIR`` lies in
memory (tmpfs) it is no larger than an ordinary array.
"""

from __future__ import annotations

import tempfile

import numpy as np


def scratch_array(shape: tuple[int, ...], dtype: np.dtype | type) -> np.ndarray:
    """A writable array of ``shape`` and ``dtype`` on a deleted temporary file, zero-filled."""
    dtype = np.dtype(dtype)
    size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if size == 0:
        return np.zeros(shape, dtype)
    with tempfile.TemporaryFile(prefix="tem_rf-scratch-") as backing:
        backing.truncate(size)
        # The mapping holds the file open; closing our handle and its deletion leave it in place.
        return np.memmap(backing, dtype=dtype, mode="w+", shape=shape)
