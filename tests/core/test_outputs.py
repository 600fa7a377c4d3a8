"""tem_rf.core.outputs: result files never replace a user's file without overwrite, and land whole
or not at all."""

import os

import pytest

from tem_rf.core import outputs
from tem_rf.core.errors import InputError
from tem_rf.core.outputs import check_new_files, new_files


def _tree(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_new_files_land_together_with_the_usual_permissions(tmp_path):
    targets = [tmp_path / "out" / "scores.csv", tmp_path / "out" / "deeper" / "scores.json"]
    with new_files(targets, overwrite=False) as temporary:
        assert sorted(temporary) == sorted(targets)
        for target, path in temporary.items():
            assert path.parent == target.parent and path.name.startswith(".") and not path.exists()
            path.write_text(target.name)
        assert not any(t.exists() for t in targets)  # nothing in place before the block ends
    assert _tree(tmp_path) == {"out/scores.csv": b"scores.csv", "out/deeper/scores.json": b"scores.json"}
    umask = os.umask(0)
    os.umask(umask)
    assert (targets[0].stat().st_mode & 0o777) == 0o666 & ~umask


def test_an_existing_file_is_refused_without_overwrite_and_replaced_with_it(tmp_path):
    (tmp_path / "a.csv").write_text("mine")
    with pytest.raises(InputError, match=r"a\.csv: exists; pass --overwrite to replace it"):
        with new_files([tmp_path / "b.json", tmp_path / "a.csv"], overwrite=False):
            pytest.fail("the block ran")
    assert _tree(tmp_path) == {"a.csv": b"mine"}
    with pytest.raises(InputError, match=r"a\.csv: exists; pass --json_overwrite"):
        check_new_files([tmp_path / "a.csv"], overwrite=False, flag="--json_overwrite")
    with new_files([tmp_path / "a.csv"], overwrite=True) as temporary:
        temporary[tmp_path / "a.csv"].write_text("new")
    assert _tree(tmp_path) == {"a.csv": b"new"}


def test_folders_and_files_in_the_way_are_refused_even_with_overwrite(tmp_path):
    (tmp_path / "a.csv").mkdir()
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(InputError, match=r"a\.csv: is a folder"):
        check_new_files([tmp_path / "a.csv"], overwrite=True)
    with pytest.raises(InputError, match=r"notes\.txt: cannot write x\.csv into it: it is a file, not a folder"):
        check_new_files([tmp_path / "notes.txt" / "sub" / "x.csv"], overwrite=True)


@pytest.mark.parametrize("failure", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_a_failure_in_the_block_leaves_the_previous_result_and_no_temporary(tmp_path, failure):
    (tmp_path / "a.csv").write_text("old a")
    (tmp_path / "b.json").write_text("old b")
    with pytest.raises(type(failure)):
        with new_files([tmp_path / "a.csv", tmp_path / "b.json", tmp_path / "new" / "c.png"], overwrite=True) as temporary:
            temporary[tmp_path / "a.csv"].write_text("new a")
            raise failure
    assert _tree(tmp_path) == {"a.csv": b"old a", "b.json": b"old b"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "b.json"]  # no temporary, no folder "new"


def test_a_rename_failing_half_way_puts_the_previous_result_back(tmp_path, monkeypatch):
    (tmp_path / "a.csv").write_text("old a")
    (tmp_path / "b.json").write_text("old b")
    real_rename = os.rename
    renames = []

    def rename_then_fail(source, target):
        renames.append(target)
        if len(renames) == 4:  # both old files aside, the first new one in place: the disk fails
            raise OSError(5, "Input/output error")
        real_rename(source, target)

    monkeypatch.setattr(outputs.os, "rename", rename_then_fail)
    with pytest.raises(OSError, match="Input/output error"):
        with new_files([tmp_path / "a.csv", tmp_path / "b.json"], overwrite=True) as temporary:
            temporary[tmp_path / "a.csv"].write_text("new a")
            temporary[tmp_path / "b.json"].write_text("new b")
    monkeypatch.undo()
    assert _tree(tmp_path) == {"a.csv": b"old a", "b.json": b"old b"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "b.json"]


def test_a_part_not_written_again_goes_with_the_previous_result(tmp_path):
    (tmp_path / "optional.png").write_text("from the previous analysis")
    with new_files([tmp_path / "table.csv", tmp_path / "optional.png"], overwrite=True) as temporary:
        temporary[tmp_path / "table.csv"].write_text("new")
    assert _tree(tmp_path) == {"table.csv": b"new"}


def test_a_file_made_at_a_target_meanwhile_is_not_replaced(tmp_path):
    with pytest.raises(InputError, match=r"a\.csv: exists; pass --overwrite"):
        with new_files([tmp_path / "a.csv"], overwrite=False) as temporary:
            temporary[tmp_path / "a.csv"].write_text("new")
            (tmp_path / "a.csv").write_text("another process's")
    assert _tree(tmp_path) == {"a.csv": b"another process's"}


def test_a_write_journal_rolls_back_to_the_previous_files_or_commits_the_new_ones(tmp_path):
    from tem_rf.core.outputs import WriteJournal

    (tmp_path / "a_mask.tif").write_text("old a")
    for keep in (False, True):
        journal = WriteJournal()
        journal.claim([tmp_path / "a_mask.tif", tmp_path / "b_mask.tif"])
        assert not (tmp_path / "a_mask.tif").exists()  # set aside, under a hidden name
        (tmp_path / "a_mask.tif").write_text("new a")
        (tmp_path / "b_mask.tif").write_text("new b")
        if keep:
            journal.commit()
            assert _tree(tmp_path) == {"a_mask.tif": b"new a", "b_mask.tif": b"new b"}
        else:
            journal.roll_back()
            assert _tree(tmp_path) == {"a_mask.tif": b"old a"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_mask.tif", "b_mask.tif"]
