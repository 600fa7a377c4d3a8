"""A trained network as a BioImage Model Zoo package (``<name>.bioimageio.zip``, model spec 0.5).

Fiji (deepImageJ), ilastik, QuPath and napari run bioimage.io packages. The package holds:

* the weights, a ``tensorflow_saved_model_bundle`` whose ``serve`` (= ``serving_default``)
  signature takes *raw* micrographs, float32 ``[batch, y, x, 1]``, and applies tem_rf's own
  preprocessing inside the graph (x-ray outlier removal, standardisation of each micrograph:
  `tem_rf.serve.export.raw_micrograph_fn`), so a consumer needs no preprocessing step; it returns
  the particle probability ``[batch, y, x, 1]``. Consumers pad the input by the output halo (the
  spec's rule; bioimageio.core pads symmetrically), so the x-ray and standardisation statistics
  are taken inside that margin: away from the halo the result equals `segment`'s;
* axes ``batch, y, x, channel`` in and out (the channel axis lets bioimageio.core predict blockwise), y/x sizes ``min + n * step`` with
  ``step`` the size divisor and ``min`` the smallest multiple of it that keeps something after
  the output ``halo`` (the computed tiling halo, `tem_rf.models.geometry.minimum_halo`) is cropped
  from both sides; y/x carry the training pixel size (``unit: nanometer``, ``scale``);
* test input/output: the largest valid centre crop (at most `TEST_INPUT_MAX_PX`) of a micrograph
  of the run's dataset still on disk (its test split, else val, else train; ``test_image``
  instead when given), else of its best patch, so any finished run packages without flags; the
  output computed by the packaged SavedModel itself; a cover (the crop and its overlay); how far
  the crop's particles (standardised on the crop alone, as consumers do) agree with `segment` on
  the whole micrograph (dice, in ``tem_rf.json`` and the README, a warning below 0.9);
  a generated ``README.md`` (architecture, receptive field, training pixel size as a warning,
  dataset, dice, how to cite); ``tem_rf.json`` (the export metadata) attached.

Needs the optional ``bioimageio`` extra (``pip install "tem_rf[bioimageio]"``); without it
`export_bioimageio` raises `ExportError` saying so. The zip is written under a temporary name
beside it and renamed; an existing file is replaced only with ``overwrite`` and only when it is a
tem_rf bioimage.io package (`is_tem_rf_package`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import shutil
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tem_rf.serve.signatures import METADATA_FILENAME, SIGNATURE_OUTPUT
from tem_rf.serve.export import (
    ExportError, check_model, float32_model, model_compute_dtype, model_folders, write_saved_model,
)
from tem_rf.serve.export_metadata import build_metadata
from tem_rf.serve.serving_functions import particle_probability_fn, raw_micrograph_fn

logger = logging.getLogger(__name__)

SUFFIX = ".bioimageio.zip"
EXTRA_HINT = 'the bioimageio format needs the bioimageio extra: pip install "tem_rf[bioimageio]"'
INPUT_ID = "micrograph"
OUTPUT_ID = "particle_probability"
ENDPOINT = "serve"  # Keras' TFSMLayer (bioimageio.core's TensorFlow 2 adapter) calls this endpoint
DATA_DOI = "10.5281/zenodo.6419024"
PAPER_DOI = "10.1017/S1431927622012466"
PAPER = (
    "Sytwu K., Groschner C., Scott M. C. Understanding the influence of receptive field and "
    "network complexity in neural-network-guided TEM image analysis. Microscopy and "
    "Microanalysis (2022), doi:" + PAPER_DOI
)
DATA = "Sytwu K., Groschner C., Scott M. C. Data and code of the receptive-field study. Zenodo, doi:" + DATA_DOI
_AUTHOR = re.compile(r"^[^\s,;<>][^,;<>]*[^\s,;<>]$|^[^\s,;<>]$")


def check_extra() -> None:
    """Raises `ExportError` with the install line when ``bioimageio.spec`` cannot be imported."""
    try:
        import bioimageio.spec  # noqa: F401
    except ImportError:
        raise ExportError(EXTRA_HINT) from None


def check_authors(authors: Sequence[str]) -> list[str]:
    """The author names, stripped; `ExportError` for none or a malformed one."""
    names = [str(name).strip() for name in authors or ()]
    if not names:
        raise ExportError("--authors: give at least one author, e.g. --authors='Jane Doe'")
    for name in names:
        if not _AUTHOR.match(name) or len(name) > 200:
            raise ExportError(
                f"--authors: {name!r} is not a name (one author per --authors flag; no , ; < >)"
            )
    return names


def check_license(license_id: str | None) -> str:
    """An SPDX licence id that bioimage.io accepts (e.g. ``CC-BY-4.0``, ``MIT``), else `ExportError`."""
    check_extra()
    from bioimageio.spec.model.v0_5 import LicenseId

    if not license_id:
        raise ExportError("--license: give the model's licence as an SPDX id, e.g. CC-BY-4.0 or MIT")
    try:
        return str(LicenseId(license_id.strip()))
    except Exception:  # pydantic ValidationError: not an SPDX id
        raise ExportError(
            f"--license: {license_id!r} is not an SPDX licence id (e.g. CC-BY-4.0, CC0-1.0, MIT, "
            "BSD-3-Clause; see https://spdx.org/licenses/)"
        ) from None


def is_tem_rf_package(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a zip written by `export_bioimageio`: ``rdf.yaml`` and a
    ``tem_rf.json`` that is a JSON object with tem_rf's metadata keys."""
    path = Path(path)
    if path.is_symlink() or not path.is_file():
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if "rdf.yaml" not in names or METADATA_FILENAME not in names:
                return False
            metadata = json.loads(archive.read(METADATA_FILENAME))
    except (zipfile.BadZipFile, OSError, ValueError):
        return False
    return isinstance(metadata, dict) and {"tem_rf_version", "halo_px", "size_divisor"} <= set(metadata)


