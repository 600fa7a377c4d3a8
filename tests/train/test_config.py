"""tem_rf.train.config's resume contract: which changed settings a resume refuses."""

from tem_rf.train.config import resume_changes


def test_a_moved_dataset_resumes_and_another_dataset_does_not():
    saved = {"data_dir": "/old/ds", "learning_rate": 0.01, "dataset_fingerprint": "a" * 64}
    moved = {"data_dir": "/new/ds", "learning_rate": 0.01, "dataset_fingerprint": "a" * 64}
    assert resume_changes(saved, moved) == []  # the same content somewhere else
    rebuilt = {**moved, "dataset_fingerprint": "b" * 64}
    (change,) = resume_changes(saved, rebuilt)
    assert change.name == "data_dir"  # another folder holding another dataset
    assert change.describe().startswith("--data_dir is /new/ds but this run was trained with /old/ds")
    older = {"data_dir": "/old/ds", "learning_rate": 0.01}  # a config.json without a fingerprint
    assert [c.name for c in resume_changes(older, moved)] == ["data_dir"]
    assert [c.name for c in resume_changes(saved, {**moved, "learning_rate": 0.1})] == ["learning_rate"]
