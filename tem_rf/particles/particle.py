"""One particle's record (`Particle`: position, area, diameters, Feret, shape descriptors, in px
and nm) and the particle table's columns, in ImageJ's order with the units in their names.

Conventions (pixel units; nm = px * pixel size): see `tem_rf.particles.measure`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any



@dataclass(frozen=True)
class Particle:
    """One particle instance. ``*_nm`` fields are None when the pixel size is unknown;
    ``mean_probability`` is None when no probability map was given."""

    id: int
    centroid_row_px: float
    centroid_col_px: float
    centroid_row_nm: float | None
    centroid_col_nm: float | None
    area_px: int
    area_nm2: float | None
    diameter_px: float
    diameter_nm: float | None
    feret_max_px: float
    feret_min_px: float
    feret_max_nm: float | None
    feret_min_nm: float | None
    aspect_ratio: float
    solidity: float
    mean_probability: float | None
    touches_edge: bool
    # ImageJ-style descriptors (`tem_rf.particles.descriptors`), set by `measure_particles`
    perimeter_px: float | None = None
    ellipse_major_px: float | None = None
    ellipse_minor_px: float | None = None
    ellipse_angle_deg: float | None = None
    circularity: float | None = None
    roundness: float | None = None
    bbox_x_px: int | None = None
    bbox_y_px: int | None = None
    bbox_width_px: int | None = None
    bbox_height_px: int | None = None
    intensity_mean: float | None = None  # of the micrograph as read, under the particle
    intensity_std: float | None = None
    feret_angle_deg: float | None = None  # of the maximum Feret diameter, as ImageJ's "FeretAngle"

    @classmethod
    def from_pixels(
        cls, ident: int, centroid_row: float, centroid_col: float, area: int, diameter: float,
        feret_max: float, feret_min: float, hull_area: float, mean_probability: float | None,
        touches_edge: bool, pixel_size_nm: float | None, feret_angle: float | None = None,
    ) -> Particle:
        """A record from its pixel measurements; nm fields from ``pixel_size_nm`` (None if unknown)."""
        p = pixel_size_nm
        return cls(
            id=ident,
            centroid_row_px=centroid_row,
            centroid_col_px=centroid_col,
            centroid_row_nm=None if p is None else centroid_row * p,
            centroid_col_nm=None if p is None else centroid_col * p,
            area_px=area,
            area_nm2=None if p is None else area * p * p,
            diameter_px=diameter,
            diameter_nm=None if p is None else diameter * p,
            feret_max_px=feret_max,
            feret_min_px=feret_min,
            feret_max_nm=None if p is None else feret_max * p,
            feret_min_nm=None if p is None else feret_min * p,
            aspect_ratio=feret_max / feret_min,
            solidity=min(1.0, area / hull_area),
            mean_probability=mean_probability,
            touches_edge=bool(touches_edge),
            feret_angle_deg=feret_angle,
        )

    @property
    def pixel_size_nm(self) -> float | None:
        """The pixel size it was measured with (None when unknown)."""
        return None if self.diameter_nm is None else self.diameter_nm / self.diameter_px

    def row(self) -> dict[str, Any]:
        """The CSV row (`COLUMNS`): ImageJ's order and x / y (x to the right, y down, from the
        top-left pixel's centre), each value rounded to what the measurement supports: lengths
        and positions to 1/100 px (in nm: 1/100 of the pixel size), areas to whole px (nm^2: 1/100
        of a pixel's area), ratios to 4 decimals, angles to 0.01 degree, intensities to 6
        significant digits. None for what is unknown (no pixel size, no micrograph)."""
        p = self.pixel_size_nm
        nm_digits = None if p is None else max(0, math.ceil(-math.log10(p / 100)))
        area_digits = None if p is None else max(0, math.ceil(-math.log10(p * p / 100)))

        def px(value: float | None) -> float | None:
            return None if value is None else round(float(value), 2)

        def nm(value_px: float | None) -> float | None:
            return None if value_px is None or p is None else round(float(value_px) * p, nm_digits)

        def ratio(value: float | None) -> float | None:
            return None if value is None else round(float(value), 4)

        def significant(value: float | None) -> float | None:
            return None if value is None or not math.isfinite(value) else float(f"{value:.6g}")

        return {
            "id": self.id,
            "x_px": px(self.centroid_col_px), "y_px": px(self.centroid_row_px),
            "x_nm": nm(self.centroid_col_px), "y_nm": nm(self.centroid_row_px),
            "area_px": self.area_px,
            "area_nm2": None if p is None else round(self.area_px * p * p, area_digits),
            "diameter_px": px(self.diameter_px), "diameter_nm": nm(self.diameter_px),
            "perimeter_px": px(self.perimeter_px), "perimeter_nm": nm(self.perimeter_px),
            "circularity": ratio(self.circularity), "roundness": ratio(self.roundness),
            "ellipse_major_px": px(self.ellipse_major_px), "ellipse_minor_px": px(self.ellipse_minor_px),
            "ellipse_major_nm": nm(self.ellipse_major_px), "ellipse_minor_nm": nm(self.ellipse_minor_px),
            "ellipse_angle_deg": None if self.ellipse_angle_deg is None else round(self.ellipse_angle_deg, 2),
            "feret_max_px": px(self.feret_max_px), "feret_min_px": px(self.feret_min_px),
            "feret_max_nm": nm(self.feret_max_px), "feret_min_nm": nm(self.feret_min_px),
            "feret_angle_deg": None if self.feret_angle_deg is None else round(self.feret_angle_deg, 2),
            "aspect_ratio": ratio(self.aspect_ratio), "solidity": ratio(self.solidity),
            "bbox_x_px": self.bbox_x_px, "bbox_y_px": self.bbox_y_px,
            "bbox_width_px": self.bbox_width_px, "bbox_height_px": self.bbox_height_px,
            "intensity_mean": significant(self.intensity_mean), "intensity_std": significant(self.intensity_std),
            "mean_probability": ratio(self.mean_probability),
            "touches_edge": self.touches_edge,
        }


# The particle table's columns (`Particle.row`), in ImageJ's order: units in the names.
COLUMNS = (
    "id", "x_px", "y_px", "x_nm", "y_nm", "area_px", "area_nm2", "diameter_px", "diameter_nm", "perimeter_px",
    "perimeter_nm", "circularity", "roundness", "ellipse_major_px", "ellipse_minor_px", "ellipse_major_nm",
    "ellipse_minor_nm", "ellipse_angle_deg", "feret_max_px", "feret_min_px", "feret_max_nm", "feret_min_nm",
    "feret_angle_deg", "aspect_ratio", "solidity", "bbox_x_px", "bbox_y_px", "bbox_width_px", "bbox_height_px",
    "intensity_mean",
    "intensity_std", "mean_probability", "touches_edge",
)


FIELDS = tuple(field.name for field in dataclasses.fields(Particle))


__all__ = ["COLUMNS", "FIELDS", "Particle"]