def package_path(out: str | os.PathLike, name: str) -> Path:
    """``out`` itself when it ends in ``.bioimageio.zip``, else ``out/<name>.bioimageio.zip``."""
    out = Path(out)
    return out if out.name.endswith(SUFFIX) else out / f"{name}{SUFFIX}"


def check_package_target(target: str | os.PathLike, *, overwrite: bool = False) -> None:
    """Raises `ExportError` naming ``target`` unless a package may be written there: it does not
    exist, or (with ``overwrite``) it is a previous tem_rf package."""
    target = Path(target)
    if target.is_symlink():
        raise ExportError(f"{target}: is a symbolic link; give the file itself")
    if not target.exists():
        return
    if not target.is_file():
        raise ExportError(f"{target}: exists and is not a file; refusing to replace it")
    if not is_tem_rf_package(target):
        raise ExportError(f"{target}: exists and is not a tem_rf bioimage.io package; refusing to replace it")
    if not overwrite:
        raise ExportError(f"{target}: holds a previous tem_rf bioimage.io package; pass --overwrite to replace it")


def dataset_patch(config: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, str]:
    """``(image, label, where)``: the first patch with most particle pixels among the first 16 of
    the run's dataset (test split, else val, else train), as float32 ``[H, W]`` and uint8 0/1."""
    from tem_rf.data import load_split, read_dataset_info

    data_dir = config.get("data_dir")
    if not data_dir or not Path(data_dir).is_dir():
        raise ExportError(
            f"{data_dir}: the run's dataset (config.json data_dir) is not there; the package's test "
            "input must be a real patch: pass --test_image=MICROGRAPH"
        )
    info = read_dataset_info(data_dir)
    for split in ("test", "val", "train"):
        if (info.get("splits") or {}).get(split, {}).get("count"):
            images, labels = [], []
            for image, label in load_split(data_dir, split, batch_size=1).take(16):
                images.append(image.numpy()[0, :, :, 0])
                labels.append(label.numpy()[0].astype(np.uint8))
            best = int(np.argmax([label.sum() for label in labels]))
            return images[best], labels[best], f"{Path(data_dir).name}/{split} patch {best}"
    raise ExportError(f"{data_dir}: the dataset has no patches")


