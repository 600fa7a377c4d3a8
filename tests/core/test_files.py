"""core.files.atomic_directory: a folder appears whole or not at all, and only what the caller
agreed to replace is ever replaced; on any failure nothing is left behind."""

import errno
import hashlib
import os

import pytest

from tem_rf.core import files
from tem_rf.core.files import atomic_directory


def tree(root):
    """Every path under ``root`` (hidden ones too) with a hash of its bytes, or "dir"."""
    return {
        str(path.relative_to(root)): "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
    }


def _fill(folder, text):
    with atomic_directory(folder, check=lambda target: None) as tmp:
        (tmp / "content.txt").write_text(text)
        (tmp / "sub").mkdir()
        (tmp / "sub" / "more.txt").write_text(text)


def test_new_folder_appears_whole_with_usual_permissions(tmp_path):
    target = tmp_path / "a" / "b" / "out"
    with atomic_directory(target) as tmp:
        assert tmp.parent == target.parent and tmp.name.startswith(".out.tmp-")
        assert not target.exists()
        (tmp / "x.txt").write_text("x")
    assert (target / "x.txt").read_text() == "x"
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o777 & ~umask
    assert sorted(p.name for p in target.parent.iterdir()) == ["out"]


def test_empty_folder_may_be_the_target(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    with atomic_directory(target) as tmp:
        (tmp / "x.txt").write_text("x")
    assert (target / "x.txt").read_text() == "x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


@pytest.mark.parametrize("kind", ["file", "non_empty_folder", "symlink"])
def test_without_check_anything_but_an_empty_folder_is_refused(tmp_path, kind):
    target = tmp_path / "out"
    if kind == "file":
        target.write_text("mine")
    elif kind == "non_empty_folder":
        target.mkdir()
        (target / "mine.txt").write_text("mine")
    else:
        (tmp_path / "real").mkdir()
        target.symlink_to(tmp_path / "real")
    before = tree(tmp_path)
    with pytest.raises(FileExistsError, match=f"^{target}: "):
        with atomic_directory(target) as tmp:
            (tmp / "x.txt").write_text("x")
    assert tree(tmp_path) == before


def test_a_file_is_refused_even_when_check_allows_it(tmp_path):
    target = tmp_path / "out"
    target.write_text("mine")
    with pytest.raises(FileExistsError, match="exists and is not a folder"):
        with atomic_directory(target, check=lambda _: None):
            pass
    assert target.read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_check_refusal_happens_before_anything_is_made(tmp_path):
    def refuse(target):
        raise ValueError(f"{target}: no")

    target = tmp_path / "new" / "out"
    with pytest.raises(ValueError, match="no"):
        with atomic_directory(target, check=refuse):
            pytest.fail("the block must not run")
    assert list(tmp_path.iterdir()) == []


def test_check_allowing_replacement_replaces_and_leaves_nothing_aside(tmp_path):
    target = tmp_path / "out"
    _fill(target, "old")
    _fill(target, "new")
    assert sorted(tree(target)) == ["content.txt", "sub", "sub/more.txt"]
    assert (target / "content.txt").read_text() == (target / "sub" / "more.txt").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_check_runs_again_before_the_swap(tmp_path):
    """Something that appears at the target while the folder is written is not replaced."""
    target = tmp_path / "out"
    calls = []

    def check(path):
        calls.append(path)
        if path.exists():
            raise ValueError(f"{path}: appeared meanwhile")

    with pytest.raises(ValueError, match="appeared meanwhile"):
        with atomic_directory(target, check=check) as tmp:
            (tmp / "x.txt").write_text("new")
            target.mkdir()
            (target / "theirs.txt").write_text("theirs")
    assert len(calls) == 2
    assert tree(target) == {"theirs.txt": hashlib.sha256(b"theirs").hexdigest()}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


@pytest.mark.parametrize("error", [OSError(errno.ENOSPC, "No space left on device"), KeyboardInterrupt()])
@pytest.mark.parametrize("existing", [False, True])
def test_failure_in_the_block_leaves_nothing_behind(tmp_path, error, existing):
    target = tmp_path / "made" / "out"
    if existing:
        _fill(target, "old")
    before = tree(tmp_path)
    with pytest.raises(type(error)):
        with atomic_directory(target, check=lambda _: None) as tmp:
            (tmp / "half.txt").write_text("half")
            raise error
    # also the parent folder "made" is gone when it was made for this write
    assert tree(tmp_path) == before


def test_failed_rename_into_place_restores_the_old_folder(tmp_path, monkeypatch):
    target = tmp_path / "out"
    _fill(target, "old")
    before = tree(tmp_path)
    real_rename = os.rename
    renames = []

    def failing_rename(source, destination):
        renames.append((str(source), str(destination)))
        if len(renames) == 2:  # the first moves the old folder aside, the second would put the new one in
            raise OSError(errno.EIO, "Input/output error")
        return real_rename(source, destination)

    monkeypatch.setattr(files.os, "rename", failing_rename)
    with pytest.raises(OSError, match="Input/output error"):
        with atomic_directory(target, check=lambda _: None) as tmp:
            (tmp / "content.txt").write_text("new")
    assert len(renames) == 3 and renames[2] == (renames[0][1], str(target))  # put back
    assert tree(tmp_path) == before


def test_a_failed_write_names_the_file_it_was_writing(tmp_path):
    import errno

    from tem_rf.core.errors import WriteError
    from tem_rf.core.files import atomic_path

    target = tmp_path / "particles.csv"
    target.write_text("a user's table\n")
    with pytest.raises(WriteError, match=r"particles\.csv: cannot write \(No space left on device\)$") as raised:
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise OSError(errno.ENOSPC, "No space left on device")  # as a write() into a full disk raises
    assert isinstance(raised.value, OSError) and raised.value.errno == errno.ENOSPC
    assert target.read_text() == "a user's table\n" and [p.name for p in tmp_path.iterdir()] == ["particles.csv"]
    with pytest.raises(FileNotFoundError, match="elsewhere"):  # an error about another file stays as it is
        with atomic_path(target):
            open(tmp_path / "elsewhere" / "x")
