"""Which architecture? The paper's rule of thumb, the images' own spectrum, or a sweep's results.

Three answers, each from existing machinery:

* **The rule** (`recommend`): the architectures of the sweep grid (`tem_rf.models.architecture_grid`
  x per-level pools, plus the sweep's dilation sets at pool 2), each built and measured by
  `tem_rf.models.architectures.architecture_table` (Eq. 1 read off the built graph), ordered by
  trainable parameters, then receptive field, then size divisor. High resolution (lattice
  fringes): the first whose receptive field spans the particle (RF >= (1 - tolerance) x diameter),
  since dice rises with RF up to about one particle diameter and then plateaus; low resolution
  (amplitude contrast): the first of all, since RF does not matter there (`RULES`). Depths are
  built in increasing N and the search stops one depth past the choice (a deeper residual UNet
  always has more parameters, Table 2).
* **The images** (`detect_lattice`): the radial power spectrum of the micrographs
  (`tem_rf.study.fourier.radial_spectrum`); a first-order lattice ring that `auto_band` accepts
  means high resolution.
* **A sweep** (`advise_from_sweep`): the lightest architecture whose mean test hard dice is within
  one standard deviation of the best (`tem_rf.study.sweep.lightest_within_one_std`).
"""

from __future__ import annotations

import dataclasses
import math
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

PAPER = "Sytwu, Groschner & Scott, 'Understanding the influence of receptive field and network complexity'"
RULES = {
    "high_res": (
        ("high resolution (lattice fringes; amplitude and phase contrast): hard dice rises with the "
         "receptive field and plateaus once it spans about one particle diameter (5 nm Au at 0.02152 nm/px, "
         "N=2: 0.727 +- 0.004 at RF 0.95 nm, 0.783 +- 0.007 at 8.4 nm, plateau around 5 nm with max pooling "
         "and with dilation, both near 0.79); a light network with a large enough RF can beat a deeper one with "
         "a small RF; small or low-contrast particles need more (2.2 nm particles plateau at an RF much larger "
         "than their diameter)"),
        "Results, Fig. 2d, Fig. 3 and Fig. 4b",
    ),
    "low_res": (
        ("low resolution (amplitude contrast, no fringes): the receptive field does not matter (20 nm Au at "
         "0.1243 nm/px, N=2: 0.974 +- 0.001 at RF 5.5 nm, a quarter of the diameter, 0.963 +- 0.007 at 48.7 nm; "
         "the slight loss comes from large pools' blocky edges) and deeper networks are only slightly better, "
         "so the lightest network is as good"),
        "Results, Fig. 2c; Discussion, Fig. 5",
    ),
}
# The sweep's default --dilation_grid (experiments/sweep.py), all-ones left out as the sweep does.
DEFAULT_DILATION_SETS = ((1, 1, 2), (2, 2, 2), (2, 2, 4), (2, 4, 8), (4, 8, 8), (4, 8, 16))
DEFAULT_TOLERANCE = 0.05  # "about one diameter": RF >= 95 % of it (the paper's 4.99 nm RF for 5 nm)
RESOLUTIONS = ("auto", "high", "low")
_REGIME_OF_FLAG = {"high": "high_res", "low": "low_res"}
_PIXEL_SIZE_TOLERANCE = 0.01  # as datasets: two sizes closer than 1 % are one calibration


@dataclasses.dataclass(frozen=True)
class LatticeEvidence:
    """The strongest ring of the images' radial power spectrum and whether it is a lattice peak."""

    found: bool
    frequency_cycles_px: float
    frequency_nm_inv: float | None
    spacing_nm: float | None
    excess: float  # ln(max/median) of the ring's power beyond what amorphous background gives
    z: float  # that excess in robust standard deviations over the searched rings
    band_nm_inv: tuple[float, float] | None  # auto_band's first-order annulus, when found
    num_files: int
    num_patches: int
    patch_px: int
    pixel_size_nm: float | None  # from the files' metadata (None when they hold none)


