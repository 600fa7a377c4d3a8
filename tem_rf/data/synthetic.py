"""A small synthetic TEM dataset, generated in seconds, so the project runs without a download.

Two kinds of micrograph, after the paper's two regimes:

* ``high_res``: phase-contrast images of crystalline particles (3-8 nm) on amorphous carbon. The
  particles show lattice fringes (a sinusoid of 0.20-0.24 nm spacing, the Au {200}/{111}
  spacings, at a random orientation; some particles carry a second fringe set) and only a weak
  amplitude contrast, so texture, not brightness, tells particle from background.
* ``low_res``: amplitude-contrast images of larger particles (15-25 nm) that are darker than the
  background (mass-thickness contrast), with no resolved lattice.

Both have an amorphous background (Gaussian-filtered white noise: the speckle of amorphous
carbon), a faint illumination gradient, and shot noise at the paper's electron dose, recorded as
camera counts (uint16). Masks are exact: a pixel is particle when its centre lies inside a
particle's ellipse. Generated images are not real data: use them to run and test the pipeline,
not to draw conclusions about real micrographs.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from tem_rf.core.errors import InputError
from tem_rf.core.files import atomic_directory, os_error_text
from tem_rf.core.locks import output_lock, remove_stale_temporaries
from tem_rf.core.units import require_pixel_size

KINDS = ("high_res", "low_res")
DEMO_JSON = "demo.json"  # lists the files of a demo dataset (`demo_files`)
# The paper's datasets: 5 nm Au at 0.02152 nm/px (TEAM 0.5, 423 e/A^2) and 20 nm Au at
# 0.1243 nm/px (TitanX, 16 e/A^2).
DEFAULT_PIXEL_SIZE_NM = {"high_res": 0.02152, "low_res": 0.1243}
DEFAULT_DIAMETER_NM = {"high_res": (3.0, 8.0), "low_res": (15.0, 25.0)}
DEFAULT_DOSE_E_PER_A2 = {"high_res": 423.0, "low_res": 16.0}
CAMERA_GAIN = 8.0  # counts per electron
CAMERA_OFFSET = 100.0  # counts (dark level)


def _pixel_size_or_default(kind: str, pixel_size_nm: float | None) -> float:
    """``pixel_size_nm`` (checked), or the paper's pixel size for ``kind`` when None."""
    if pixel_size_nm is None:
        return DEFAULT_PIXEL_SIZE_NM[kind]
    return require_pixel_size(pixel_size_nm, "pixel_size_nm")


