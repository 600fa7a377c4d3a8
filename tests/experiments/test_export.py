"""experiments/export.py: a run directory becomes a SavedModel; bad input is one clear line; the
export never deletes or changes what it did not make (refused targets, failures half-way)."""

import errno
import hashlib
import json
import shutil

import numpy as np
import pytest
import tensorflow as tf

from tem_rf.models import residual_unet
from tem_rf.serve.export import export_saved_model

from binaries import call_main

CONFIG = {"architecture": "N2_k2-2_d1-1-1", "num_blocks": 2, "pool_sizes": [2, 2], "pixel_size_nm": 0.02152}
PREVIOUS_CONFIG = {"architecture": "previous", "pixel_size_nm": 0.5}


def _run(*args, all_signatures=False):
    """The binary; unless ``all_signatures``, without raw-micrograph signatures (half a second each):
    what these tests check is the preprocessed signature and what the export writes and keeps."""
    return call_main("experiments.export", *args, *(() if all_signatures else ("--raw_dtypes=",)))


def tree(root):
    """Every path under ``root`` (hidden ones too) with a hash of its bytes, or "dir"."""
    return {
        str(path.relative_to(root)): "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
    }


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """One small run directory and one previous export, copied into each test's folder."""
    root = tmp_path_factory.mktemp("sources")
    model = residual_unet(2, seed=0)
    (root / "run").mkdir()
    model.save(root / "run" / "best.keras")
    (root / "run" / "config.json").write_text(json.dumps(CONFIG))
    export_saved_model(residual_unet(2, seed=1), root / "previous", PREVIOUS_CONFIG, raw_dtypes=())
    x = np.random.default_rng(0).normal(size=(1, 12, 20, 1)).astype("float32")
    return root, x, model(x).numpy()[..., 1]


@pytest.fixture
def work(sources, tmp_path):
    """``tmp_path`` with ``run/`` (best.keras, config.json) and ``previous/`` (a tem_rf export)."""
    root, _, _ = sources
    shutil.copytree(root / "run", tmp_path / "run")
    shutil.copytree(root / "previous", tmp_path / "previous")
    return tmp_path


def _check_export(out_dir, sources):
    _, x, expected = sources
    metadata = json.loads((out_dir / "assets" / "tem_rf.json").read_text())
    assert metadata["config"] == CONFIG and metadata["size_divisor"] == 4
    serve = tf.saved_model.load(str(out_dir)).signatures["serving_default"]
    np.testing.assert_allclose(
        serve(image=tf.constant(x))["particle_probability"].numpy(), expected, atol=1e-5
    )


def test_export_run_directory(work, sources):
    out = _run(f"--model={work / 'run'}", f"--out_dir={work / 'exported'}")
    assert out.returncode == 0, out.stderr
    assert "receptive field 44 px = 0.95 nm, size divisor 4, tiling halo 24 px" in out.stdout
    # TensorFlow's SavedModel INFO lines (logged through absl) stay out of the user's terminal
    assert "Writing fingerprint" not in out.stderr and "Sharding callback" not in out.stderr
    _check_export(work / "exported", sources)
    assert sorted(p.name for p in work.iterdir()) == ["exported", "previous", "run"]  # no temporaries


def _user_folder(work):
    (work / "mine").mkdir()
    (work / "mine" / "notes.txt").write_text("my notes")
    return work / "mine", "folder is not empty and not a tem_rf export (holds notes.txt)"


def _dataset_folder(work):
    (work / "data" / "train").mkdir(parents=True)
    (work / "data" / "dataset.json").write_text('{"schema_version": 1}')
    (work / "data" / "train" / "train-00000-of-00001.tfrecord").write_bytes(b"records")
    return work / "data", "not a tem_rf export (holds dataset.json, train)"


def _existing_file(work):
    (work / "exported").write_text("not a folder")
    return work / "exported", "exists and is not a folder"


def _previous_export_with_a_foreign_file(work):
    (work / "previous" / "README.txt").write_text("my notes on this model")
    return work / "previous", "not a tem_rf export (holds README.txt, assets,"


