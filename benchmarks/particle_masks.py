"""The seeded particle mask both particle benchmarks measure (a module without flags, so both
`bench_particles` and `bench_inference` can import it)."""

from __future__ import annotations

import math

import numpy as np


def synthetic_mask(size: int, diameter_px: tuple[float, float], touching: float, seed: int) -> np.ndarray:
    """A seeded binary mask of ellipses on a jittered grid (some touching, a few with holes)."""
    rng = np.random.default_rng(seed)
    spacing = 1.25 * diameter_px[1]
    mask = np.zeros((size, size), dtype=bool)
    centres = np.arange(0.3 * spacing, size, spacing)  # the last row and column are cut
    for row in centres:
        for col in centres:
            diameter = rng.uniform(*diameter_px)
            aspect = rng.uniform(1.0, 1.5)
            a, b = diameter / 2 * math.sqrt(aspect), diameter / 2 / math.sqrt(aspect)
            r, c = row + rng.uniform(-0.1, 0.1) * spacing, col + rng.uniform(-0.1, 0.1) * spacing
            shapes = [(r, c, a, b, rng.uniform(0, math.pi))]
            if rng.random() < touching / 2:  # a second particle touching this one
                angle = rng.uniform(0, 2 * math.pi)
                d2 = rng.uniform(*diameter_px) * 0.6
                reach = b + d2 / 2 - rng.uniform(0, 0.2) * d2
                shapes.append((r + reach * math.sin(angle), c + reach * math.cos(angle), d2 / 2, d2 / 2, 0.0))
            for r0, c0, a0, b0, angle in shapes:
                lo_r, hi_r = max(int(r0 - a0) - 1, 0), min(int(r0 + a0) + 2, size)
                lo_c, hi_c = max(int(c0 - a0) - 1, 0), min(int(c0 + a0) + 2, size)
                if lo_r >= hi_r or lo_c >= hi_c:
                    continue
                rr, cc = np.mgrid[lo_r:hi_r, lo_c:hi_c]
                dr, dc = rr - r0, cc - c0
                u = dc * math.cos(angle) + dr * math.sin(angle)
                v = -dc * math.sin(angle) + dr * math.cos(angle)
                inside = (u / a0) ** 2 + (v / b0) ** 2 <= 1.0
                if rng.random() < 0.02:  # a hole, as a segmentation may leave one
                    inside &= (u / a0) ** 2 + (v / b0) ** 2 > 0.05
                mask[lo_r:hi_r, lo_c:hi_c] |= inside
    return mask