AGREEMENT_WARNING = 0.9  # below: the crop's own statistics change the particles found
TEST_INPUT_MAX_PX = 512  # the test input's side at most (or the smallest valid size, when larger)


def valid_size(available: int, sizes: dict[str, int]) -> int | None:
    """The largest input side the package takes (``min + n * step``) within ``available`` px and
    `TEST_INPUT_MAX_PX` (or ``min`` when that is larger); None when ``available < min``."""
    limit = min(available, max(TEST_INPUT_MAX_PX, sizes["min"]))
    if limit < sizes["min"]:
        return None
    return sizes["min"] + (limit - sizes["min"]) // sizes["step"] * sizes["step"]


@dataclasses.dataclass
class TestInput:
    """The package's test input: a centre crop of a micrograph (``whole``, with the crop's
    ``top``/``left``), or of a dataset patch when no micrograph is there (``whole`` None)."""

    image: np.ndarray  # float32 [size, size], as read
    where: str
    whole: np.ndarray | None = None
    top: int = 0
    left: int = 0


def _centre_crop(data: np.ndarray, size: int) -> tuple[np.ndarray, int, int]:
    top, left = (data.shape[0] - size) // 2, (data.shape[1] - size) // 2
    return data[top : top + size, left : left + size].astype(np.float32), top, left


def choose_test_input(config: dict[str, Any], sizes: dict[str, int], test_image: str | os.PathLike | None) -> TestInput:
    """The largest valid centre crop (`valid_size`) of ``test_image``, else of the first micrograph
    of the run's dataset that is still there and large enough (test split, then val, then train),
    else of its best patch (`dataset_patch`). Raises `ExportError` naming what is missing."""
    from tem_rf.data.reading import read_micrograph
    from tem_rf.serve.segment import check_not_a_mask

    if test_image is not None:
        candidates = [Path(test_image)]
    else:
        candidates = []
        data_dir = config.get("data_dir")
        info_file = Path(data_dir) / "dataset.json" if data_dir else None
        if info_file is not None and info_file.is_file():
            sources = json.loads(info_file.read_text()).get("sources") or []
            for split in ("test", "val", "train"):
                candidates += [Path(s["image_path"]) for s in sources
                               if s.get("split") == split and s.get("image_path") and Path(s["image_path"]).is_file()]
    for path in candidates:
        data = np.asarray(read_micrograph(path).data)
        check_not_a_mask(path, data)  # a label mask given as the test image
        size = valid_size(min(data.shape), sizes)
        if size is None:
            if test_image is not None:
                raise ExportError(f"{path}: micrograph {data.shape[0]}x{data.shape[1]} px is smaller than the "
                                  f"package's smallest input, {sizes['min']} px")
            continue
        image, top, left = _centre_crop(data, size)
        return TestInput(image, f"{path.name} centre crop {size}x{size} px", data.astype(np.float32), top, left)
    patch, _, where = dataset_patch(config)
    size = valid_size(min(patch.shape), sizes)
    if size is None:
        raise ExportError(
            f"{where}: no micrograph of the run's dataset is there, and its {patch.shape[0]} px patches are smaller "
            f"than the package's smallest input ({sizes['min']} px); pass --test_image=MICROGRAPH"
        )
    image, _, _ = _centre_crop(patch, size)
    return TestInput(image, f"{where}, centre crop {size}x{size} px")


