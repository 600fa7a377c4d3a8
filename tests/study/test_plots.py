"""The analysis figures render to PNG files (paper Fig. 5-8, S7, S8)."""

import numpy as np

from tem_rf.study import false_negatives as analysis
from tem_rf.study import erf
from tem_rf.study import plots
from tem_rf.models import residual_unet

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _data(count=2, size=64):
    rng = np.random.default_rng(0)
    rows, cols = np.mgrid[:size, :size]
    labels = np.stack([((rows - 30 - 3 * i) ** 2 + (cols - 28) ** 2 < 15**2) for i in range(count)]).astype(np.int32)
    images = rng.standard_normal((count, size, size)).astype(np.float32) + labels
    return images, labels


def _is_png(path) -> bool:
    return path.read_bytes()[:8] == PNG_SIGNATURE and path.stat().st_size > 5000


def test_all_figures_render(tmp_path):
    images, labels = _data()
    truth = labels.astype(bool)
    shrunk = truth.copy()
    shrunk[:, :, :20] = False
    methods = [plots.Method("N2_k2-2_d1-1-1", shrunk, 44), plots.Method("N2_k4-4_d1-1-1", truth, 120)]
    pixel_size = 0.02152
    plots.plot_segmentation_overlays(images, labels, methods, tmp_path / "overlays.png", pixel_size_nm=pixel_size)
    plots.plot_pool_vs_dilation(images, labels, methods[0], plots.Method("N2_k2-2_d1-1-2", truth, 60),
                                tmp_path / "pool_vs_dilation.png", pixel_size_nm=pixel_size, zoom_px=32)
    with_fourier = [plots.Method("fourier", shrunk)] + methods
    plots.plot_false_negative_maps(images, labels, with_fourier, tmp_path / "fn.png")
    rows = analysis.compare_false_negatives(labels, {m.name: m.masks for m in with_fourier})
    plots.plot_fn_overlap_summary(rows, analysis.summarize_fn_overlap(rows), tmp_path / "fn_summary.png")
    model = residual_unet(2, (2, 2), seed=0)
    field = erf.effective_receptive_field(model, images)
    plots.plot_effective_receptive_fields([("N2_k2-2", field)], tmp_path / "erf.png")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["erf.png", "fn.png", "fn_summary.png", "overlays.png", "pool_vs_dilation.png"]
    assert all(_is_png(tmp_path / name) for name in names)


def test_rf_label_and_disagreement_centre():
    assert plots.rf_label(44, 0.02152) == "RF 0.95 nm (44 px)"
    assert plots.rf_label(44, None) == "RF 44 px"
    label = np.zeros((64, 64), bool)
    a = np.zeros((64, 64), bool)
    b = a.copy()
    b[40:48, 10:18] = True  # the masks differ only here
    row, col = plots.disagreement_centre(label, a, b, box=16)
    assert 36 <= row <= 52 and 6 <= col <= 22
