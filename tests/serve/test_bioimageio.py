"""BioImage Model Zoo package: a tiny trained run exported with --format=bioimageio passes
bioimageio.core's own test_model, runs in bioimageio.core on a new micrograph like `segment`, and
the zip is replaced only when it is a previous tem_rf package (with overwrite)."""

import json
import re
import zipfile

import numpy as np
import pytest

pytest.importorskip("bioimageio.core")

from tem_rf.data.reading import read_micrograph  # noqa: E402
from tem_rf.serve.bioimageio import (  # noqa: E402
    EXTRA_HINT,
    check_authors,
    check_license,
    export_bioimageio,
    is_tem_rf_package,
)
from tem_rf.serve.export import ExportError  # noqa: E402
from tem_rf.serve.predictor import load_predictor  # noqa: E402
from tem_rf.serve.segment import segment_image  # noqa: E402

from training_helpers import make_tiny_dataset  # noqa: E402

pytestmark = pytest.mark.large


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    """A run trained one epoch on demo micrographs (64 px patches), exported as a package."""
    from tem_rf.train.config import TrainConfig
    from tem_rf.train.loop import train

    root = tmp_path_factory.mktemp("bioimageio")
    data = make_tiny_dataset(root, size=128, patch_size=64)
    train(TrainConfig(data_dir=str(data), model_dir=str(root / "run"), num_blocks=2, epochs=1,
                      batch_size=4, seed=0), progress=False)
    path, metadata = export_bioimageio(root / "run", root / "out", authors=["Jane Doe", "Max Mustermann"],
                                       license_id="CC-BY-4.0")
    return root, path, metadata


def test_package_holds_what_the_zoo_and_the_user_need(package):
    root, path, metadata = package
    assert path == root / "out" / "N2_k2-2_d1-1-1.bioimageio.zip" and is_tem_rf_package(path)
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        rdf = archive.read("rdf.yaml").decode()
        readme = archive.read("README.md").decode()
        attached = json.loads(archive.read("tem_rf.json"))
    assert {"rdf.yaml", "tf_weights.zip", "test_input.npy", "test_output.npy", "cover.png", "README.md",
            "tem_rf.json"} <= names
    assert attached["halo_px"] == 24 and attached["size_divisor"] == 4
    assert str(root) not in json.dumps(attached)  # no absolute path of this machine
    for text in ("tensorflow_saved_model_bundle", "halo: 24", "min: 52", "step: 4", "unit: nanometer",
                 "scale: 0.5", "license: CC-BY-4.0", "Jane Doe", "10.5281/zenodo.6419024",
                 "10.1017/S1431927622012466"):  # the paper's DOI, and the data's
        assert text in rdf, text
    for text in ("Training pixel size: 0.5 nm/px", "receptive field (Eq. 1) | 44 px = 22.00 nm",
                 "pool sizes | [2, 2]", "## Validation", "Sytwu", "Groschner", "Scott", "10.5281/zenodo.6419024"):
        assert text in readme, text
    # no --test_image: one of the dataset's test micrographs, whole (128 px is a valid size), whose
    # particles on its own agree with segment's on the whole micrograph
    assert re.fullmatch(r"low_res_00\d\.tif centre crop 128x128 px", metadata["bioimageio"]["test_input"])
    assert metadata["bioimageio"]["test_input_dice_vs_whole_micrograph"] > 0.9
    assert "agree with tem_rf's `segment` of the whole micrograph with dice" in readme


def test_a_run_whose_micrographs_are_gone_packages_a_patch(package, tmp_path):
    root, _, _ = package
    images = root / "demo_low_res" / "images"
    images.rename(root / "moved")  # the dataset's micrographs are no longer there
    try:
        _, metadata = export_bioimageio(root / "run", tmp_path, authors=["Jane Doe"], license_id="MIT")
    finally:
        (root / "moved").rename(images)
    assert re.fullmatch(r"data_low_res_0\.6-0\.2-0\.2/test patch \d+, centre crop 64x64 px",
                        metadata["bioimageio"]["test_input"])
    assert metadata["bioimageio"]["test_input_dice_vs_whole_micrograph"] is None


