"""tem_rf.data.particle_sizes: the training particles' diameters, from binary and instance masks."""

import numpy as np

from tem_rf.data.particle_sizes import mask_particle_diameters, summarise_diameters


def _disc(shape, row, col, radius):
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    return (rows - row) ** 2 + (cols - col) ** 2 <= radius ** 2


def test_whole_particles_of_binary_and_instance_masks():
    shape = (80, 100)
    ids = np.zeros(shape, np.uint16)
    ids[_disc(shape, 20, 20, 6)] = 1
    ids[_disc(shape, 20, 60, 8)] = 2
    ids[_disc(shape, 20, 60 + 16, 8) & (ids == 0)] = 3  # touching 2: one blob in the binary mask
    ids[_disc(shape, 78, 50, 6)] = 4  # cut by the edge: not counted
    binary = (ids > 0).astype(np.uint8)
    disc6, disc8 = _disc(shape, 20, 20, 6).sum(), _disc(shape, 20, 60, 8).sum()
    expected = np.sqrt(4 * np.array([disc6, disc8]) / np.pi)
    by_id = mask_particle_diameters(ids, binary, instance_ids=True)
    assert by_id.size == 3
    np.testing.assert_allclose(by_id[:2], expected)  # in id order
    by_component = mask_particle_diameters(ids, binary, instance_ids=False)
    assert by_component.size == 2 and by_component.max() > 1.3 * expected[1]  # the touching pair as one
    assert mask_particle_diameters(np.zeros(shape), np.zeros(shape, np.uint8), instance_ids=False).size == 0


def test_summary_quantiles():
    summary = summarise_diameters(range(1, 102))
    assert summary == {"count": 101, "q05": 6.0, "q25": 26.0, "median": 51.0, "q75": 76.0, "q95": 96.0}
    assert summarise_diameters([]) is None