@dataclasses.dataclass(frozen=True)
class SweepAdvice:
    """The answer of a sweep's own results: ``rows`` sorted by parameters then receptive field."""

    source: str
    rows: list[dict[str, Any]]
    best: dict[str, Any]
    choice: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Recommendation:
    """What `recommend` decided and why; `format_recommendation` prints it."""

    regime: str  # high_res, low_res or unknown
    regime_from: str
    rule: str
    source: str
    pixel_size_nm: float | None
    pixel_size_from: str
    particle_diameter_nm: float | None
    particle_diameter_px: float | None
    min_rf_px: float | None
    patch_size: int
    choice: dict[str, Any] | None
    suggestions: list[dict[str, Any]]  # the pick of each depth N
    confirm: list[dict[str, Any]]  # the choice and its neighbours, each with a "role"
    sweep_command: str | None
    table: list[dict[str, Any]]  # every architecture built, in order
    lattice: LatticeEvidence | None = None
    sweep: SweepAdvice | None = None
    notes: list[str] = dataclasses.field(default_factory=list)
    binning: dict[str, Any] | None = None  # `binning_advice`: binning instead of a heavier network


# ------------------------------------------------------------------------------ the grid

_TIER_CACHE: dict[tuple, tuple[dict[str, Any], ...]] = {}


def _weight(row: dict[str, Any]) -> tuple:
    return row["trainable_params"], row["receptive_field_px"], row["size_divisor"], row["architecture"]


def depth_rows(
    num_blocks: int,
    patch_size: int,
    pool_choices: Sequence[int] = (2, 4, 8),
    dilation_sets: Sequence[Sequence[int]] = DEFAULT_DILATION_SETS,
    dilation_pool: int = 2,
    progress: bool = False,
) -> tuple[dict[str, Any], ...]:
    """`architecture_table` rows (plus ``family``) of one depth N of the sweep grid that can
    train on ``patch_size`` px patches: RF below the patch and a size divisor that divides it
    (as `tem_rf.study.sweep.pool_grid`). N=2 adds the dilation sets at ``dilation_pool``."""
    from tem_rf.models.architectures import architecture_grid, architecture_table

    key = (num_blocks, patch_size, tuple(pool_choices), tuple(map(tuple, dilation_sets)), dilation_pool)
    if key not in _TIER_CACHE:
        archs = [(n, pools, (1,) * (n + 1)) for n, pools in architecture_grid((num_blocks,), pool_choices, patch_size)]
        if num_blocks == 2:
            archs += [(2, (dilation_pool,) * 2, tuple(d)) for d in dilation_sets if any(v != 1 for v in d)]
        rows = architecture_table(archs, None, progress=progress)
        _TIER_CACHE[key] = tuple(
            row | {"family": "pool" if set(row["dilations"]) == {1} else "dilation"}
            for row in rows
            if row["receptive_field_px"] < patch_size and patch_size % row["size_divisor"] == 0
        )
    return _TIER_CACHE[key]


def _pick(rows: Sequence[dict[str, Any]], regime: str, min_rf_px: float | None) -> dict[str, Any] | None:
    """The first row (in weight order) the regime's rule accepts, or None."""
    if regime == "low_res" or min_rf_px is None:
        return rows[0] if rows else None
    return next((r for r in rows if r["receptive_field_px"] >= min_rf_px), None)


def binning_advice(lightest: dict[str, Any], diameter_nm: float, pixel_size_nm: float, min_rf_fraction: float,
                   lattice_spacing_nm: float | None = None) -> dict[str, Any] | None:
    """The paper's RF-in-nm finding applied to the data instead of the network: the smallest
    integer binning at which the ``lightest`` network's receptive field spans a particle
    (RF >= ``min_rf_fraction`` of its diameter), so finely sampled micrographs need no heavier
    network. None when no binning is needed. With a ``lattice_spacing_nm``, the most binning that
    keeps the fringes resolved (>= 2 px a period, Nyquist) is given, and whether it suffices."""
    rf_px = int(lightest["receptive_field_px"])
    factor = max(1, math.ceil(min_rf_fraction * diameter_nm / (rf_px * pixel_size_nm) - 1e-9))
    if factor == 1:
        return None
    advice = {
        "factor": factor, "pixel_size_nm": factor * pixel_size_nm, "architecture": lightest["architecture"],
        "trainable_params": lightest["trainable_params"], "receptive_field_px": rf_px,
        "receptive_field_nm": rf_px * factor * pixel_size_nm, "particle_diameter_px": diameter_nm / (factor * pixel_size_nm),
        "max_factor_for_fringes": None, "fringes_resolved": None,
    }
    if lattice_spacing_nm is not None:
        most = max(1, math.floor(lattice_spacing_nm / (2 * pixel_size_nm)))
        advice |= {"max_factor_for_fringes": most, "fringes_resolved": factor <= most}
    return advice