def _symlink_to_previous_export(work):
    (work / "link").symlink_to(work / "previous")
    return work / "link", "is a symbolic link"


REFUSED = {
    "folder_with_a_user_file": (_user_folder, ()),
    "the_run_directory": (lambda work: (work / "run", "is the model's run directory"), ()),
    "the_run_directory_with_overwrite": (lambda work: (work / "run", "is the model's run directory"), ("--overwrite",)),
    "parent_of_the_run_directory": (lambda work: (work, "contains the model's run directory"), ("--overwrite",)),
    "dataset_folder": (_dataset_folder, ("--overwrite",)),
    "existing_file": (_existing_file, ("--overwrite",)),
    "previous_export_without_overwrite": (
        lambda work: (work / "previous", "holds a previous tem_rf export; pass --overwrite to replace it"), ()
    ),
    "previous_export_with_a_foreign_file": (_previous_export_with_a_foreign_file, ("--overwrite",)),
    "symlink": (_symlink_to_previous_export, ("--overwrite",)),
}


@pytest.mark.parametrize("case", REFUSED)
def test_a_target_that_is_not_ours_is_refused_and_left_alone(work, case):
    make_target, extra = REFUSED[case]
    target, problem = make_target(work)
    before = tree(work)
    out = _run(f"--model={work / 'run'}", f"--out_dir={target}", *extra)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "Traceback" not in out.stderr and "exported" not in out.stdout
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: {target}: ") and problem in last, last
    assert tree(work) == before  # byte-identical, and nothing new (no temporary) anywhere


def test_the_folder_of_a_keras_file_is_refused(work):
    before = tree(work)
    out = _run(f"--model={work / 'run' / 'best.keras'}", f"--out_dir={work / 'run'}")
    assert out.returncode == 1
    assert out.stderr.strip().splitlines()[-1].startswith(f"error: {work / 'run'}: is the model's run directory")
    assert tree(work) == before


def test_an_empty_folder_is_a_target(work, sources):
    (work / "empty").mkdir()
    out = _run(f"--model={work / 'run' / 'best.keras'}", f"--out_dir={work / 'empty'}")
    assert out.returncode == 0, out.stderr
    _check_export(work / "empty", sources)
    assert sorted(p.name for p in work.iterdir()) == ["empty", "previous", "run"]


def test_overwrite_replaces_a_previous_export(work, sources):
    run_before = tree(work / "run")
    out = _run(f"--model={work / 'run'}", f"--out_dir={work / 'previous'}", "--overwrite")
    assert out.returncode == 0, out.stderr
    assert f"exported N2_k2-2_d1-1-1 to {work / 'previous'}" in out.stdout
    _check_export(work / "previous", sources)  # the new model and its metadata, not the previous ones
    assert sorted(p.name for p in work.iterdir()) == ["previous", "run"]  # nothing aside, no temporary
    assert tree(work / "run") == run_before


@pytest.mark.parametrize("target, extra", [("exported", ()), ("previous", ("--overwrite",))])
def test_a_failure_while_writing_leaves_nothing_and_changes_nothing(work, monkeypatch, target, extra):
    real_save = tf.saved_model.save

    def save_then_disk_full(*args, **kwargs):
        real_save(*args, **kwargs)  # a whole SavedModel in the temporary folder, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tf.saved_model, "save", save_then_disk_full)
    before = tree(work)
    out = _run(f"--model={work / 'run'}", f"--out_dir={work / target}", *extra)
    assert out.returncode == 1
    assert "Traceback" not in out.stderr and "exported" not in out.stdout
    assert out.stderr.strip().splitlines()[-1] == (
        f"error: {work / target}: cannot write the export: [Errno 28] No space left on device"
    )
    assert tree(work) == before