@dataclass(frozen=True)
class Particle:
    """An elliptical particle: centre (row, col) and semi-axes in pixels, angle in radians."""

    row: float
    col: float
    semi_major: float
    semi_minor: float
    angle: float

    def inside(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Normalised radius squared (<= 1 inside) at pixel centres ``rows``, ``cols``."""
        dr, dc = rows - self.row, cols - self.col
        u = dc * math.cos(self.angle) + dr * math.sin(self.angle)
        v = -dc * math.sin(self.angle) + dr * math.cos(self.angle)
        return (u / self.semi_major) ** 2 + (v / self.semi_minor) ** 2

    @property
    def diameter_px(self) -> float:
        """Equivalent-circle diameter of the ellipse, ``2 sqrt(semi_major * semi_minor)``."""
        return 2.0 * math.sqrt(self.semi_major * self.semi_minor)

    def drawn(self, size: int) -> tuple[int, bool]:
        """``(pixels, touches_edge)`` of this particle in a ``size`` x ``size`` mask: how many
        pixel centres lie inside it, and whether one of them is in the first or last row or
        column (the particle is cut by the field of view)."""
        reach = self.semi_major + 1
        r0, r1 = max(int(self.row - reach), 0), min(int(self.row + reach) + 2, size)
        c0, c1 = max(int(self.col - reach), 0), min(int(self.col + reach) + 2, size)
        if r0 >= r1 or c0 >= c1:
            return 0, False
        rows, cols = np.mgrid[r0:r1, c0:c1].astype(np.float64)
        inside = self.inside(rows, cols) <= 1.0
        touches = bool(
            (r0 == 0 and inside[0].any())
            or (r1 == size and inside[-1].any())
            or (c0 == 0 and inside[:, 0].any())
            or (c1 == size and inside[:, -1].any())
        )
        return int(np.count_nonzero(inside)), touches


def particle_records(particles: list[Particle], size: int, pixel_size_nm: float) -> list[dict]:
    """One row per drawn particle (the ground truth of a demo micrograph): ``id`` (1..n in drawing
    order), centre ``row_px``, ``col_px`` (pixel indices; nm = px * pixel size), ``row_nm``,
    ``col_nm``, the ellipse (``semi_major_px``, ``semi_minor_px``, ``angle_rad``), its
    equivalent-circle ``diameter_px`` and ``diameter_nm``, ``area_px`` (the pixels it covers in
    the mask) and ``touches_edge``."""
    records = []
    for index, particle in enumerate(particles, start=1):
        pixels, touches = particle.drawn(size)
        records.append(
            {
                "id": index,
                "row_px": particle.row,
                "col_px": particle.col,
                "row_nm": particle.row * pixel_size_nm,
                "col_nm": particle.col * pixel_size_nm,
                "semi_major_px": particle.semi_major,
                "semi_minor_px": particle.semi_minor,
                "angle_rad": particle.angle,
                "diameter_px": particle.diameter_px,
                "diameter_nm": particle.diameter_px * pixel_size_nm,
                "area_px": pixels,
                "touches_edge": touches,
            }
        )
    return records


def as_rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def sample_particles(
    size: int,
    diameter_px: tuple[float, float],
    rng: np.random.Generator,
    coverage: float = 0.3,
    max_particles: int = 60,
) -> list[Particle]:
    """Non-overlapping particles until about ``coverage`` of the image is covered.

    Centres may lie near the border, so some particles are cut by the image edge, as in real
    micrographs.
    """
    particles: list[Particle] = []
    area = 0.0
    for _ in range(40 * max_particles):
        if area >= coverage * size * size or len(particles) >= max_particles:
            break
        diameter = rng.uniform(*diameter_px)
        aspect = rng.uniform(1.0, 1.3)
        semi_major = diameter / 2 * math.sqrt(aspect)
        semi_minor = diameter / 2 / math.sqrt(aspect)
        row, col = rng.uniform(0, size, 2)
        if any(
            math.hypot(row - p.row, col - p.col) < 1.1 * (semi_major + p.semi_major) for p in particles
        ):
            continue
        particles.append(Particle(row, col, semi_major, semi_minor, rng.uniform(0, math.pi)))
        area += math.pi * semi_major * semi_minor
    return particles


def amorphous_speckle(size: int, sigma_px: float, rng: np.random.Generator) -> np.ndarray:
    """Unit-variance speckle: white noise low-passed at ``sigma_px``."""
    speckle = ndimage.gaussian_filter(rng.standard_normal((size, size)), sigma_px, mode="wrap")
    return speckle / speckle.std()


def camera_counts(transmission: np.ndarray, dose_e_per_a2: float, pixel_size_nm: float,
                  rng: np.random.Generator) -> np.ndarray:
    """What the camera records of a ``transmission`` image (float32 counts): shot noise at
    ``dose_e_per_a2`` (Poisson electrons per pixel of ``pixel_size_nm``), then the camera's gain
    and offset; a dose of 0 gives the noise-free image on an arbitrary scale."""
    electrons_per_pixel = dose_e_per_a2 * (pixel_size_nm * 10.0) ** 2
    if electrons_per_pixel > 0:
        electrons = rng.poisson(transmission * electrons_per_pixel).astype(np.float64)
    else:
        electrons = transmission * 100.0  # noise-free, on an arbitrary scale
    return (CAMERA_OFFSET + CAMERA_GAIN * electrons).astype(np.float32)


def make_micrograph(
    kind: str = "high_res",
    size: int = 512,
    pixel_size_nm: float | None = None,
    rng: np.random.Generator | int | None = None,
    *,
    diameter_nm: tuple[float, float] | None = None,
    dose_e_per_a2: float | None = None,
    return_particles: bool = False,
):
    """One synthetic micrograph: ``(image float32 camera counts [size, size], mask uint8 0/1)``.

    ``pixel_size_nm``, ``diameter_nm`` and ``dose_e_per_a2`` default to the paper's values for
    ``kind``; ``dose_e_per_a2=0`` gives a noise-free image. With ``return_particles`` a third
    item lists the `Particle`s drawn.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if size < 8:
        raise ValueError(f"size must be at least 8 pixels, got {size}")
    rng = as_rng(rng)
    pixel_size_nm = _pixel_size_or_default(kind, pixel_size_nm)
    diameter_nm = DEFAULT_DIAMETER_NM[kind] if diameter_nm is None else diameter_nm
    dose = DEFAULT_DOSE_E_PER_A2[kind] if dose_e_per_a2 is None else float(dose_e_per_a2)
    diameter_px = (diameter_nm[0] / pixel_size_nm, diameter_nm[1] / pixel_size_nm)
    particles = sample_particles(size, diameter_px, rng)

    if kind == "high_res":
        # Amorphous carbon speckle at ~0.1 and ~0.4 nm; weak, as in phase-contrast images.
        background = 0.06 * amorphous_speckle(size, max(0.1 / pixel_size_nm, 0.7), rng)
        background += 0.04 * amorphous_speckle(size, max(0.4 / pixel_size_nm, 0.7), rng)
    else:
        background = 0.05 * amorphous_speckle(size, max(1.0 / pixel_size_nm, 0.7), rng)
    transmission = 1.0 + background
    mask = np.zeros((size, size), dtype=np.uint8)

    for particle in particles:
        reach = particle.semi_major + 1
        r0, r1 = max(int(particle.row - reach), 0), min(int(particle.row + reach) + 2, size)
        c0, c1 = max(int(particle.col - reach), 0), min(int(particle.col + reach) + 2, size)
        if r0 >= r1 or c0 >= c1:
            continue
        rows, cols = np.mgrid[r0:r1, c0:c1].astype(np.float64)
        radius2 = particle.inside(rows, cols)
        inside = radius2 <= 1.0
        mask[r0:r1, c0:c1][inside] = 1
        # Projected thickness of an ellipsoid: 1 at the centre, 0 at the edge.
        thickness = np.sqrt(np.clip(1.0 - radius2, 0.0, None))
        if kind == "high_res":
            contrast = -rng.uniform(0.03, 0.08) * thickness  # weak amplitude contrast
            sets = 2 if rng.random() < 0.3 else 1
            theta = rng.uniform(0, math.pi)
            for index in range(sets):
                spacing_px = rng.uniform(0.20, 0.24) / pixel_size_nm
                direction = theta + index * rng.uniform(math.radians(55), math.radians(70))
                phase = rng.uniform(0, 2 * math.pi)
                wave = np.cos(
                    2 * math.pi * (cols * math.cos(direction) + rows * math.sin(direction)) / spacing_px + phase
                )
                # Fringes fade towards the thin edge; the substrate speckle stays underneath.
                contrast = contrast + rng.uniform(0.12, 0.22) / sets * np.minimum(1.0, 2.5 * thickness) * wave
        else:
            contrast = -rng.uniform(0.35, 0.55) * thickness  # mass-thickness contrast: darker
        transmission[r0:r1, c0:c1] += np.where(inside, contrast, 0.0)

    # Faint illumination gradient across the field of view.
    ramp_angle = rng.uniform(0, 2 * math.pi)
    rows, cols = np.mgrid[0:size, 0:size] / size - 0.5
    transmission *= 1.0 + 0.03 * (cols * math.cos(ramp_angle) + rows * math.sin(ramp_angle))
    transmission = np.clip(transmission, 0.0, None)

    image = camera_counts(transmission, dose, pixel_size_nm, rng)
    if return_particles:
        return image, mask, particles
    return image, mask


def demo_files(info: dict) -> list[str]:
    """The files a demo dataset consists of, relative to its folder: demo.json, images, masks and
    particle tables, as its demo.json lists them."""
    return [DEMO_JSON] + [str(path) for key in ("images", "labels", "particles") for path in info.get(key, [])]


def check_demo_out_dir(out_dir: Path, overwrite: bool, *, record: str = DEMO_JSON, what: str = "demo dataset") -> None:
    """Refuses an ``out_dir`` demo data may not be written to (a file, a folder of other files,
    demo data without ``overwrite``, demo data beside files its ``record`` does not list): the
    demo dataset's (`demo_files`) or a demo movie's (``record`` movie.json, its ``files``)."""
    from tem_rf.core.manifest import check_only_owned

    if out_dir.is_symlink() or (out_dir.exists() and not out_dir.is_dir()):
        raise InputError(out_dir, f"exists and is not a folder; choose a new folder for the {what}")
    if not out_dir.exists() or not any(out_dir.iterdir()):
        return
    if not (out_dir / record).exists():
        raise InputError(out_dir, f"exists, is not empty and holds no {what}; choose a new folder")
    if not overwrite:
        raise InputError(out_dir, f"already holds a {what}; pass --overwrite to replace it")
    try:
        info = json.loads((out_dir / record).read_text())
        files = demo_files(info) if record == DEMO_JSON else [record] + [str(name) for name in info["files"]]
    except (OSError, ValueError, TypeError, AttributeError, KeyError):
        raise InputError(
            out_dir, f"holds a {record} that cannot be read, so what tem_rf wrote there is not known; "
            "nothing is replaced: remove the folder yourself or choose another one"
        ) from None
    check_only_owned(out_dir, files, ("images", "labels", "particles") if record == DEMO_JSON else (), record=record)


def write_demo_dataset(
    out_dir: str | os.PathLike,
    num_images: int = 10,
    size: int = 512,
    kind: str = "high_res",
    seed: int = 0,
    *,
    pixel_size_nm: float | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> dict:
    """Writes ``images/<kind>_NNN.tif`` (uint16, pixel size in ImageJ metadata) and
    ``labels/<kind>_NNN_mask.png`` (0/255, as labelling tools export) plus ``demo.json``, and
    the particles drawn in each, ``particles/<kind>_NNN.csv`` (`particle_records`: true centres
    and diameters, listed in ``demo.json``'s ``particles``).

    The folder is written under a temporary name and renamed when complete. An existing
    ``out_dir`` is replaced only with ``overwrite`` and only if it holds a demo dataset and nothing
    else (`demo_files`: what its demo.json lists). ``progress``: a progress bar over the micrographs.
    """
    from tem_rf.core.imagej_tiff import write_imagej_tiff
    from PIL import Image

    from tem_rf.core.files import write_csv
    from tem_rf.core.progress import progress_bar

    out_dir = Path(out_dir)
    if num_images < 1:
        raise ValueError(f"num_images must be >= 1, got {num_images}")
    check_demo_out_dir(out_dir, overwrite)
    pixel_size_nm = _pixel_size_or_default(kind, pixel_size_nm)
    smallest_px, largest_px = (d / pixel_size_nm for d in DEFAULT_DIAMETER_NM[kind])
    if smallest_px > size:  # any particle drawn covers the micrograph: masks of 70-100 % particle
        raise ValueError(
            f"--size={size} px is smaller than every {kind} particle ({smallest_px:.0f}-{largest_px:.0f} px across "
            f"at {pixel_size_nm:g} nm/px): give --size of a few times {math.ceil(largest_px)} px or a larger "
            "--pixel_size_nm"
        )
    rng = np.random.default_rng(seed)
    names = []
    try:
        # Checked again just before the swap: a file added meanwhile is not deleted.
        with output_lock(out_dir), \
                atomic_directory(out_dir, lambda target: check_demo_out_dir(target, overwrite)) as tmp:
            remove_stale_temporaries([out_dir], keep=[tmp])
            (tmp / "images").mkdir()
            (tmp / "labels").mkdir()
            (tmp / "particles").mkdir()
            for index in progress_bar(range(num_images), desc="micrographs", unit="micrograph", enabled=progress):
                # return_particles draws nothing more from rng: the images are those without it.
                image, mask, particles = make_micrograph(kind, size, pixel_size_nm, rng, return_particles=True)
                name = f"{kind}_{index:03d}"
                counts = np.clip(np.rint(image), 0, np.iinfo(np.uint16).max).astype(np.uint16)
                write_imagej_tiff(tmp / "images" / f"{name}.tif", counts, pixel_size_nm)
                Image.fromarray(mask * np.uint8(255)).save(tmp / "labels" / f"{name}_mask.png")
                write_csv(tmp / "particles" / f"{name}.csv", particle_records(particles, size, pixel_size_nm))
                names.append(name)
            info = {
                "kind": kind,
                "num_images": num_images,
                "size": size,
                "seed": seed,
                "pixel_size_nm": pixel_size_nm,
                "particle_diameter_nm": list(DEFAULT_DIAMETER_NM[kind]),
                "dose_e_per_a2": DEFAULT_DOSE_E_PER_A2[kind],
                "images": [f"images/{n}.tif" for n in names],
                "labels": [f"labels/{n}_mask.png" for n in names],
                "particles": [f"particles/{n}.csv" for n in names],
                "note": "synthetic data from tem_rf.data.synthetic; for running and testing the pipeline",
            }
            (tmp / DEMO_JSON).write_text(json.dumps(info, indent=2) + "\n")
    except OSError as error:  # disk full, not writable: name the folder asked for
        raise InputError(out_dir, f"cannot write the demo data: {os_error_text(error)}") from None
    return info


__all__ = [
    "KINDS",
    "DEFAULT_PIXEL_SIZE_NM",
    "Particle",
    "make_micrograph",
    "particle_records",
    "sample_particles",
    "write_demo_dataset",
]