def _with_nm(row: dict[str, Any], pixel_size_nm: float | None, role: str | None = None) -> dict[str, Any]:
    nm = None if pixel_size_nm is None else row["receptive_field_px"] * pixel_size_nm
    return row | {"receptive_field_nm": nm} | ({"role": role} if role else {})


# ------------------------------------------------------------------------------ the images


def _tiles(image: np.ndarray, size: int) -> list[np.ndarray]:
    rows, cols = image.shape[0] // size, image.shape[1] // size
    return [image[i * size:(i + 1) * size, j * size:(j + 1) * size] for i in range(rows) for j in range(cols)]


def detect_lattice(images: str | Path, patch_size: int = 512, max_images: int = 16) -> LatticeEvidence:
    """Reads up to ``max_images`` micrographs (evenly spread over the files found), preprocesses
    them as training does, and looks for a lattice peak in the radial power spectrum averaged
    over their square patches (``patch_size`` px, or the smallest image side if smaller)."""
    from tem_rf.data import preprocess_micrograph
    from tem_rf.data.source_files import find_image_files
    from tem_rf.data.reading import read_micrograph
    from tem_rf.study import fourier

    paths = find_image_files(images)
    if len(paths) > max_images:
        paths = [paths[i] for i in np.linspace(0, len(paths) - 1, max_images).round().astype(int)]
    micrographs = [read_micrograph(p) for p in paths]
    size = min(patch_size, *(min(m.shape) for m in micrographs)) // 2 * 2
    if size < 32:
        raise ValueError(f"{images}: images of {size} px are too small to read a lattice peak from")
    spectra = []
    for m in micrographs:
        try:
            spectra.append(fourier.radial_spectrum(np.stack(_tiles(preprocess_micrograph(m.data), size))))
        except ValueError as err:  # e.g. a constant image: name the file
            raise ValueError(f"{m.path}: {err}") from None
    spectrum = fourier.combine_spectra(spectra)
    known = [(m.path, m.pixel_size_nm) for m in micrographs if m.pixel_size_nm is not None]
    for path, size_nm in known[1:]:
        if not math.isclose(size_nm, known[0][1], rel_tol=_PIXEL_SIZE_TOLERANCE):
            raise ValueError(f"{path}: pixel size {size_nm:.6g} nm differs from {known[0][0].name}'s {known[0][1]:.6g} nm")
    pixel_size_nm = known[0][1] if known else None
    # The strongest ring as auto_band sees it (same search range and robust z), for the report.
    freq, excess = spectrum.frequency, spectrum.peak_excess
    search = (freq >= fourier.DEFAULT_MIN_FREQUENCY) & (freq <= fourier.DEFAULT_MAX_FREQUENCY)
    median = float(np.median(excess[search]))
    spread = 1.4826 * float(np.median(np.abs(excess[search] - median))) or 1e-12
    peak = int(np.argmax(np.where(search, excess, -np.inf)))
    try:
        band = fourier.auto_band(spectrum)
    except ValueError:
        band = None
    f = float(freq[peak])
    return LatticeEvidence(
        found=band is not None,
        frequency_cycles_px=f,
        frequency_nm_inv=None if pixel_size_nm is None else f / pixel_size_nm,
        spacing_nm=None if pixel_size_nm is None else pixel_size_nm / f,
        excess=float(excess[peak]),
        z=float((excess[peak] - median) / spread),
        band_nm_inv=None if band is None or pixel_size_nm is None else band.nm_inv(pixel_size_nm),
        num_files=len(micrographs),
        num_patches=spectrum.num_images,
        patch_px=size,
        pixel_size_nm=pixel_size_nm,
    )


# ------------------------------------------------------------------------------ a sweep's results