def test_an_interrupted_export_leaves_nothing(work, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(tf.saved_model, "save", interrupted)
    before = tree(work)
    out = _run(f"--model={work / 'run'}", f"--out_dir={work / 'new' / 'exported'}")
    assert out.returncode == 130
    assert out.stderr.strip().splitlines()[-1] == f"error: {work / 'new' / 'exported'}: interrupted; nothing was exported"
    assert tree(work) == before  # not even the parent folder "new"


def test_export_bad_model_is_one_clear_line(tmp_path):
    (tmp_path / "not_a_run").mkdir()
    out = _run(f"--model={tmp_path / 'not_a_run'}", f"--export_dir={tmp_path / 'exported'}")
    assert out.returncode == 1
    assert "--export_dir is deprecated; use --out_dir" in out.stderr  # the old name still works
    assert "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith(f"error: {tmp_path / 'not_a_run'}: not a run directory")
    assert not (tmp_path / "exported").exists()

    out = _run(f"--model={tmp_path / 'not_a_run'}")
    assert out.returncode != 0 and "--out_dir" in out.stderr

    out = _run(f"--model={tmp_path / 'not_a_run'}", f"--out_dir={tmp_path / 'a'}", f"--export_dir={tmp_path / 'b'}")
    assert out.returncode == 1 and "give only --out_dir" in out.stderr


def test_bioimageio_without_the_extra_names_the_extra_in_one_line(work, monkeypatch):
    for module in ("bioimageio", "bioimageio.spec", "bioimageio.core"):
        monkeypatch.setitem(__import__("sys").modules, module, None)  # as if not installed
    before = tree(work)
    out = _run(f"--model={work / 'run'}", f"--out_dir={work / 'zoo'}", "--format=bioimageio",
               "--authors=Jane Doe", "--license=MIT")
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1] == (
        'error: the bioimageio format needs the bioimageio extra: pip install "tem_rf[bioimageio]"'
    )
    assert tree(work) == before


@pytest.mark.large  # an export or a training of its own: CI's full suite runs it
def test_the_saved_model_lists_its_raw_signatures(work):
    out = _run(f"--model={work / 'run'}", f"--out_dir={work / 'exported'}", all_signatures=True)
    assert out.returncode == 0, out.stderr
    assert "serving_raw_uint8/uint16/int16/int32/float32/float64" in out.stdout
    signatures = tf.saved_model.load(str(work / "exported")).signatures
    assert {"serving_default", "serving_preprocessed", "serving_raw_uint16"} <= set(signatures)


@pytest.mark.large  # an export or a training of its own: CI's full suite runs it
def test_raw_dtypes_chooses_the_raw_signatures(work):
    out = _run(f"--model={work / 'run'}", f"--out_dir={work / 'two'}", "--raw_dtypes=float32,uint16",
               all_signatures=True)
    assert out.returncode == 0, out.stderr
    assert "serving_raw_uint16/float32: raw micrograph" in out.stdout
    signatures = set(tf.saved_model.load(str(work / "two")).signatures)
    # with float32, the network's pixel size known: the signature that resamples to it
    assert {name for name in signatures if name.startswith("serving_raw_")} == {
        "serving_raw_uint16", "serving_raw_float32", "serving_raw_float32_scaled"}
    assert "serving_raw_float32_scaled: float32 micrograph [batch, height, width] + pixel_size_nm" in out.stdout
    metadata = json.loads((work / "two" / "assets" / "tem_rf.json").read_text())
    assert metadata["signature"]["raw"]["keys"] == {"uint16": "serving_raw_uint16", "float32": "serving_raw_float32"}

    none = _run(f"--model={work / 'run'}", f"--out_dir={work / 'none'}")  # --raw_dtypes=
    assert none.returncode == 0 and "serving_raw_" not in none.stdout
    assert not any(name.startswith("serving_raw_") for name in tf.saved_model.load(str(work / "none")).signatures)

    before = tree(work)
    bad = _run(f"--model={work / 'run'}", f"--out_dir={work / 'bad'}", "--raw_dtypes=uint16,uint12",
               all_signatures=True)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines()[-1] == (
        "error: --raw_dtypes: raw dtype(s) uint12 not among uint8, uint16, int16, int32, float32, float64"
    )
    assert tree(work) == before