def whole_micrograph_agreement(model: Any, config: dict[str, Any], test: TestInput, package_probability: np.ndarray) -> float | None:
    """Dice between the package's particles on the test crop and `segment`'s on the whole
    micrograph (which standardises the whole micrograph) over the same pixels; None without one."""
    from tem_rf.metrics import dice_from_counts
    from tem_rf.serve.predictor import keras_predictor
    from tem_rf.serve.segment import segment_image

    if test.whole is None:
        return None
    _, mask = segment_image(test.whole, keras_predictor(model, config))
    size = test.image.shape[0]
    whole = mask[test.top : test.top + size, test.left : test.left + size].astype(bool)
    package = package_probability > 0.5
    return dice_from_counts(int((whole & package).sum()), int(package.sum()), int(whole.sum()))


def _cover(image: np.ndarray, probability: np.ndarray, target: Path) -> None:
    """A 2:1 PNG: the patch, and the patch with the predicted particles outlined in red."""
    from PIL import Image
    from skimage.segmentation import find_boundaries

    low, high = np.percentile(image, (0.5, 99.5))
    grey = np.clip((image - low) / max(high - low, 1e-12) * 255, 0, 255).astype(np.uint8)
    rgb = np.repeat(grey[:, :, None], 3, axis=2)
    overlay = rgb.copy()
    mask = probability > 0.5
    overlay[find_boundaries(mask, mode="inner")] = (255, 45, 45)
    picture = Image.fromarray(np.concatenate([rgb, overlay], axis=1))
    scale = max(1, 256 // image.shape[0])
    picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST).save(target)


def _agreement_text(metadata: dict[str, Any]) -> str:
    """The README's sentence on how the test crop's particles compare with the whole micrograph's."""
    dice = (metadata.get("bioimageio") or {}).get("test_input_dice_vs_whole_micrograph")
    if dice is None:
        return ""
    return (f" The package standardises each input on its own: on this crop its particles agree with tem_rf's "
            f"`segment` of the whole micrograph with dice {dice:.3f}; give it whole micrographs, or tiles a few "
            "hundred pixels wide, rather than small crops.")