def test_bioimageio_core_test_model_passes(package, tmp_path, monkeypatch):
    from bioimageio.core import test_model

    _, path, _ = package
    monkeypatch.chdir(tmp_path)  # the TensorFlow adapter unzips the weights into the working folder
    summary = test_model(str(path))
    failed = [(d.name, [e.msg for e in d.errors]) for d in summary.details if d.status != "passed"]
    assert summary.status == "passed", failed


def test_package_in_bioimageio_core_equals_segment_on_a_new_micrograph(package, tmp_path, monkeypatch):
    from bioimageio.core import predict
    from bioimageio.spec.model.v0_5 import TensorId

    from tem_rf.data import synthetic

    root, path, _ = package
    synthetic.write_demo_dataset(tmp_path / "new", num_images=1, size=128, kind="low_res", seed=11,
                                 pixel_size_nm=0.5)
    raw = read_micrograph(next((tmp_path / "new" / "images").iterdir())).data[:120, :96]  # 52 + n*4
    raw = raw.copy()
    raw[30, 40] = raw.max() * 50  # an x-ray hit, removed inside the graph as segment removes it
    monkeypatch.chdir(tmp_path)
    sample = predict(model=str(path), inputs={TensorId("micrograph"): raw[None, :, :, None].astype(np.float32)})
    output = sample.members[TensorId("particle_probability")].data.to_numpy()
    expected, _ = segment_image(raw, load_predictor(root / "run"), tile_size=None)
    halo = 24  # bioimageio.core pads the input by the halo (symmetric), segment does not
    inner = (slice(halo, -halo), slice(halo, -halo))
    np.testing.assert_allclose(output.reshape(expected.shape)[inner], expected[inner], atol=1e-4)
    assert output.shape == (1, *raw.shape, 1)  # a channel axis: what blockwise prediction needs

    # Tiled (blockwise) prediction runs (it failed without the output's channel axis: "block with
    # members [] does not overlap"). Each block is standardised on its own, so on a one-epoch
    # network its values differ from the whole micrograph's; they are probabilities all the same.
    tiled = predict(model=str(path), inputs={TensorId("micrograph"): raw[None, :, :, None].astype(np.float32)},
                    blocksize_parameter=2).members[TensorId("particle_probability")].data.to_numpy()
    assert tiled.shape == output.shape and ((tiled >= 0) & (tiled <= 1)).all()


def test_an_existing_zip_is_replaced_only_when_it_is_a_tem_rf_package_and_overwrite(package, tmp_path):
    root, path, _ = package
    mine = tmp_path / "mine.bioimageio.zip"
    with zipfile.ZipFile(mine, "w") as archive:
        archive.writestr("rdf.yaml", "name: someone else's model\n")
    before = mine.read_bytes()
    with pytest.raises(ExportError, match="not a tem_rf bioimage.io package; refusing to replace it"):
        export_bioimageio(root / "run", mine, authors=["Jane Doe"], license_id="MIT", overwrite=True)
    assert mine.read_bytes() == before
    with pytest.raises(ExportError, match="previous tem_rf bioimage.io package; pass --overwrite"):
        export_bioimageio(root / "run", path, authors=["Jane Doe"], license_id="MIT")
    copy = tmp_path / "copy.bioimageio.zip"
    copy.write_bytes(path.read_bytes())
    (tmp_path / ".copy.bioimageio.zip.k1lled0x.tmp").write_bytes(b"half a package of a killed export")
    export_bioimageio(root / "run", copy, authors=["Jane Doe"], license_id="MIT", overwrite=True)
    assert is_tem_rf_package(copy) and "license: MIT" in zipfile.ZipFile(copy).read("rdf.yaml").decode()
    # no temporary: neither this export's nor the killed one's
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy.bioimageio.zip", "mine.bioimageio.zip"]


def test_authors_and_licence_are_checked():
    assert check_authors([" Jane Doe "]) == ["Jane Doe"]
    assert check_license("CC-BY-4.0") == "CC-BY-4.0"
    for authors in ([], [""], ["Doe, Jane"], ["a; b"]):
        with pytest.raises(ExportError, match="--authors"):
            check_authors(authors)
    for licence in (None, "", "my own licence"):
        with pytest.raises(ExportError, match="--license"):
            check_license(licence)
    assert "pip install" in EXTRA_HINT and "tem_rf[bioimageio]" in EXTRA_HINT
