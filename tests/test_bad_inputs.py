"""Bad input and faults across every binary: one clear error line, and the disk as it was found.

Each case runs one binary (in process, as `python -m` would) on a copy of a small shared
workspace (demo micrographs, a dataset, a trained run, an export) that its ``setup`` may spoil,
and asserts: a non-zero exit status, no traceback, a last stderr line that names the file or
flag at fault, and that neither the case's workspace nor the shared one changed by one byte
(no output left behind, nothing the user had touched).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from binaries import call_main


# ---------------------------------------------------------------------------- the workspace


@pytest.fixture(scope="module")
def shared(tmp_path_factory) -> Path:
    """raw/ (4 demo micrographs, 128 px, 0.5 nm), dataset/ (64 px patches), run/ (1 epoch),
    export/ (its SavedModel) and movie/ (a demo movie of 4 frames, 64 px): read-only inputs for
    every case."""
    from tem_rf import data, train
    from tem_rf.serve.export import export_run

    root = tmp_path_factory.mktemp("shared")
    made = call_main("data_prep.make_demo_data", f"--out_dir={root / 'raw'}", "--num_images=4",
                     "--size=128", "--kind=low_res", "--pixel_size_nm=0.5", "--seed=3")
    assert made.returncode == 0, made.stderr
    pairs = data.match_masks(data.find_image_files(root / "raw" / "images"), root / "raw" / "labels")
    data.build_dataset(pairs, root / "dataset", patch_size=64, min_particle_pixels=20,
                       split_fractions=(0.5, 0.25, 0.25), num_shards=1, progress=False)
    train.train(train.TrainConfig(data_dir=str(root / "dataset"), model_dir=str(root / "run"), epochs=1,
                                  batch_size=2, precision="float32", strategy="default"), progress=False)
    export_run(root / "run", root / "export", raw_dtypes=())  # segment reads serving_default
    movie = call_main("data_prep.make_demo_data", "--kind=movie", f"--out_dir={root / 'movie'}", "--num_frames=4",
                      "--size=64")
    assert movie.returncode == 0, movie.stderr
    return root


def tree_digest(root: Path) -> dict[str, str]:
    """Every entry under ``root`` (files by content, folders, links by target), to compare."""
    digest = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            key = str(path.relative_to(root))
            if path.is_symlink():
                digest[key] = "link:" + os.readlink(path)
            elif path.is_dir():
                digest[key] = "dir"
            elif path.is_file():
                digest[key] = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                digest[key] = "special"
    return digest


# ---------------------------------------------------------------------------- spoilers (setup)


def _copy(name: str) -> Callable[[Path, Path], None]:
    def setup(ws: Path, src: Path) -> None:
        shutil.copytree(src / name, ws / name, symlinks=True)
    return setup


def _copy_into(name: str, relative: str) -> Callable[[Path, Path], None]:
    def setup(ws: Path, src: Path) -> None:
        shutil.copytree(src / name, ws / relative, symlinks=True)
    return setup


def _steps(*setups: Callable[[Path, Path], None]) -> Callable[[Path, Path], None]:
    def setup(ws: Path, src: Path) -> None:
        for step in setups:
            step(ws, src)
    return setup


def _write(relative: str, text: str = "a user's notes\n") -> Callable[[Path, Path], None]:
    def setup(ws: Path, src: Path) -> None:
        (ws / relative).parent.mkdir(parents=True, exist_ok=True)
        (ws / relative).write_text(text)
    return setup


def _first_image(ws: Path) -> Path:
    return sorted((ws / "raw" / "images").iterdir())[0]


def _same_stem(ws: Path, src: Path) -> None:
    import skimage.io
    import tifffile

    image = _first_image(ws)
    skimage.io.imsave(image.with_suffix(".png"), (tifffile.imread(image) // 256).astype(np.uint8),
                      check_contrast=False)


def _copy_under_another_name(ws: Path, src: Path) -> None:
    image = _first_image(ws)
    shutil.copy(image, image.with_name("copy.tif"))
    mask = next((ws / "raw" / "labels").glob(f"{image.stem}*"))
    shutil.copy(mask, mask.with_name("copy" + mask.name[len(image.stem):]))


def _fifo(ws: Path, src: Path) -> None:
    os.mkfifo(ws / "raw" / "images" / "pipe.tif")


def _folder_named_tif(ws: Path, src: Path) -> None:
    (ws / "raw" / "images" / "scan.tif").mkdir()


def _wrong_size_mask(ws: Path, src: Path) -> None:
    import tifffile

    mask = sorted((ws / "raw" / "labels").iterdir())[0]
    tifffile.imwrite(mask, np.zeros((100, 128), np.uint8))


def _split_lists(train: str, test: str) -> Callable[[Path, Path], None]:
    def setup(ws: Path, src: Path) -> None:
        stems = sorted(p.stem for p in (src / "raw" / "images").iterdir())
        (ws / "train.txt").write_text(train.format(*stems) + "\n")
        (ws / "test.txt").write_text(test.format(*stems) + "\n")
    return setup


def _edit_dataset_json(edit: Callable[[dict], None]) -> Callable[[Path, Path], None]:
    def setup(ws: Path, src: Path) -> None:
        path = ws / "dataset" / "dataset.json"
        info = json.loads(path.read_text())
        edit(info)
        path.write_text(json.dumps(info))
    return setup


def _flip_record_byte(ws: Path, src: Path) -> None:
    shard = sorted((ws / "dataset" / "train").iterdir())[0]
    blob = bytearray(shard.read_bytes())
    blob[12 + 200] ^= 0x10  # inside the first record's serialised example
    shard.write_bytes(bytes(blob))


def _truncate(relative: str) -> Callable[[Path, Path], None]:
    def setup(ws: Path, src: Path) -> None:
        path = ws / relative
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return setup


def _odd_patch_dataset(ws: Path, src: Path) -> None:
    from tem_rf import data

    pairs = data.match_masks(data.find_image_files(src / "raw" / "images"), src / "raw" / "labels")
    data.build_dataset(pairs, ws / "odd", patch_size=30, min_particle_pixels=20, num_shards=1,
                       progress=False)


# ---------------------------------------------------------------------------- the cases


@dataclasses.dataclass(frozen=True)
class Case:
    id: str
    binary: str
    args: tuple[str, ...]  # {ws}: the case's workspace; {src}: the shared one
    error: str  # a regex the last stderr line must match from its start
    setup: Callable[[Path, Path], None] | None = None


DEMO = "data_prep.make_demo_data"
TFREC = "data_prep.make_tfrecords"
RAW = ("--images={ws}/raw/images", "--labels={ws}/raw/labels", "--patch_size=64", "--min_particle_pixels=20",
       "--noprogress")
RAW_SRC = tuple(a.replace("{ws}/raw", "{src}/raw") for a in RAW)
FLAG_ERROR = "FATAL Flags parsing error: flag --"

CASES = [
    # make_demo_data
    Case("demo-data-pixel-size-0", DEMO, ("--out_dir={ws}/d", "--pixel_size_nm=0"), "error: pixel_size_nm must be a positive"),
    Case("demo-data-pixel-size-nan", DEMO, ("--out_dir={ws}/d", "--pixel_size_nm=nan"), "error: pixel_size_nm must be a positive"),
    Case("demo-data-pixel-size-negative", DEMO, ("--out_dir={ws}/d", "--pixel_size_nm=-1"), "error: pixel_size_nm must be a positive"),
    Case("demo-data-size-below-one-particle", DEMO, ("--out_dir={ws}/d", "--size=128", "--kind=high_res"),
         r"error: --size=128 px is smaller than every high_res particle \(139-372 px across at 0.02152 nm/px\)"),
    Case("demo-data-out-dir-is-a-file", DEMO, ("--out_dir={ws}/notes.txt",), r"error: .*notes\.txt", _write("notes.txt")),
    Case("demo-data-out-dir-holds-user-files", DEMO, ("--out_dir={ws}/mine",), r"error: .*mine", _write("mine/notes.txt")),
    # make_tfrecords
    Case("tfrecords-images-missing", TFREC, ("--images={ws}/nowhere", "--labels={src}/raw/labels", "--out_dir={ws}/ds"),
         r"error: .*nowhere: folder does not exist"),
    Case("tfrecords-labels-missing", TFREC, ("--images={src}/raw/images", "--labels={ws}/nowhere", "--out_dir={ws}/ds"),
         r"error: .*nowhere: labels folder does not exist"),
    Case("tfrecords-out-dir-holds-user-files", TFREC, (*RAW_SRC, "--out_dir={ws}/mine"),
         r"error: .*mine: exists, is not empty and holds no dataset", _write("mine/notes.txt")),
    Case("tfrecords-out-dir-holds-a-dataset", TFREC, (*RAW_SRC, "--out_dir={ws}/dataset"),
         r"error: .*dataset: already holds a dataset .*--overwrite", _copy("dataset")),
    # --overwrite replaces only what tem_rf wrote (dataset.json's shards, demo.json's files)
    Case("tfrecords-overwrite-a-dataset-beside-a-users-notes", TFREC, (*RAW_SRC, "--out_dir={ws}/dataset", "--overwrite"),
         r"error: .*dataset: holds notes\.txt, which tem_rf did not write \(not listed in its dataset\.json\)",
         _steps(_copy("dataset"), _write("dataset/notes.txt"))),
    Case("tfrecords-overwrite-a-dataset-holding-a-run", TFREC, (*RAW_SRC, "--out_dir={ws}/dataset", "--overwrite"),
         r"error: .*dataset: holds run/, which tem_rf did not write", _steps(_copy("dataset"), _copy_into("run", "dataset/run"))),
    Case("tfrecords-overwrite-a-dataset-holding-its-inputs", TFREC,
         ("--images={ws}/dataset/raw/images", "--labels={ws}/dataset/raw/labels", "--patch_size=64",
          "--min_particle_pixels=20", "--noprogress", "--out_dir={ws}/dataset", "--overwrite"),
         r"error: .*dataset: holds raw/, which tem_rf did not write", _steps(_copy("dataset"), _copy_into("raw", "dataset/raw"))),
    Case("tfrecords-overwrite-a-dataset-beside-a-users-file-in-a-split", TFREC,
         (*RAW_SRC, "--out_dir={ws}/dataset", "--overwrite"),
         r"error: .*dataset: holds train/mine\.tfrecord, which tem_rf did not write",
         _steps(_copy("dataset"), _write("dataset/train/mine.tfrecord"))),
    Case("tfrecords-overwrite-a-dataset-whose-record-is-damaged", TFREC, (*RAW_SRC, "--out_dir={ws}/dataset", "--overwrite"),
         r"error: .*dataset: holds a dataset\.json that cannot be read",
         _steps(_copy("dataset"), _write("dataset/dataset.json", "{not json"))),
    Case("demo-data-overwrite-beside-a-users-notes", DEMO, ("--out_dir={ws}/raw", "--num_images=1", "--size=64", "--overwrite"),
         r"error: .*raw: holds images/notes\.txt, which tem_rf did not write \(not listed in its demo\.json\)",
         _steps(_copy("raw"), _write("raw/images/notes.txt"))),
    Case("tfrecords-empty-images", TFREC, ("--images=", "--labels={src}/raw/labels", "--out_dir={ws}/ds"),
         r"error: no micrographs named \(an empty path\)"),
    Case("tfrecords-two-files-one-stem", TFREC, (*RAW, "--out_dir={ws}/ds"), r"error: .*: has the same stem as",
         _steps(_copy("raw"), _same_stem)),
    Case("tfrecords-one-image-under-two-names", TFREC, (*RAW, "--out_dir={ws}/ds"),
         r"error: .*\.tif: holds the same pixels as .*\.tif", _steps(_copy("raw"), _copy_under_another_name)),
    Case("tfrecords-fifo-named-tif", TFREC, (*RAW, "--out_dir={ws}/ds"), r"error: .*pipe\.tif: is a named pipe",
         _steps(_copy("raw"), _fifo)),
    Case("tfrecords-folder-named-tif", TFREC, (*RAW, "--out_dir={ws}/ds"), r"error: .*scan\.tif: is a folder",
         _steps(_copy("raw"), _folder_named_tif)),
    Case("tfrecords-mask-of-another-size", TFREC, (*RAW, "--out_dir={ws}/ds"), r"error: .*_mask\.\w+: mask is 100x128 pixels",
         _steps(_copy("raw"), _wrong_size_mask)),
    Case("tfrecords-patch-larger-than-images", TFREC, (*RAW_SRC, "--patch_size=256", "--out_dir={ws}/ds"),
         r"error: .*\.tif: image is 128x128 pixels, smaller than the patch size 256"),
    Case("tfrecords-split-two-values", TFREC, (*RAW_SRC, "--split=0.5,0.5", "--out_dir={ws}/ds"),
         r"error: --split needs three fractions"),
    Case("tfrecords-stem-in-two-split-files", TFREC,
         (*RAW_SRC, "--split_files=train={ws}/train.txt,test={ws}/test.txt", "--out_dir={ws}/ds"),
         r"error: .*test\.txt: lists '.*', which .*train\.txt lists too", _split_lists("{0}\n{1}", "{1}")),
    Case("tfrecords-split-file-lists-a-missing-image", TFREC,
         (*RAW_SRC, "--split_files=train={ws}/train.txt,test={ws}/test.txt", "--out_dir={ws}/ds"),
         r"error: .*test\.txt: lists 1 image\(s\) not found among the micrographs: gone", _split_lists("{0}", "gone")),
    Case("tfrecords-frame-of-a-single-image", TFREC, (*RAW_SRC, "--frame=1", "--out_dir={ws}/ds"),
         r"error: .*\.tif: .*single image"),
    # train
    Case("train-dataset-missing", "experiments.train", ("--data_dir={ws}/nowhere", "--model_dir={ws}/run", "--noprogress"),
         r"error: .*nowhere"),
    Case("train-model-dir-is-a-file", "experiments.train", ("--data_dir={src}/dataset", "--model_dir={ws}/notes.txt", "--noprogress"),
         r"error: .*notes\.txt", _write("notes.txt")),
    Case("train-resume-with-another-learning-rate", "experiments.train",
         ("--data_dir={src}/dataset", "--model_dir={ws}/run", "--learning_rate=0.5", "--epochs=2", "--batch_size=2",
          "--precision=float32", "--noprogress"),
         r"error: .*run: .*learning_rate.*0\.5", _copy("run")),
    Case("train-damaged-shard", "experiments.train", ("--data_dir={ws}/dataset", "--model_dir={ws}/new_run", "--noprogress"),
         r"error: .*train-00000-of-00001\.tfrecord: ", _steps(_copy("dataset"), _flip_record_byte)),
    Case("train-edited-count", "experiments.train", ("--data_dir={ws}/dataset", "--model_dir={ws}/new_run", "--noprogress"),
         r"error: .*dataset\.json", _steps(_copy("dataset"), _edit_dataset_json(lambda i: i["counts"].update(train=99)))),
    Case("train-edited-patch-size", "experiments.train", ("--data_dir={ws}/dataset", "--model_dir={ws}/new_run", "--noprogress"),
         r"error: .*patch_size", _steps(_copy("dataset"), _edit_dataset_json(lambda i: i.update(patch_size=128)))),
    # evaluate
    Case("evaluate-over-an-earlier-evaluation", "experiments.evaluate",
         ("--run_dir={src}/run", "--split=val", "--noaugment", "--out_dir={ws}/scores"),
         r"error: .*scores/eval_val\.json: exists; pass --overwrite to replace it", _write("scores/eval_val.json")),
    Case("evaluate-run-missing", "experiments.evaluate", ("--run_dir={ws}/nowhere",), r"error: .*nowhere: no such run"),
    Case("evaluate-patches-the-divisor-does-not-divide", "experiments.evaluate",
         ("--run_dir={src}/run", "--data_dir={ws}/odd", "--noaugment", "--out_dir={ws}/scores"),
         r"error: .*odd: its 30 px patches are not a multiple of the model's size divisor 4", _odd_patch_dataset),
    Case("evaluate-truncated-best-keras", "experiments.evaluate", ("--run_dir={ws}/run", "--noaugment"),
         r"error: .*best\.keras: .*corrupt", _steps(_copy("run"), _truncate("run/best.keras"))),
    Case("evaluate-out-dir-under-a-file", "experiments.evaluate",
         ("--run_dir={src}/run", "--noaugment", "--out_dir={ws}/notes.txt/scores"),
         r"error: .*notes\.txt", _write("notes.txt")),
    # export
    Case("export-into-a-folder-of-user-files", "experiments.export", ("--model={src}/run", "--out_dir={ws}/mine"),
         r"error: .*mine", _write("mine/notes.txt")),
    Case("export-into-the-run-itself", "experiments.export", ("--model={ws}/run", "--out_dir={ws}/run"),
         r"error: .*run", _copy("run")),
    Case("export-into-the-runs-parent", "experiments.export", ("--model={ws}/runs/run", "--out_dir={ws}/runs"),
         r"error: .*runs", lambda ws, src: shutil.copytree(src / "run", ws / "runs" / "run")),
    Case("export-into-a-dataset", "experiments.export", ("--model={src}/run", "--out_dir={ws}/dataset"),
         r"error: .*dataset", _copy("dataset")),
    Case("export-onto-a-file", "experiments.export", ("--model={src}/run", "--out_dir={ws}/notes.txt"),
         r"error: .*notes\.txt", _write("notes.txt")),
    Case("export-over-an-export-without-overwrite", "experiments.export", ("--model={src}/run", "--out_dir={ws}/export"),
         r"error: .*export.*--overwrite", _copy("export")),
    Case("export-corrupt-model", "experiments.export", ("--model={ws}/run", "--out_dir={ws}/new_export"),
         r"error: .*best\.keras: .*corrupt", _steps(_copy("run"), _truncate("run/best.keras"))),
    Case("export-bioimageio-test-image-missing", "experiments.export",
         ("--model={src}/run", "--out_dir={ws}/pkg", "--format=bioimageio", "--authors=Jane Doe", "--license=MIT",
          "--test_image={ws}/nowhere.tif"), r"error: .*nowhere\.tif: file does not exist"),
    Case("export-bioimageio-test-image-is-a-mask", "experiments.export",
         ("--model={src}/run", "--out_dir={ws}/pkg", "--format=bioimageio", "--authors=Jane Doe", "--license=MIT",
          "--test_image={src}/raw/labels/low_res_000_mask.png"),
         r"error: .*low_res_000_mask\.png: holds two values only \(0 and 255\): a label mask"),
    Case("segment-frames-and-frame", "experiments.segment",
         ("--model={src}/export", "--images={src}/raw/images", "--out_dir={ws}/seg", "--frames=all", "--frame=1"),
         r"error: give --frame .* or --frames .*, not both"),
    # segment
    Case("segment-threshold-nan", "experiments.segment",
         ("--model={src}/export", "--images={src}/raw/images", "--out_dir={ws}/seg", "--threshold=nan"), r".*--threshold"),
    Case("segment-threshold-above-one", "experiments.segment",
         ("--model={src}/export", "--images={src}/raw/images", "--out_dir={ws}/seg", "--threshold=1.5"), r".*--threshold"),
    Case("segment-inputs-missing", "experiments.segment",
         ("--model={src}/export", "--images={ws}/nowhere", "--out_dir={ws}/seg"), r"error: .*nowhere"),
    Case("segment-model-missing", "experiments.segment",
         ("--model={ws}/nowhere", "--images={src}/raw/images", "--out_dir={ws}/seg"), r"error: .*nowhere"),
    Case("segment-out-dir-is-a-file", "experiments.segment",
         ("--model={src}/export", "--images={src}/raw/images", "--out_dir={ws}/notes.txt"), r"error: .*notes\.txt",
         _write("notes.txt")),
    Case("segment-over-an-earlier-segmentation", "experiments.segment",
         ("--model={src}/export", "--images={src}/raw/images", "--out_dir={ws}/seg"),
         r"error: .*seg: already holds segmentation\.json; pass --overwrite", _write("seg/segmentation.json", "{}")),
    Case("segment-over-a-users-file-of-an-output-name", "experiments.segment",
         ("--model={src}/export", "--images={src}/raw/images/low_res_001.tif", "--out_dir={ws}/seg"),
         r"error: .*seg: already holds low_res_001_mask\.tif; pass --overwrite", _write("seg/low_res_001_mask.tif")),
    Case("segment-nothing-segmentable", "experiments.segment",
         ("--model={src}/export", "--images={ws}/raw/images", "--out_dir={ws}/seg"),
         r"error: 2 of 2 micrographs failed", _steps(_write("raw/images/a.tif", "not a tiff"),
                                                      _write("raw/images/b.tif", "nor this"))),
    # fourier_baseline
    Case("fourier-band-px-beyond-nyquist", "experiments.fourier_baseline",
         ("--data_dir={src}/dataset", "--band_px=20,60", "--out_csv={ws}/f.csv"), r"error: band 20-60 FFT px reaches beyond Nyquist"),
    Case("fourier-band-nm-inv-beyond-nyquist", "experiments.fourier_baseline",
         ("--data_dir={src}/dataset", "--band_nm_inv=0.5,1.5", "--out_csv={ws}/f.csv"), r"error: band 0.5-1.5 nm\^-1 reaches beyond Nyquist"),
    Case("fourier-unresolved-lattice-spacing", "experiments.fourier_baseline",
         ("--data_dir={src}/dataset", "--lattice_spacings_nm=0.235", "--out_csv={ws}/f.csv"),
         r"error: lattice spacing\(s\) 0.235 nm are not resolved at 0.5 nm/px"),
    Case("fourier-over-a-users-csv", "experiments.fourier_baseline",
         ("--data_dir={src}/dataset", "--band_px=4,12", "--out_csv={ws}/f.csv"),
         r"error: .*f\.csv: exists; pass --overwrite to replace it", _write("f.csv")),
    Case("fourier-over-a-users-json", "experiments.fourier_baseline",
         ("--data_dir={src}/dataset", "--band_px=4,12", "--out_csv={ws}/f.csv", "--out_json={ws}/summary.json"),
         r"error: .*summary\.json: exists; pass --overwrite to replace it", _write("summary.json")),
    Case("fourier-dataset-missing", "experiments.fourier_baseline", ("--data_dir={ws}/nowhere", "--out_csv={ws}/f.csv"),
         r"error: .*nowhere"),
    # measure
    Case("measure-empty-images", "experiments.measure",
         ("--model={src}/export", "--images=", "--labels={src}/raw/labels", "--out_dir={ws}/m"),
         r"error: no micrographs named \(an empty path\)"),
    Case("segment-empty-input", "experiments.segment", ("--model={src}/export", "--images=", "--out_dir={ws}/seg"),
         r"error: --images names no micrograph \(an empty name\)"),
    Case("measure-no-masks", "experiments.measure",
         ("--method=fourier", "--images={src}/raw/images", "--labels={src}/dataset", "--out_dir={ws}/m"),
         r"error: .*dataset: no masks found"),
    Case("measure-mask-of-another-size", "experiments.measure",
         ("--model={src}/export", "--images={ws}/raw/images", "--labels={ws}/raw/labels", "--out_dir={ws}/m"),
         r"error: .*_mask\.\w+: .*100x128", _steps(_copy("raw"), _wrong_size_mask)),
    # analyze, sweep, describe, demo
    Case("analyze-sweep-missing", "experiments.analyze", ("--sweep_dir={ws}/nowhere", "--out_dir={ws}/figs"), r"error: .*nowhere"),
    Case("sweep-pools-cannot-divide-the-patch", "experiments.sweep",
         ("--data_dir={src}/dataset", "--sweep_dir={ws}/sweep", "--pool_sizes=2,64", "--epochs=1", "--noprogress"),
         r"(error|FATAL).*(pool|divis)"),
    Case("describe-pixel-size-negative", "experiments.describe", ("--pixel_size_nm=-0.5",),
         r"error: --pixel_size_nm must be a positive, finite pixel size in nm, got -0.5"),
    Case("describe-pixel-size-nan", "experiments.describe", ("--pixel_size_nm=nan",),
         r"error: --pixel_size_nm must be a positive, finite pixel size in nm, got nan"),
    Case("describe-over-a-users-json", "experiments.describe", ("--json_out={ws}/table.json",),
         r"error: .*table\.json: exists; pass --overwrite to replace it", _write("table.json")),
    Case("describe-num-blocks-beyond-memory", "experiments.describe", ("--num_blocks=12", "--pool_sizes=2"),
         r"error: num_blocks 12 means 16384 filters in the bottleneck, .* at most 10 \(the paper uses 2-4\)"),
    Case("describe-pool-size-zero", "experiments.describe", ("--pool_sizes=2,0",), r"(error|FATAL).*pool"),
    Case("demo-pixel-size-zero", "experiments.demo", ("--out_dir={ws}/demo", "--pixel_size_nm=0"),
         r"(error|FATAL).*pixel_size_nm"),
    # learning_curve, pretrained networks
    Case("learning-curve-more-micrographs-than-the-split", "experiments.learning_curve",
         ("--data_dir={src}/dataset", "--out_dir={ws}/lc", "--sizes=1,999"),
         r"error: .*dataset: --sizes: 999 micrographs asked, the training split has \d+"),
    Case("learning-curve-over-a-users-csv", "experiments.learning_curve",
         ("--data_dir={src}/dataset", "--out_dir={ws}/lc", "--sizes=1"),
         r"error: .*learning_curve\.csv: exists; pass --overwrite to replace it", _write("lc/learning_curve.csv")),
    Case("segment-unknown-pretrained-network", "experiments.segment",
         ("--model=pretrained:nothing", "--images={src}/raw/images", "--out_dir={ws}/seg"),
         r"error: pretrained:nothing: no such network in tem_rf \(shipped: pretrained:emps\)"),
    # recommend
    Case("recommend-pixel-size-nan", "experiments.recommend", ("--pixel_size_nm=nan", "--particle_diameter_nm=5"),
         "error: pixel_size_nm must be a positive"),
    Case("recommend-over-a-users-json", "experiments.recommend",
         ("--pixel_size_nm=0.5", "--particle_diameter_nm=20", "--num_blocks=2", "--json_out={ws}/advice.json"),
         r"error: .*advice\.json: exists; pass --overwrite to replace it", _write("advice.json")),
    Case("recommend-sweep-dir-without-results", "experiments.recommend", ("--sweep_dir={ws}/sweep",),
         r"error: .*sweep: no sweep results", _write("sweep/notes.txt")),
]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_is_one_clear_error_and_changes_nothing(case, shared, tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    if case.setup is not None:
        case.setup(ws, shared)
    before_ws, before_src = tree_digest(ws), tree_digest(shared)
    result = call_main(case.binary, *(a.format(ws=ws, src=shared) for a in case.args))
    assert result.returncode != 0, result.stdout[-1000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    last = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else ""
    if last.startswith("Pass --helpshort"):  # absl's hint after a flag error
        last = result.stderr.strip().splitlines()[-2]
    assert re.match(case.error, last), f"last stderr line: {last!r}"
    assert tree_digest(ws) == before_ws, "the case's workspace changed"
    assert tree_digest(shared) == before_src, "the shared inputs changed"


def test_the_table_covers_every_binary():
    root = Path(__file__).resolve().parents[1]
    binaries = {f"{folder}.{p.stem}" for folder in ("data_prep", "experiments")
                for p in (root / folder).glob("*.py") if p.stem != "__init__"}
    assert binaries == {case.binary for case in CASES}
    assert len(CASES) >= 40


# ---------------------------------------------------------------------------- one writer per output

# (id, binary, args, the output, a temporary a killed run of the binary leaves)
WRITER_CASES = [
    ("segment", "experiments.segment", ("--model={src}/export", "--images={src}/raw/images", "--out_dir={ws}/seg",
                                        "--noprogress"), "seg", "seg/.segmentation.json.k1lled0x.tmp"),
    ("measure", "experiments.measure", ("--model={src}/export", "--images={src}/raw/images", "--labels={src}/raw/labels",
                                        "--out_dir={ws}/m", "--noprogress"), "m", "m/.instances.csv.k1lled0x.tmp"),
    ("make-tfrecords", TFREC, (*RAW_SRC, "--out_dir={ws}/ds"), "ds", ".ds.tmp-k1lled0x/train/train-00000.partial"),
    ("make-demo-data", DEMO, ("--out_dir={ws}/raw", "--size=64", "--num_images=1", "--kind=low_res",
                              "--pixel_size_nm=0.5"), "raw", ".raw.tmp-k1lled0x/images/low_res_000.tif"),
    ("export", "experiments.export", ("--model={src}/run", "--out_dir={ws}/export", "--raw_dtypes="), "export",
     ".export.tmp-k1lled0x/saved_model.pb"),
    ("evaluate", "experiments.evaluate", ("--run_dir={src}/run", "--out_dir={ws}/ev", "--noaugment"), "ev",
     "ev/.eval_test.csv.k1lled0x.tmp"),
    ("segment-frames", "experiments.segment", ("--model={src}/export", "--images={src}/movie/movie.tif",
                                               "--frames=all", "--out_dir={ws}/mv", "--noprogress"), "mv",
     "mv/.movie_masks.tif.tmp-k1lled0x/masks.npy"),
]


@pytest.mark.parametrize("binary, args, output, _", [c[1:] for c in WRITER_CASES], ids=[c[0] for c in WRITER_CASES])
def test_a_second_writer_of_the_same_output_is_refused(binary, args, output, _, shared, tmp_path):
    from tem_rf.core.locks import output_lock

    ws = tmp_path / "ws"
    ws.mkdir()
    with output_lock(ws / output):  # as another process writing it holds it (flock is per open file)
        before = tree_digest(ws)
        result = call_main(binary, *(a.format(ws=ws, src=shared) for a in args))
        assert tree_digest(ws) == before
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: {ws / output}: another tem_rf command (pid {os.getpid()}) is writing this output; wait for it "
        "to end or choose another output"
    )
    assert tree_digest(ws) == {}


@pytest.mark.parametrize("binary, args, output, stale", [c[1:] for c in WRITER_CASES], ids=[c[0] for c in WRITER_CASES])
def test_the_next_run_clears_what_a_killed_one_left(binary, args, output, stale, shared, tmp_path):
    ws = tmp_path / "ws"
    (ws / stale).parent.mkdir(parents=True)
    (ws / stale).write_text("left by a killed run")
    (ws / ".notes.tmp").write_text("a user's hidden file")
    result = call_main(binary, *(a.format(ws=ws, src=shared) for a in args))
    assert result.returncode == 0, result.stderr[-2000:]
    left = sorted(str(p.relative_to(ws)) for p in ws.rglob(".*"))
    assert left == [".notes.tmp"], left


KILL_POINTS = 2  # random moments, per writer, at which a run that replaces its output is killed


@pytest.mark.large
@pytest.mark.parametrize("binary, args, output, _", [c[1:] for c in WRITER_CASES], ids=[c[0] for c in WRITER_CASES])
def test_a_writer_killed_at_random_moments_loses_nothing_and_the_next_run_completes(binary, args, output, _, shared,
                                                                                     tmp_path):
    """A complete output, then ``--overwrite`` runs killed (SIGKILL) at random moments of a
    run's duration: every file the user had is still there, whole (its JSON parses; the old one
    or a complete new one, never half of one), no new name appears but hidden temporaries, and
    the next run completes and clears them."""
    import random
    import subprocess
    import time

    from binaries import ROOT, binary_cmd, binary_env

    ws = tmp_path / "ws"
    ws.mkdir()
    command = binary_cmd(binary, *(a.format(ws=ws, src=shared) for a in args))
    started = time.monotonic()
    first = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=binary_env(), timeout=600)
    duration = time.monotonic() - started
    assert first.returncode == 0, first.stderr[-2000:]

    def visible(root: Path) -> dict[str, str]:
        return {name: digest for name, digest in tree_digest(root).items()
                if not any(part.startswith(".") for part in Path(name).parts)}

    complete = visible(ws)
    moments = sorted(random.Random(binary + output).uniform(0.2, 0.95) * duration for _ in range(KILL_POINTS))
    for moment in moments:
        process = subprocess.Popen([*command, "--overwrite"], cwd=ROOT, env=binary_env(), stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        time.sleep(moment)
        process.kill()
        process.wait()
        now = visible(ws)
        assert set(now) == set(complete), (moment, set(now) ^ set(complete))
        for name, digest in now.items():
            if name.endswith(".json") and digest != complete[name]:
                json.loads((ws / name).read_text())  # a replaced result is a whole new one
    rerun = subprocess.run([*command, "--overwrite"], cwd=ROOT, capture_output=True, text=True, env=binary_env(),
                           timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert set(visible(ws)) == set(complete)
    assert [name for name in tree_digest(ws) if name not in visible(ws)] == [], "temporaries were left"


# ---------------------------------------------------------------------------- a full disk, for real

# A file-size limit makes every write past it fail (EFBIG) as a full disk fails them (ENOSPC):
# the same code paths, with no root rights or special file system needed. SIGXFSZ is ignored so
# the write returns the error instead of killing the process.
FILE_SIZE_LIMIT = 60 * 1024

DISK_FULL_CASES = [
    ("make-demo-data", "data_prep.make_demo_data", ("--out_dir={ws}/raw", "--size=256", "--num_images=2"), "raw"),
    ("make-tfrecords", TFREC, (*RAW_SRC, "--out_dir={ws}/ds", "--num_shards=1"), "ds"),
    ("train", "experiments.train", ("--data_dir={src}/dataset", "--model_dir={ws}/run", "--epochs=1", "--batch_size=2",
                                    "--precision=float32", "--noprogress"), "run"),
    ("export", "experiments.export", ("--model={src}/run", "--out_dir={ws}/export"), "export"),
    ("segment", "experiments.segment", ("--model={src}/export", "--images={src}/raw/images", "--out_dir={ws}/seg",
                                        "--save_probability", "--noprogress"), "seg"),
]


def _limit_file_size() -> None:
    import resource
    import signal

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_SIZE_LIMIT, FILE_SIZE_LIMIT))


@pytest.mark.large
@pytest.mark.parametrize("binary, args, output", [c[1:] for c in DISK_FULL_CASES], ids=[c[0] for c in DISK_FULL_CASES])
def test_a_full_disk_is_one_line_and_leaves_nothing(binary, args, output, shared, tmp_path):
    import subprocess

    from binaries import ROOT, binary_cmd, binary_env

    ws = tmp_path / "ws"
    ws.mkdir()
    before_src = tree_digest(shared)
    result = subprocess.run(
        binary_cmd(binary, *(a.format(ws=ws, src=shared) for a in args)), cwd=ROOT, capture_output=True,
        text=True, env=binary_env(), timeout=600, preexec_fn=_limit_file_size, check=False,
    )
    assert result.returncode != 0, result.stdout[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and str(ws / output) in last, last
    assert any(s in last for s in ("File too large", "No space left", "disk is full")), last
    assert tree_digest(ws) == {}, "output or temporary files were left behind"
    assert tree_digest(shared) == before_src