def _documentation(metadata: dict[str, Any], config: dict[str, Any], where: str, sizes: dict[str, int],
                   metrics: dict[str, Any]) -> str:
    pixel = metadata.get("pixel_size_nm")
    rf_nm = metadata.get("receptive_field_nm")
    pools = config.get("pool_sizes")
    dilations = config.get("dilations")
    dice = ", ".join(
        f"{key.replace('_', ' ')} {value:.3f}" for key, value in metrics.items()
        if key in ("val_hard_dice", "val_soft_dice", "test_hard_dice", "test_soft_dice") and value is not None
    ) or "not recorded"
    pixel_line = (
        f"**Training pixel size: {pixel:.4g} nm/px.** The network learnt particle sizes and lattice "
        f"fringes in pixels: resample your micrographs to {pixel:.4g} nm/px first (more than 2 % off "
        "and tem_rf's own `segment` does; more than 10 % and the segmentation may be poor), then "
        "resample the output back. In Fiji: *Image > Scale...* with the factor (your pixel size / "
        f"{pixel:.4g}), *Interpolation: Bilinear* and *Averaging when downsizing* ticked; back with the "
        "inverse factor. In napari (Python): `skimage.transform.rescale(image, factor, order=1, "
        "anti_aliasing=factor < 1)`, and back with `skimage.transform.resize(output, image.shape, "
        "order=1)`. Factors beyond 8x either way are not served by tem_rf."
        if pixel else "**Training pixel size: unknown** (the dataset recorded none): use micrographs "
        "at the magnification of the training data."
    )
    return f"""# tem_rf nanoparticle segmentation: {metadata['architecture']}

{pixel_line}

Residual UNet (tem_rf {metadata['tem_rf_version']}) that segments crystalline nanoparticles in
transmission electron micrographs: it returns the particle probability of every pixel
(threshold at 0.5 for a mask).

## Input and preprocessing

Raw micrographs (counts, any range), float32 `[batch, y, x, 1]`. The model does tem_rf's
preprocessing itself, inside the graph: x-ray outlier pixels (farther than
{metadata['normalisation']['xray_threshold']} robust standard deviations from their 3x3 median)
are replaced by the mean of their non-outlier neighbours, then each micrograph is standardised
(mean 0, std 1). So give it **whole micrographs** (or large tiles): standardisation is per input.
Sizes: y and x = {sizes['min']} + n x {sizes['step']} px; tiling consumers crop a halo of
{sizes['halo']} px from each side of every tile so the stitched result equals one pass.

## Architecture

| | |
|---|---|
| architecture | {metadata['architecture']} |
| residual blocks N | {config.get('num_blocks', 'n/a')} |
| pool sizes | {pools if pools is not None else 'n/a'} |
| dilations | {dilations if dilations is not None else 'n/a'} |
| receptive field (Eq. 1) | {metadata['receptive_field_px']} px{f' = {rf_nm:.2f} nm' if rf_nm else ''} |
| size divisor | {metadata['size_divisor']} px |
| tiling halo | {metadata['halo_px']} px |
| trainable parameters | {metadata['trainable_params']} |
| training pixel size | {f'{pixel:.4g} nm/px' if pixel else 'unknown'} |

## Training data

Dataset `{Path(str(config.get('data_dir') or 'unknown')).name}`; patch size {config.get('patch_size', 'n/a')} px,
seed {config.get('seed', 'n/a')}, {config.get('epochs', 'n/a')} epochs. Test input of this package: {where}.{_agreement_text(metadata)}

## Validation

Dice of the particle class on the run's dataset (pooled over all pixels of the 8 dihedral
variants of every patch): {dice}. To validate on your own data, segment micrographs with
known masks at the training pixel size and compute the dice
(`python3 -m experiments.evaluate` in tem_rf does this for a TFRecord dataset).

## How to cite

{PAPER}

{DATA}

Exported by tem_rf; `tem_rf.json` (attached) holds the full export metadata.
"""


