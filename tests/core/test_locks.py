"""tem_rf.core.locks: one writer per output, and a killed writer's temporaries cleared under the lock."""

import os
import subprocess
import sys

import pytest

from tem_rf.core.errors import TemRfError
from tem_rf.core.locks import OutputInUseError, lock_file, output_lock, remove_stale_temporaries, stale_temporaries


def test_a_second_writer_is_refused_at_once_and_the_lock_leaves_nothing(tmp_path):
    target = tmp_path / "new" / "deeper" / "out"
    with output_lock(target):
        assert lock_file(target) == tmp_path / "new" / "deeper" / ".out.lock"
        assert lock_file(target).read_text() == f"{os.getpid()}\n"
        with pytest.raises(OutputInUseError) as raised:
            with output_lock(tmp_path / "new" / "deeper" / ".." / "deeper" / "out"):  # the same output
                pytest.fail("two writers")
        assert str(raised.value) == (
            f"{tmp_path / 'new' / 'deeper' / '..' / 'deeper' / 'out'}: another tem_rf command (pid {os.getpid()}) "
            "is writing this output; wait for it to end or choose another output"
        )
        assert isinstance(raised.value, TemRfError) and isinstance(raised.value, ValueError)
        with output_lock(tmp_path / "new" / "deeper" / "other"):  # another output: no conflict
            pass
    assert list(tmp_path.iterdir()) == []  # the lock file and the folders made for it are gone
    with output_lock(target):  # free again
        pass


def test_the_lock_is_held_against_another_process_and_dies_with_it(tmp_path):
    target = tmp_path / "out"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys\nfrom tem_rf.core.locks import output_lock\n"
         f"with output_lock({str(target)!r}):\n    print('held', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(OutputInUseError, match=f"pid {holder.pid}"):
            with output_lock(target):
                pass
    finally:
        holder.kill()
        holder.wait()
    with output_lock(target):  # killed: the lock died with it (its file may stay; it is reused)
        pass


def test_stale_temporaries_are_the_targets_own_only(tmp_path):
    mine = [".a.csv.abcd1234.tmp", "..a.csv.abcd1234.tmp.zz99zz99.tmp", ".a.csv.old.abcd1234.tmp",
            ".export.tmp-abcd1234", ".export.old-abcd1234"]
    others = [".a.csvx.abcd1234.tmp", ".b.csv.abcd1234.tmp", ".a.csv.notes", "a.csv", ".export.lock", ".a.abcd1234.tmp"]
    for name in mine + others:
        (tmp_path / name).write_text("x")
    (tmp_path / ".export.tmp-ffff0000").mkdir()
    (tmp_path / ".export.tmp-ffff0000" / "saved_model.pb").write_text("half an export")
    expected = sorted(tmp_path / name for name in mine + [".export.tmp-ffff0000"])
    assert stale_temporaries([tmp_path / "a.csv", tmp_path / "export", tmp_path / "missing" / "x"]) == expected
    kept = tmp_path / ".export.tmp-abcd1234"
    removed = remove_stale_temporaries([tmp_path / "a.csv", tmp_path / "export"], keep=[kept])
    assert sorted(removed) == sorted(set(expected) - {kept})
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(others + [kept.name])
