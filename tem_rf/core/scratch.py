"""Disk-backed scratch arrays: the maps of a micrograph too large to hold twice in memory.

A scratch array is a `numpy.memmap` of a temporary file that is already deleted (POSIX keeps the
file while it is mapped), in the system's temporary folder (``TMPDIR``): nothing is left behind,
even when the process is killed, and its pages are written out and dropped by the system under
memory pressure instead of counting as the process's own memory. Where ``TMPDIR`` lies in
memory (tmpfs) it is no larger than an ordinary array. Its blocks are reserved when it is made,
so a full disk is one error naming the folder, not a crash at the first write.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np

from tem_rf.core.errors import WriteError
from tem_rf.core.files import os_error_text


def scratch_array(shape: tuple[int, ...], dtype: np.dtype | type) -> np.ndarray:
    """A writable array of ``shape`` and ``dtype`` on a deleted temporary file, zero-filled."""
    dtype = np.dtype(dtype)
    size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if size == 0:
        return np.zeros(shape, dtype)
    folder = tempfile.gettempdir()
    try:
        with tempfile.TemporaryFile(prefix="tem_rf-scratch-") as backing:
            # The file's blocks are reserved now: a full disk is this error, not a SIGBUS that
            # kills the process when a page of the map is first written.
            if hasattr(os, "posix_fallocate"):
                os.posix_fallocate(backing.fileno(), 0, size)
            else:
                backing.truncate(size)
            # The mapping holds the file open; closing our handle and its deletion leave it in place.
            return np.memmap(backing, dtype=dtype, mode="w+", shape=shape)
    except OSError as error:
        # The folder is said in the reason too: a caller reporting its own output names only that.
        raise WriteError(folder, f"no room in the temporary folder {folder} for {size / 1e9:.2g} GB of scratch maps "
                                 f"of a large micrograph ({os_error_text(error)}); set TMPDIR to a folder with room",
                         getattr(error, "errno", None)) from None