def export_bioimageio(
    model_path: str | os.PathLike,
    out: str | os.PathLike,
    *,
    authors: Sequence[str],
    license_id: str,
    overwrite: bool = False,
    test_image: str | os.PathLike | None = None,
    name: str | None = None,
) -> tuple[Path, dict[str, Any]]:
    """Writes ``model_path``'s network (a run directory or ``.keras`` file) as a bioimage.io
    package; returns ``(zip path, tem_rf metadata)``. See the module docstring."""
    check_extra()
    authors = check_authors(authors)
    license_id = check_license(license_id)
    import tensorflow as tf

    from tem_rf.core.files import atomic_path
    from tem_rf.core.locks import output_lock, remove_stale_temporaries
    from tem_rf.core.pretrained import model_source
    from tem_rf.train.rundir import load_run

    model, config, model_file = load_run(model_path)
    run_dir = model_folders(model_path)[0]
    check_model(model)
    serving_model = float32_model(model)
    metadata = build_metadata(
        serving_model, config, compute_dtype=model_compute_dtype(serving_model),
        source=model_source(model_path, model_file), run_dir=Path(model_file).parent,
    )
    name = name or str(metadata["architecture"])
    target = package_path(out, name)
    check_package_target(target, overwrite=overwrite)
    divisor, halo = int(metadata["size_divisor"]), int(metadata["halo_px"])
    halo = max(halo, 1)
    min_size = 2 * halo + divisor  # the spec: min size - 2 * halo >= 1; a multiple of the divisor
    min_size = -(-max(min_size, int(metadata["signature"]["min_size_px"])) // divisor) * divisor
    sizes = {"min": min_size, "step": divisor, "halo": halo}

    test = choose_test_input(config, sizes, test_image)
    image, where = test.image, test.where
    metrics = {}
    metrics_file = run_dir / "metrics.json"
    if metrics_file.is_file():
        try:
            metrics = json.loads(metrics_file.read_text())
        except ValueError:
            metrics = {}
    metadata["bioimageio"] = {"sizes": sizes, "test_input": where, "endpoint": ENDPOINT}

    with tempfile.TemporaryDirectory(prefix=".tem_rf_bioimageio.") as work:
        work = Path(work)
        preprocessed = particle_probability_fn(serving_model, divisor)
        raw = raw_micrograph_fn(
            preprocessed, "float32", xray_threshold=metadata["normalisation"]["xray_threshold"],
            min_size=int(metadata["signature"]["min_size_px"]),
            receptive_field_px=int(metadata["receptive_field_px"]), rank=4, outputs=(SIGNATURE_OUTPUT,),
            statistics_margin=halo,  # consumers pad the input by the halo (bioimageio.core: symmetric)
        )

        # The output keeps a channel axis, [batch, y, x, 1]: bioimageio.core's blockwise prediction
        # needs every output axis to have a block member.
        @tf.function(input_signature=[tf.TensorSpec([None, None, None, 1], tf.float32, name=INPUT_ID)])
        def endpoint(micrograph):
            return {SIGNATURE_OUTPUT: raw(micrograph)[SIGNATURE_OUTPUT][..., None]}

        write_saved_model(serving_model, metadata, work / "saved_model", target, functions={ENDPOINT: endpoint})
        weights = work / "tf_weights.zip"
        shutil.make_archive(str(weights.with_suffix("")), "zip", work / "saved_model")
        # The test output comes from the packaged SavedModel itself.
        loaded = tf.saved_model.load(str(work / "saved_model"))
        test_input = image[None, :, :, None].astype(np.float32)
        test_output = loaded.signatures["serving_default"](**{"micrograph": tf.constant(test_input)})
        test_output = test_output[SIGNATURE_OUTPUT].numpy().astype(np.float32)
        np.save(work / "test_input.npy", test_input)
        np.save(work / "test_output.npy", test_output)
        _cover(image, test_output[0, ..., 0], work / "cover.png")
        agreement = whole_micrograph_agreement(model, config, test, test_output[0, ..., 0])
        metadata["bioimageio"]["test_input_dice_vs_whole_micrograph"] = agreement
        if agreement is not None and agreement < AGREEMENT_WARNING:
            logger.warning("%s: the package's particles on its test crop agree with segment on the whole micrograph "
                           "with dice %.3f only: the crop is standardised on its own", where, agreement)
        (work / "README.md").write_text(_documentation(metadata, config, where, sizes, metrics))
        (work / METADATA_FILENAME).write_text(json.dumps(metadata, indent=2) + "\n")
        descr = _description(metadata, config, name, authors, license_id, sizes, work, tf.__version__)
        from bioimageio.spec import save_bioimageio_package

        save_bioimageio_package(descr, output_path=work / "package.zip")
        try:  # one writer of the package at a time, which may clear a killed one's temporary
            with output_lock(target), atomic_path(target) as tmp:
                remove_stale_temporaries([target], keep=[tmp])
                check_package_target(target, overwrite=overwrite)
                shutil.copyfile(work / "package.zip", tmp)
        except OSError as error:
            raise ExportError(f"{target}: cannot write the package: {error}") from error
    return target, metadata


def _description(metadata, config, name, authors, license_id, sizes, work: Path, tf_version: str):
    from bioimageio.spec.model.v0_5 import (
        Author,
        AxisId,
        BatchAxis,
        ChannelAxis,
        CiteEntry,
        Doi,
        FileDescr,
        Identifier,
        InputTensorDescr,
        IntervalOrRatioDataDescr,
        LicenseId,
        ModelDescr,
        OutputTensorDescr,
        ParameterizedSize,
        SizeReference,
        SpaceInputAxis,
        SpaceOutputAxisWithHalo,
        TensorflowSavedModelBundleWeightsDescr,
        TensorId,
        Version,
        WeightsDescr,
    )

    pixel = metadata.get("pixel_size_nm")
    unit = {"unit": "nanometer", "scale": float(pixel)} if pixel else {}
    size = ParameterizedSize(min=sizes["min"], step=sizes["step"])
    input_axes = [
        BatchAxis(),
        SpaceInputAxis(id=AxisId("y"), size=size, **unit),
        SpaceInputAxis(id=AxisId("x"), size=size, **unit),
        ChannelAxis(channel_names=[Identifier("micrograph")]),
    ]
    output_axes = [BatchAxis()] + [
        SpaceOutputAxisWithHalo(
            id=AxisId(axis), halo=sizes["halo"],
            size=SizeReference(tensor_id=TensorId(INPUT_ID), axis_id=AxisId(axis)), **unit,
        )
        for axis in ("y", "x")
    ] + [ChannelAxis(channel_names=[Identifier(OUTPUT_ID)])]
    pixel_text = f"trained at {pixel:.4g} nm/px: resample micrographs to it" if pixel else "training pixel size unknown"
    return ModelDescr(
        name=f"tem_rf nanoparticle segmentation {name}",
        description=(
            f"Residual UNet segmenting crystalline nanoparticles in TEM micrographs ({pixel_text}); "
            "raw micrographs in (x-ray removal and standardisation inside the model), particle "
            "probability out."
        )[:1024],
        authors=[Author(name=author) for author in authors],
        cite=[CiteEntry(text=PAPER, doi=Doi(PAPER_DOI)), CiteEntry(text=DATA, doi=Doi(DATA_DOI))],
        license=LicenseId(license_id),
        documentation=FileDescr(source=work / "README.md"),
        covers=[FileDescr(source=work / "cover.png")],
        attachments=[FileDescr(source=work / METADATA_FILENAME)],
        tags=["tem", "electron-microscopy", "nanoparticles", "semantic-segmentation", "2d", "tensorflow", "unet"],
        inputs=[
            InputTensorDescr(
                id=TensorId(INPUT_ID),
                description="raw micrograph (counts); cast to float32",
                axes=input_axes,
                test_tensor=FileDescr(source=work / "test_input.npy"),
                data=IntervalOrRatioDataDescr(type="float32"),
            )
        ],
        outputs=[
            OutputTensorDescr(
                id=TensorId(OUTPUT_ID),
                description="particle probability (threshold at 0.5 for a mask)",
                axes=output_axes,
                test_tensor=FileDescr(source=work / "test_output.npy"),
                data=IntervalOrRatioDataDescr(type="float32", range=(0.0, 1.0)),
            )
        ],
        weights=WeightsDescr(
            tensorflow_saved_model_bundle=TensorflowSavedModelBundleWeightsDescr(
                source=work / "tf_weights.zip", tensorflow_version=Version(tf_version),
            )
        ),
        config={"tem_rf": {key: metadata[key] for key in (
            "tem_rf_version", "architecture", "receptive_field_px", "receptive_field_nm", "halo_px",
            "size_divisor", "pixel_size_nm",
        )}},
    )


def format_package_summary(path: str | os.PathLike, metadata: dict[str, Any]) -> str:
    """A short report of a written package: where, its input and output, sizes, pixel size."""
    sizes = metadata["bioimageio"]["sizes"]
    pixel = metadata["pixel_size_nm"]
    return "\n".join([
        f"exported {metadata['architecture']} to {path}",
        f"  bioimage.io model (spec 0.5): raw micrograph float32 [batch, y, x, 1] -> particle_probability "
        f"[batch, y, x, 1]; y, x = {sizes['min']} + n x {sizes['step']} px, halo {sizes['halo']} px",
        "  training pixel size " + (f"{pixel:.4g} nm: resample micrographs to it" if pixel is not None else "unknown")
        + f"; test input: {metadata['bioimageio']['test_input']}",
    ])