def advise_from_sweep(sweep_dir: str | Path) -> SweepAdvice:
    """The lightest architecture within one std of the best, from ``results.json`` or, without
    one, from the finished runs (`tem_rf.study.sweep.aggregate`; nothing is written)."""
    from tem_rf.core.files import read_json_object
    from tem_rf.study import sweep

    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise ValueError(f"{sweep_dir}: no such sweep folder")
    results = sweep_dir / sweep.RESULTS_JSON
    if results.exists():
        rows, source = read_json_object(results).get("architectures"), str(results)
    else:
        rows, source = sweep.aggregate(sweep_dir), f"the finished runs under {sweep_dir / 'runs'}"
    if not rows:
        raise ValueError(f"{sweep_dir}: no sweep results ({sweep.RESULTS_JSON} or finished runs under runs/)")
    needed = ("architecture", "trainable_params", "receptive_field_px", "hard_dice_mean", "hard_dice_std")
    if not isinstance(rows, list) or any(not isinstance(r, dict) or any(k not in r for k in needed) for r in rows):
        raise ValueError(f"{source}: expected 'architectures' rows with {', '.join(needed)}")
    rows = sorted(rows, key=lambda r: (r["trainable_params"], r["receptive_field_px"], r["architecture"]))
    best = sweep.best_row(rows)
    return SweepAdvice(source, rows, best, sweep.lightest_within_one_std(rows))


# ------------------------------------------------------------------------------ the answer


def _positive(value: float | None, what: str) -> float | None:
    if value is not None and not (math.isfinite(value) and value > 0):
        raise ValueError(f"{what} must be a positive, finite number, got {value}")
    return value


def sweep_command(rows: Sequence[dict[str, Any]], data_dir: str = "DATA", sweep_dir: str = "sweeps/confirm") -> str:
    """The `python3 -m experiments.sweep` command that trains exactly ``rows`` (5 seeds each)."""
    pools = [r for r in rows if r["family"] == "pool"]
    dilated = [r for r in rows if r["family"] != "pool"]
    if len({tuple(r["pool_sizes"]) for r in dilated}) > 1 or any(r["num_blocks"] != 2 for r in dilated):
        raise ValueError("the sweep trains dilation sets only at N=2 and one pool size")
    args = [f"--data_dir={data_dir}", f"--sweep_dir={sweep_dir}"]
    args += [f"--pool_sizes={','.join(map(str, r['pool_sizes']))}" for r in pools] or ["--pool_grid=none"]
    args.append(f"--dilation_grid={','.join('-'.join(map(str, r['dilations'])) for r in dilated)}")
    if dilated:
        args.append(f"--dilation_pool={dilated[0]['pool_sizes'][0]}")
    return shlex.join(["python3", "-m", "experiments.sweep", *args])


def _confirm_rows(table: list[dict[str, Any]], choice: dict[str, Any], regime: str,
                  min_rf_px: float | None) -> list[tuple[dict[str, Any], str]]:
    """The choice and the neighbours that test it on the user's data."""
    index = table.index(choice)
    picked = [(choice, "the choice")]
    if regime == "low_res":
        same_n = [r for r in table if r["num_blocks"] == choice["num_blocks"]]
        spanning = _pick(same_n, "high_res", min_rf_px) if min_rf_px else None
        deeper = [r for r in table if r["trainable_params"] > choice["trainable_params"]]
        if spanning is not None and spanning is not choice:
            picked.append((spanning, "larger RF: spans the particle (RF should not matter)"))
        if deeper:
            picked.append((deeper[0], "heavier: next depth (complexity should barely matter)"))
        return picked
    if index > 0:
        picked.insert(0, (table[index - 1], "lighter neighbour: next smaller RF"))
    if index + 1 < len(table):
        picked.append((table[index + 1], "heavier neighbour: next larger RF or depth (plateau)"))
    return picked


