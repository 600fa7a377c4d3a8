"""Applying a network at the scale it learned: each micrograph is resampled to the training pixel
size before the network and its probability resampled back to the micrograph's own grid.

The paper's central quantity is a physical length: a network trained at 0.02152 nm/px has a
receptive field of so many nanometres and learned lattice fringes and particle edges of a
physical size. At another magnification it would see other features, so `plan_scale` decides,
per micrograph, the grid the network sees:

* the micrograph's pixel size comes from its file, else from ``--pixel_size_nm`` (the file's
  own calibration wins);
* ``policy="auto"`` resamples when it differs from the training pixel size by more than
  `SCALE_TOLERANCE`; ``"never"`` applies the network at the native grid (then a mismatch is only
  warned about);
* a network trained without a pixel size applies at the native grid (sizes in px);
* a micrograph without a pixel size, for a network that has one, is refused naming both ways out;
* a factor beyond `MAX_SCALE_FACTOR` either way is refused with the numbers: resampling cannot
  make a micrograph at 3,000x the training pixel size into one the network can read;
* so is a micrograph too coarse for the particles the network learned (`check_particles_resolved`):
  enlarging a micrograph adds no detail, and a particle under
  `tem_rf.particles.measure.MIN_MEASURABLE_PARTICLE_PX` across on its own grid cannot be sized
  (smaller ones found are not counted: the default minimum particle area is never below its disc).

`to_network_grid` and `to_micrograph_grid` resample with TensorFlow's ``tf.image.resize``
(bilinear, with its anti-aliasing kernel when shrinking). Particles are measured on the
micrograph's own grid, in nm.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os

import numpy as np

from tem_rf.core.errors import InputError
from tem_rf.core.units import pixel_size_or_none
from tem_rf.particles.measure import MIN_MEASURABLE_PARTICLE_PX

logger = logging.getLogger(__name__)

RESAMPLE_POLICIES = ("auto", "never")
RESCALE_POLICIES = ("auto", "never")
MIN_PARTICLES_TO_MATCH = 5  # fewer whole particles in a first pass: too few to judge their size
SCALE_TOLERANCE = 0.02  # pixel sizes within 2 % of the training one: the network's own grid
MAX_SCALE_FACTOR = 8.0  # resampled by more than this either way: refused


@dataclasses.dataclass(frozen=True)
class ScalePlan:
    """The grid one micrograph is segmented on.

    ``factor`` is the micrograph's pixel size over the training one: the network sees the
    micrograph resized by it (> 1: enlarged, < 1: shrunk), 1.0 at the native grid.
    """

    pixel_size_nm: float | None
    pixel_size_source: str
    training_pixel_size_nm: float | None
    factor: float
    shape: tuple[int, int]
    network_shape: tuple[int, int]
    # set when the factor comes from matching particle sizes (`particle_scale_plan`): the median
    # diameter (px) of a first pass's particles, and the training particles' median
    first_pass_particle_px: float | None = None
    trained_particle_px: float | None = None

    @property
    def resampled(self) -> bool:
        return self.network_shape != self.shape


def _check_policy(flag: str, value: str, policies: tuple[str, ...]) -> None:
    if value not in policies:
        raise InputError(None, f"--{flag} must be one of {', '.join(policies)}, got {value!r}")


def _network_shape(shape: tuple[int, int], factor: float) -> tuple[int, int]:
    """``shape`` resized by ``factor``, at least 1 px a side (rounded as the SavedModel's graph does)."""
    return max(1, round(shape[0] * factor)), max(1, round(shape[1] * factor))


def check_scale_options(pixel_size_nm: float | None, resample: str, rescale: str = "never",
                        override_pixel_size: bool = False) -> None:
    """Refuses, before anything is read, a ``--pixel_size_nm`` that is not a positive number, an
    ``--override_pixel_size`` without one and an unknown ``--resample`` or ``--rescale`` policy."""
    if pixel_size_nm is not None and pixel_size_or_none(pixel_size_nm) is None:
        raise InputError(None, f"--pixel_size_nm must be a positive number, got {pixel_size_nm}")
    if override_pixel_size and pixel_size_nm is None:
        raise InputError(None, "--override_pixel_size needs --pixel_size_nm: the pixel size to use instead of the files'")
    _check_policy("resample", resample, RESAMPLE_POLICIES)
    _check_policy("rescale", rescale, RESCALE_POLICIES)


def micrograph_pixel_size(
    path: str | os.PathLike | None, file_pixel_size_nm: float | None, flag_pixel_size_nm: float | None,
    override: bool = False,
) -> tuple[float | None, str]:
    """The pixel size to use and where it came from: the file's (``"file"``), else the flag's
    (``"flag"``), else unknown; with ``override`` the flag's even over the file's (``"override"``,
    a miscalibrated microscope), said in a warning when they differ."""
    file_value = pixel_size_or_none(file_pixel_size_nm)
    flag_value = pixel_size_or_none(flag_pixel_size_nm)
    if override and flag_value is not None:
        if file_value is not None and not math.isclose(file_value, flag_value, rel_tol=0.01):
            logger.warning("%s: the file says %.4g nm/px; using %.4g from --pixel_size_nm (--override_pixel_size)",
                           path, file_value, flag_value)
        return flag_value, "override" if file_value is not None else "flag"
    if file_value is not None:
        if flag_value is not None and not math.isclose(file_value, flag_value, rel_tol=0.01):
            logger.warning("%s: the file says %.4g nm/px, --pixel_size_nm says %.4g; using the file's "
                           "(--override_pixel_size uses the flag's)", path, file_value, flag_value)
        return file_value, "file"
    if flag_value is not None:
        return flag_value, "flag"
    return None, "unknown"


def plan_scale(
    path: str | os.PathLike | None,
    shape: tuple[int, int],
    pixel_size_nm: float | None,
    pixel_size_source: str,
    training_pixel_size_nm: float | None,
    policy: str = "auto",
    trained_particle_px: dict | None = None,
) -> ScalePlan:
    """The `ScalePlan` of a micrograph of ``shape`` (module docstring); raises `InputError` naming
    ``path`` for a micrograph that cannot be served at the network's scale (``trained_particle_px``:
    the training particles' diameters on the network's grid, `Predictor.particle_diameter_px`)."""
    _check_policy("resample", policy, RESAMPLE_POLICIES)
    shape = (int(shape[0]), int(shape[1]))
    training = pixel_size_or_none(training_pixel_size_nm)
    native = ScalePlan(pixel_size_nm, pixel_size_source, training, 1.0, shape, shape)
    if policy == "never" or training is None:
        return native
    if pixel_size_nm is None:
        raise InputError(
            path,
            f"has no pixel size and the network was trained at {training:.4g} nm/px, so it cannot be "
            "resampled to the network's scale: give --pixel_size_nm, or --resample=never to apply the "
            "network at the micrograph's own grid (sizes then in px)",
        )
    factor = pixel_size_nm / training
    if abs(factor - 1.0) <= SCALE_TOLERANCE:
        return native
    if not 1.0 / MAX_SCALE_FACTOR <= factor <= MAX_SCALE_FACTOR:
        raise InputError(
            path,
            f"pixel size {pixel_size_nm:.4g} nm is {factor:.3g}x the network's training pixel size "
            f"{training:.4g} nm; resampling by more than {MAX_SCALE_FACTOR:g}x either way is refused "
            "(the particles and fringes the network learned would not survive it): bin or crop the "
            "micrograph nearer that pixel size, or use a network trained at this one",
        )
    plan = ScalePlan(pixel_size_nm, pixel_size_source, training, factor, shape, _network_shape(shape, factor))
    check_particles_resolved(path, plan, trained_particle_px)
    return plan


def check_particles_resolved(
    path: str | os.PathLike | None, plan: ScalePlan, trained_particle_px: dict | None
) -> None:
    """Refuses a micrograph so coarse that even the large particles the network learned (the
    training split's 95th-percentile diameter, ``trained_particle_px["q95"]`` on the network's
    grid) would be under `MIN_MEASURABLE_PARTICLE_PX` across on the micrograph's own grid:
    enlarging it to the training pixel size would not bring back the detail they need."""
    if not trained_particle_px or not trained_particle_px.get("q95") or plan.factor <= 1.0:
        return
    largest_px = float(trained_particle_px["q95"]) / plan.factor
    if largest_px >= MIN_MEASURABLE_PARTICLE_PX:
        return
    training = plan.training_pixel_size_nm
    raise InputError(
        path,
        f"at {plan.pixel_size_nm:.4g} nm/px the particles this network learned (up to "
        f"{trained_particle_px['q95'] * training:.3g} nm, {trained_particle_px['q95']:.3g} px at its "
        f"{training:.4g} nm/px) would be at most {largest_px:.2g} px across; under "
        f"{MIN_MEASURABLE_PARTICLE_PX:g} px a particle cannot be sized, and resampling adds no detail: "
        "record the micrograph at a finer pixel size, or use a network trained on larger particles",
    )


def _resize(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``image`` [H, W] (or [H, W, C], each channel alike) resized to ``shape``."""
    # TensorFlow's bilinear resize with its anti-aliasing kernel when shrinking (a triangle filter
    # widened by the factor): 4-10x faster than scikit-image's Gaussian + interpolation on a 4096²
    # micrograph, and the same operation a SavedModel can run in its graph.
    import tensorflow as tf

    image = np.asarray(image, np.float32)
    channels = image if image.ndim == 3 else image[..., None]
    out = tf.image.resize(channels[None], shape, method="bilinear", antialias=True)[0].numpy()
    return out if image.ndim == 3 else out[..., 0]


def to_network_grid(image: np.ndarray, plan: ScalePlan) -> np.ndarray:
    """``image`` (the micrograph's grid) on the network's grid of ``plan``."""
    return image if not plan.resampled else _resize(image, plan.network_shape)


def to_micrograph_grid(probability: np.ndarray, plan: ScalePlan) -> np.ndarray:
    """A probability [H, W] (or probabilities [H, W, C]) on the network's grid back on the
    micrograph's own, clipped to [0, 1]."""
    if not plan.resampled:
        return probability
    return np.clip(_resize(probability, plan.shape), 0.0, 1.0)


SPECK_FRACTION = 0.25  # components below this fraction of the area-weighted median: specks, not particles


def particle_median_px(mask: np.ndarray) -> float | None:
    """The median equivalent diameter (px) of a mask's whole 8-connected particles; None for fewer
    than `MIN_PARTICLES_TO_MATCH`.

    At a scale the network never learned, a mask holds many specks of noise beside the particles;
    they are many but small, so the median weighted by area is the particles' size, and
    components below `SPECK_FRACTION` of it are left out before the plain median is taken."""
    from tem_rf.data.particle_sizes import mask_particle_diameters

    diameters = np.sort(mask_particle_diameters(mask, mask, instance_ids=False))
    if diameters.size < MIN_PARTICLES_TO_MATCH:
        return None
    weights = np.cumsum(diameters ** 2)
    weighted_median = diameters[np.searchsorted(weights, weights[-1] / 2)]
    particles = diameters[diameters >= SPECK_FRACTION * weighted_median]
    return float(np.median(particles)) if particles.size >= MIN_PARTICLES_TO_MATCH else None


def particle_scale_plan(plan: ScalePlan, first_pass_mask: np.ndarray, trained: dict | None) -> ScalePlan | None:
    """For a network trained without a pixel size: the plan that brings a micrograph's particles
    to the sizes the network learned, or None when they are already among them.

    ``trained`` is the training particles' diameter summary (`tem_rf.data.particle_sizes`). The
    particles of the first pass (``first_pass_mask`` on ``plan``'s grid: whole 8-connected
    components, specks left out: `particle_median_px`) have a median diameter; inside the trained
    5-95 % range nothing changes, else the micrograph is resized by trained median / found median
    (within `MAX_SCALE_FACTOR` either way).
    The paper's finding (quality depends on the receptive field relative to the particle) applied
    at inference time."""
    if not trained or not trained.get("median") or plan.resampled:
        return None
    found = particle_median_px(first_pass_mask)
    if found is None:
        return None
    if trained["q05"] <= found <= trained["q95"]:
        return None
    factor = min(max(trained["median"] / found, 1.0 / MAX_SCALE_FACTOR), MAX_SCALE_FACTOR)
    if abs(factor - 1.0) <= SCALE_TOLERANCE:
        return None
    return dataclasses.replace(plan, factor=factor, network_shape=_network_shape(plan.shape, factor),
                               first_pass_particle_px=found, trained_particle_px=float(trained["median"]))


def trained_min_area_px(trained: dict | None, factor: float = 1.0) -> float | None:
    """The smallest particle counted on a micrograph without a pixel size, from the training
    particles instead of a fixed 16 px: a disc of half the trained 5th-percentile diameter, on the
    micrograph's grid (network grid / ``factor``). None when the sizes are unknown."""
    if not trained or not trained.get("q05"):
        return None
    return float(math.pi / 4 * (trained["q05"] / 2 / factor) ** 2)


def describe_plan(plan: ScalePlan) -> str:
    """One phrase for logs and summaries: the pixel sizes and what was done."""
    if plan.first_pass_particle_px is not None:
        return (f"particles of {plan.first_pass_particle_px:.1f} px in a first pass, {plan.trained_particle_px:.1f} px "
                f"in training: rescaled x{plan.factor:.3g} ({plan.shape[0]}x{plan.shape[1]} -> "
                f"{plan.network_shape[0]}x{plan.network_shape[1]} px)")
    if plan.pixel_size_nm is None:
        return "pixel size unknown: the network's native grid, sizes in px"
    here = f"{plan.pixel_size_nm:.4g} nm/px ({plan.pixel_size_source})"
    if not plan.resampled:
        return f"{here}, segmented at its own grid"
    return (f"{here}, resampled x{plan.factor:.3g} to the training {plan.training_pixel_size_nm:.4g} nm/px "
            f"({plan.shape[0]}x{plan.shape[1]} -> {plan.network_shape[0]}x{plan.network_shape[1]} px)")


def scale_record(plan: ScalePlan) -> dict[str, object]:
    """What segmentation.json records per micrograph about its scale."""
    return {
        "pixel_size_nm": plan.pixel_size_nm,
        "pixel_size_source": plan.pixel_size_source,
        "training_pixel_size_nm": plan.training_pixel_size_nm,
        "resample_factor": plan.factor,
        "network_shape": list(plan.network_shape),
        "first_pass_particle_px": plan.first_pass_particle_px,
        "trained_particle_px": plan.trained_particle_px,
    }
