"""tem_rf.core.manifest: what in a folder tem_rf did not write, and the refusal that names it."""

import os

import pytest

from tem_rf.core.errors import InputError, TemRfError
from tem_rf.core.manifest import check_only_owned, foreign_entries, owned_folders

OWNED = ["dataset.json", "train/train-00000-of-00001.tfrecord", "val/deep/val-00000-of-00001.tfrecord"]


def _make(root, files):
    for name in files:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(name)


def test_owned_folders_lead_to_owned_files_and_include_empty_ones():
    assert owned_folders(OWNED, ["test"]) == {"train", "val", "val/deep", "test"}


def test_a_folder_of_only_owned_files_has_nothing_foreign(tmp_path):
    _make(tmp_path, OWNED)
    (tmp_path / "test").mkdir()  # an empty split folder the writer made
    assert foreign_entries(tmp_path, OWNED, ["test"]) == []
    check_only_owned(tmp_path, OWNED, ["test"], record="dataset.json")  # no error


def test_foreign_files_folders_and_links_are_named_once_each(tmp_path):
    _make(tmp_path, OWNED + ["notes.txt", "val/deep/mine.tfrecord", "run/ckpt/weights.h5", "run/config.json"])
    (tmp_path / "empty_of_mine").mkdir()
    os.symlink(tmp_path / "notes.txt", tmp_path / "train" / "train-00001-of-00001.tfrecord")
    assert foreign_entries(tmp_path, OWNED + ["train/train-00001-of-00001.tfrecord"]) == [
        "empty_of_mine/", "notes.txt", "run/", "train/train-00001-of-00001.tfrecord", "val/deep/mine.tfrecord",
    ]


def test_an_owned_name_that_is_a_folder_is_foreign(tmp_path):
    _make(tmp_path, ["dataset.json/inside.txt"])
    assert foreign_entries(tmp_path, ["dataset.json"]) == ["dataset.json/"]


def test_the_refusal_names_the_folder_the_first_entries_and_counts_the_rest(tmp_path):
    _make(tmp_path, ["dataset.json", "a.txt", "b.txt", "c.txt", "d.txt", "e.txt"])
    with pytest.raises(InputError) as raised:
        check_only_owned(tmp_path, ["dataset.json"], record="dataset.json")
    assert str(raised.value) == (
        f"{tmp_path}: holds a.txt, b.txt, c.txt and 2 more, which tem_rf did not write (not listed in its "
        "dataset.json); --overwrite replaces only what tem_rf wrote: move them out or choose another folder"
    )
    assert isinstance(raised.value, TemRfError) and raised.value.path == tmp_path