def recommend(
    particle_diameter_nm: float | None = None,
    pixel_size_nm: float | None = None,
    *,
    images: str | Path | None = None,
    sweep_dir: str | Path | None = None,
    resolution: str = "auto",
    patch_size: int = 512,
    num_blocks: Sequence[int] = (2, 3, 4),
    tolerance: float = DEFAULT_TOLERANCE,
    progress: bool = False,
) -> Recommendation:
    """The architecture advice for particles of ``particle_diameter_nm`` at ``pixel_size_nm``.

    ``resolution``: ``high``/``low`` states the regime; ``auto`` reads it from ``images`` (a
    lattice peak means high), else leaves it unknown (then the high-resolution pick, which the
    paper finds as good at low resolution too). The pixel size comes from the images' files when
    not given. With ``sweep_dir`` the sweep's own results answer as well (the diameter is then
    optional). Raises ValueError for bad input, naming it.
    """
    if resolution not in RESOLUTIONS:
        raise ValueError(f"resolution must be one of {', '.join(RESOLUTIONS)}, got {resolution!r}")
    _positive(particle_diameter_nm, "particle_diameter_nm")
    _positive(pixel_size_nm, "pixel_size_nm")
    if not (isinstance(patch_size, int) and patch_size >= 8):
        raise ValueError(f"patch_size must be an integer of at least 8 px, got {patch_size}")
    if not 0 <= tolerance < 1:
        raise ValueError(f"tolerance must be in [0, 1), got {tolerance}")
    if particle_diameter_nm is None and sweep_dir is None:
        raise ValueError("particle_diameter_nm is required (unless --sweep_dir answers from a sweep's results)")
    advice = advise_from_sweep(sweep_dir) if sweep_dir is not None else None
    lattice = detect_lattice(images, patch_size) if images is not None else None
    notes = []
    pixel_from = "--pixel_size_nm" if pixel_size_nm is not None else "unknown"
    if lattice is not None and lattice.pixel_size_nm is not None:
        if pixel_size_nm is None:
            pixel_size_nm, pixel_from = lattice.pixel_size_nm, "the images' metadata"
        elif not math.isclose(pixel_size_nm, lattice.pixel_size_nm, rel_tol=_PIXEL_SIZE_TOLERANCE):
            notes.append(f"the images' metadata says {lattice.pixel_size_nm:.6g} nm/px; using --pixel_size_nm")
    if lattice is not None and lattice.frequency_nm_inv is None and pixel_size_nm is not None:
        f = lattice.frequency_cycles_px  # the files hold no pixel size: report nm^-1 with the flag's
        lattice = dataclasses.replace(lattice, frequency_nm_inv=f / pixel_size_nm, spacing_nm=pixel_size_nm / f)
    if particle_diameter_nm is not None and pixel_size_nm is None:
        raise ValueError("pixel size unknown: pass --pixel_size_nm (the images hold none)" if images is not None
                         else "pixel_size_nm is required with particle_diameter_nm")
    if resolution != "auto":
        regime, regime_from = _REGIME_OF_FLAG[resolution], f"--resolution={resolution}"
    elif lattice is not None:
        regime = "high_res" if lattice.found else "low_res"
        regime_from = "a lattice peak in the images' spectrum" if lattice.found else "no lattice peak in the images' spectrum"
    else:
        regime, regime_from = "unknown", "no --images or --resolution given: both rules apply"
    if regime == "unknown":
        rule = f"{RULES['high_res'][0]}. At {RULES['low_res'][0]}"
        source = f"{RULES['high_res'][1]}; {RULES['low_res'][1]}"
    else:
        rule, source = RULES[regime]
    diameter_px = min_rf_px = None
    table: list[dict[str, Any]] = []
    choice = None
    if particle_diameter_nm is not None:
        diameter_px = particle_diameter_nm / pixel_size_nm
        min_rf_px = (1 - tolerance) * diameter_px
        for n in sorted(set(num_blocks)):
            rows = depth_rows(n, patch_size, progress=progress)
            if choice is not None and rows and min(_weight(r) for r in rows) > _weight(choice):
                table = sorted([*table, *rows], key=_weight)
                break  # one depth past the choice: neighbours and the next suggestion
            table = sorted([*table, *rows], key=_weight)
            choice = _pick(table, regime, min_rf_px)
        if not table:
            raise ValueError(f"no architecture of N in {sorted(set(num_blocks))} fits {patch_size} px patches")
        if choice is None:
            choice = max(table, key=lambda r: (r["receptive_field_px"], [-v for v in _weight(r)[:3]]))
            notes.append(f"no architecture with an RF below the {patch_size} px patch spans the particle "
                         f"({diameter_px:.0f} px): this is the largest RF; use larger patches or bin the images")
        if regime != "low_res" and particle_diameter_nm < 3:
            notes.append("small particles: the paper's 2.2 nm particles needed an RF much larger than their "
                         "diameter (Fig. 3); sweep the larger-RF neighbours too")
    suggestions = []
    for n in sorted({r["num_blocks"] for r in table}):
        pick = _pick([r for r in table if r["num_blocks"] == n], regime, min_rf_px)
        if pick is not None:
            suggestions.append(_with_nm(pick, pixel_size_nm))
    confirm = [_with_nm(r, pixel_size_nm, role) for r, role in _confirm_rows(table, choice, regime, min_rf_px)] if choice else []
    binning = None
    if table and regime != "low_res" and particle_diameter_nm is not None:
        binning = binning_advice(min(table, key=_weight), particle_diameter_nm, pixel_size_nm, 1 - tolerance,
                                 lattice.spacing_nm if lattice is not None and lattice.found else None)
    return Recommendation(
        regime=regime, regime_from=regime_from, rule=rule, source=f"{PAPER}, {source}",
        pixel_size_nm=pixel_size_nm, pixel_size_from=pixel_from, particle_diameter_nm=particle_diameter_nm,
        particle_diameter_px=diameter_px, min_rf_px=min_rf_px, patch_size=patch_size,
        choice=None if choice is None else _with_nm(choice, pixel_size_nm), suggestions=suggestions,
        confirm=confirm, sweep_command=sweep_command(confirm) if confirm else None,
        table=[_with_nm(r, pixel_size_nm) for r in table], lattice=lattice, sweep=advice, notes=notes,
        binning=binning,
    )


