"""Real files written by microscope software (../shared/realfiles, see its README.md) read as a
microscopist expects: the right shape and pixel size, or a refusal saying what the file is.

The folder is not part of the project (GPL test data of rosettasciio); the tests skip without it.
``TEM_RF_REALFILES`` points at another copy.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import pytest

from tem_rf.core.errors import InputError
from tem_rf.data.reading import read_micrograph

REALFILES = Path(
    os.environ.get("TEM_RF_REALFILES")
    or Path(__file__).resolve().parents[2].parent / "shared" / "realfiles"
)

# file -> (shape, pixel size in nm or None, signal reported) for files that hold one micrograph.
READ = {
    "test_STEM_image.dm3": ((68, 68), 0.248538, None),
    "HAADFscan.mrc": ((16, 16), 5.67913, None),
    "test_loading_image_saved_with_imageJ.tif": ((68, 68), 168.675, None),
    "JEOL-SightX-TEM-mag-dummy.tif": ((556, 556), 1.82079, None),
    "multi_signal.dm3": ((512, 512), 0.0177516, "HAADF"),
    "test-8.dm3": ((2, 2), None, None),
}
# file -> what the refusal must say.
REFUSED = {
    "test_stackbuilder_imagestack.dm3": "is a stack of 3 frames of 2x16 px, not a single image",
    "fei_example_tem_stack.emd": "is a time series: a stack of 2 frames of 3x3 px, not a single image",
    "test-MonarcCL_spectrum-SI.dm4": "is a spectrum image of 670 channels x 3 x 3 px",
    "test_diffraction_pattern.dm3": "is a diffraction pattern of 87x87 px in reciprocal space (axes in 1/nm), "
    "not a real-space micrograph",
}
# file -> (frame, shape, pixel size nm) for stacks read one frame at a time.
FRAMES = {
    "test_stackbuilder_imagestack.dm3": (2, (2, 16), 59.9829),
    "fei_example_tem_stack.emd": (1, (3, 3), 0.00817288),
}


def _real_file(name: str) -> Path:
    if not REALFILES.is_dir():
        pytest.skip(f"real microscope files not found at {REALFILES} (set TEM_RF_REALFILES)")
    path = REALFILES / name
    if not path.is_file():
        pytest.skip(f"{path} is missing")
    pytest.importorskip("rsciio")
    return path


def test_every_file_of_the_folder_readme_is_covered():
    readme = REALFILES / "README.md"
    if not readme.is_file():
        pytest.skip(f"real microscope files not found at {REALFILES} (set TEM_RF_REALFILES)")
    listed = set(re.findall(r"^\| `([^`]+)` \|", readme.read_text(encoding="utf-8"), re.MULTILINE))
    assert listed, "the README's table lists no files"
    assert listed <= set(READ) | set(REFUSED), sorted(listed - set(READ) - set(REFUSED))


@pytest.mark.parametrize("name", sorted(READ))
def test_micrographs_are_read_with_their_pixel_size(name, caplog):
    shape, pixel_size_nm, signal = READ[name]
    with caplog.at_level(logging.INFO, logger="tem_rf.data.reading"):
        micrograph = read_micrograph(_real_file(name))
    assert micrograph.shape == shape
    if pixel_size_nm is None:
        assert micrograph.pixel_size_nm is None
    else:
        assert micrograph.pixel_size_nm == pytest.approx(pixel_size_nm, rel=1e-4)
    assert micrograph.signal == signal
    if signal is not None:  # the log says which signal of several was used
        assert f"using {signal!r}" in caplog.text


def test_dm_rgba_is_read_as_grey():
    micrograph = read_micrograph(_real_file("test-8.dm3"))
    assert micrograph.data.ndim == 2 and micrograph.data.dtype.kind == "f"


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_what_is_not_a_micrograph_is_refused_saying_what_it_is(name):
    path = _real_file(name)
    with pytest.raises(InputError) as info:
        read_micrograph(path)
    assert str(info.value).startswith(f"{path}: {REFUSED[name]}")
    assert "RGB" not in str(info.value)


@pytest.mark.parametrize("name", sorted(FRAMES))
def test_one_frame_of_a_stack_when_asked(name):
    frame, shape, pixel_size_nm = FRAMES[name]
    path = _real_file(name)
    micrograph = read_micrograph(path, frame=frame)
    assert micrograph.shape == shape and micrograph.frame == frame
    assert micrograph.pixel_size_nm == pytest.approx(pixel_size_nm, rel=1e-4)
    with pytest.raises(InputError, match=rf"--frame=9 is out of range: the stack has {frame + 1} frames"):
        read_micrograph(path, frame=9)


@pytest.mark.parametrize("name", sorted(FRAMES))
def test_each_frame_is_read_lazily_and_equals_the_whole_stack(name):
    """DM and Velox stacks are read frame by frame (rosettasciio's lazy reading: a movie larger
    than memory), each frame exactly as the whole stack read at once holds it."""
    import numpy as np

    from tem_rf.data.reading import MICROGRAPH_SUFFIXES, _read_signals, frame_count

    path = _real_file(name)
    signal, = [s for s in _read_signals(path, "micrograph", MICROGRAPH_SUFFIXES, calibrate=True, lazy=True)
               if s.data.ndim == 3]
    assert type(signal.data).__name__ == "Array"  # dask: nothing read yet
    whole, = [s for s in _read_signals(path, "micrograph", MICROGRAPH_SUFFIXES, calibrate=True) if s.data.ndim == 3]
    assert isinstance(whole.data, np.ndarray)
    for frame in range(frame_count(path)):
        np.testing.assert_array_equal(read_micrograph(path, frame=frame).data, whole.data[frame])


def test_a_movie_of_real_stacks_is_segmented_or_refused_whole(tmp_path):
    """``segment --frames=all`` on the real stacks: the Velox series' frames are 3x3 px of 0.008 nm,
    far from any network's pixel size and too small for one; it is refused naming the file and
    why, and nothing is left behind."""
    from stub_networks import blur_predictor

    from tem_rf.serve.movie import segment_movie

    path = _real_file("fei_example_tem_stack.emd")
    with pytest.raises(InputError, match=rf"{re.escape(str(path))}: pixel size 0.008173 nm is 0.0163x the network"):
        segment_movie(path, blur_predictor(), tmp_path / "out", frames="all", tile_size=None)
    assert not (tmp_path / "out").exists()
    with pytest.raises(InputError, match=rf"{re.escape(str(path))}: .*3x3"):
        segment_movie(path, blur_predictor(), tmp_path / "out", frames="all", tile_size=None, resample="never")
    assert not (tmp_path / "out").exists()


def test_signal_option_on_a_multi_signal_file():
    path = _real_file("multi_signal.dm3")
    assert read_micrograph(path, signal="haadf").signal == "HAADF"
    with pytest.raises(InputError, match=r"holds a 1-D profile or plot of 512 points, not a 2-D image"):
        read_micrograph(path, signal="Plot")
    with pytest.raises(InputError, match=r"no signal titled 'EDS'; its signals are 'HAADF' \(a 512x512 px image\), 'Plot'"):
        read_micrograph(path, signal="EDS")
    with pytest.raises(InputError, match=r"test_STEM_image\.dm3: is a single image, --frame does not apply"):
        read_micrograph(_real_file("test_STEM_image.dm3"), frame=0)