# ------------------------------------------------------------------------------ printing


def _row_line(r: dict[str, Any], extra: str = "") -> str:
    nm = "-" if r.get("receptive_field_nm") is None else f"{r['receptive_field_nm']:.2f}"
    return (f"  {r['architecture']:<20}{r['trainable_params']:>8}{r['receptive_field_px']:>7}{nm:>8}"
            f"{r['size_divisor']:>8}  {extra}").rstrip()


def format_recommendation(rec: Recommendation) -> str:
    """The advice as text: inputs, evidence, the rule and its source, choices, the sweep command."""
    lines = []
    if rec.particle_diameter_nm is not None:
        lines.append(f"particles: {rec.particle_diameter_nm:g} nm = {rec.particle_diameter_px:.1f} px at "
                     f"{rec.pixel_size_nm:g} nm/px (pixel size from {rec.pixel_size_from}); patches {rec.patch_size} px")
    if (lat := rec.lattice) is not None:
        period = "lattice spacing" if lat.found else "period"
        where = (f"{lat.frequency_nm_inv:.3f} nm^-1 ({period} {lat.spacing_nm:.3f} nm)"
                 if lat.frequency_nm_inv is not None else f"{lat.frequency_cycles_px:.4f} cycles/px")
        verdict = "a lattice peak: high resolution" if lat.found else "no lattice peak: low resolution"
        band = f"; first-order band {lat.band_nm_inv[0]:.2f}-{lat.band_nm_inv[1]:.2f} nm^-1" if lat.band_nm_inv else ""
        lines.append(f"images: {verdict}. Strongest spectrum ring at {where}, prominence {lat.excess:.2f} "
                     f"(ln max/median above noise; z {lat.z:.1f}; a lattice needs >= 1 and z >= 4) over "
                     f"{lat.num_patches} patches of {lat.patch_px} px from {lat.num_files} file(s){band}")
    regime = {"high_res": "high resolution", "low_res": "low resolution"}.get(rec.regime, rec.regime)
    lines.append(f"regime: {regime} ({rec.regime_from})")
    lines.append(f"rule: {rec.rule}")
    lines.append(f"source: {rec.source}")
    if rec.choice is not None:
        how = ("the fewest trainable parameters overall (then the smallest RF)" if rec.regime == "low_res" else
               f"the fewest trainable parameters whose RF spans the particle (RF >= {rec.min_rf_px:.0f} px, "
               f"{rec.min_rf_px / rec.particle_diameter_px:.0%} of its diameter), then the smallest such RF")
        if rec.regime == "unknown":
            how += "; give --images or --resolution: at low resolution the lightest network is as good"
        header = f"  {'architecture':<20}{'params':>8}{'RF px':>7}{'RF nm':>8}{'divisor':>8}"
        lines += [f"choice: {rec.choice['architecture']}, {how}", "lightest per depth N:", header]
        lines += [_row_line(r, "<- choice" if r["architecture"] == rec.choice["architecture"] else "")
                  for r in rec.suggestions]
        lines += ["confirm on your data (DATA: a dataset of the same patch size; 5 seeds each):", header]
        lines += [_row_line(r, r["role"]) for r in rec.confirm]
        lines.append(f"  {rec.sweep_command}")
    if (b := rec.binning) is not None:
        line = (f"or bin: binned x{b['factor']} ({b['pixel_size_nm']:.4g} nm/px; the particle {b['particle_diameter_px']:.1f} px), "
                f"the lightest network {b['architecture']} ({b['trainable_params']} parameters, RF {b['receptive_field_px']} px "
                f"= {b['receptive_field_nm']:.2f} nm) spans a particle")
        line += f" with {b['factor'] ** 2}x fewer pixels to segment"
        if b["fringes_resolved"] is None and rec.regime != "low_res":
            line += "; check that lattice fringes stay resolved (>= 2 px a period) at that pixel size (--images tells)"
        if b["fringes_resolved"] is False:
            line += (f"; but the lattice fringes stay resolved only up to x{b['max_factor_for_fringes']}: keep the "
                     "sampling and the heavier network")
        elif b["fringes_resolved"]:
            line += f" and the lattice fringes stay resolved (up to x{b['max_factor_for_fringes']})"
        lines.append(line)
    if (sw := rec.sweep) is not None:
        lines.append(f"your sweep ({sw.source}): best {sw.best['architecture']} {sw.best['hard_dice_mean']:.4f} "
                     f"+- {sw.best['hard_dice_std']:.4f}; lightest within one std of it: {sw.choice['architecture']}")
        lines.append(f"  {'architecture':<20}{'params':>8}{'RF px':>7}{'hard dice mean +- std':>24}")
        threshold = sw.best["hard_dice_mean"] - sw.best["hard_dice_std"]
        for r in sw.rows:
            mark = ("<- answer" if r is sw.choice else "") + (" best" if r is sw.best else "")
            within = "within" if r["hard_dice_mean"] >= threshold else ""
            lines.append(f"  {r['architecture']:<20}{r['trainable_params']:>8}{r['receptive_field_px']:>7}"
                         f"{r['hard_dice_mean']:>14.4f} +- {r['hard_dice_std']:.4f}  {within:<7}{mark}".rstrip())
    lines += [f"note: {n}" for n in rec.notes]
    return "\n".join(lines)


def to_json(rec: Recommendation) -> dict[str, Any]:
    """The recommendation as a JSON-ready dict."""
    from tem_rf.core.files import json_safe

    return json_safe(dataclasses.asdict(rec))


def write_advice(rec: Recommendation, path: str | Path, *, overwrite: bool = False) -> None:
    """Writes `to_json` of ``rec`` to ``path``; an existing file is replaced only with ``overwrite``."""
    from tem_rf.core.files import os_error_text, write_json
    from tem_rf.core.outputs import new_files

    path = Path(path)
    try:
        with new_files([path], overwrite=overwrite) as temporary:
            write_json(temporary[path], to_json(rec))
    except OSError as err:
        raise OSError(f"{path}: cannot write: {os_error_text(err)}") from None


__all__ = [
    "DEFAULT_DILATION_SETS",
    "RULES",
    "LatticeEvidence",
    "Recommendation",
    "SweepAdvice",
    "advise_from_sweep",
    "depth_rows",
    "detect_lattice",
    "format_recommendation",
    "recommend",
    "sweep_command",
    "to_json",
    "binning_advice",
    "write_advice",
]
