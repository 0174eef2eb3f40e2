"""Solid shapes with a known volume, from which the phantoms are built.

Each shape answers "is this point inside?" for voxel centres, knows its volume (closed form,
or for a `Difference` and an `Expansion` a fine numerical integration independent of any dose
grid) and its bounding box, so the tests can check that a phantom's voxelised structures match their
intended size. Coordinates are DICOM patient coordinates (LPS, mm): +x left, +y posterior,
+z superior. Extents along z are half-open [z_min, z_max) so stacked shapes never share a voxel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Protocol

import numpy as np
from scipy.ndimage import distance_transform_edt

_EDGE = 1e-9  # points exactly on a curved boundary count as inside


Bounds = tuple[tuple[float, float], tuple[float, float], tuple[float, float]]


class Shape(Protocol):
    def contains(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray: ...

    @property
    def volume_mm3(self) -> float: ...

    @property
    def bounds_mm(self) -> Bounds:
        """((x_min, x_max), (y_min, y_max), (z_min, z_max)) enclosing the shape."""
        ...


def _in_slab(z: np.ndarray, z_min: float, z_max: float) -> np.ndarray:
    return (z >= z_min) & (z < z_max)


def _half_chord_integral(radius: float, half_width: float) -> float:
    """Integral of sqrt(radius**2 - x**2) for x in [-half_width, half_width]."""
    w = min(half_width, radius)
    return w * math.sqrt(radius * radius - w * w) + radius * radius * math.asin(w / radius)


@dataclass(frozen=True)
class EllipticCylinder:
    """A cylinder along z with an elliptical cross-section (semi-axes a along x, b along y)."""

    center_x: float
    center_y: float
    a: float
    b: float
    z_min: float
    z_max: float

    def contains(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        inside = ((x - self.center_x) / self.a) ** 2 + ((y - self.center_y) / self.b) ** 2 <= 1 + _EDGE
        return inside & _in_slab(z, self.z_min, self.z_max)

    @property
    def volume_mm3(self) -> float:
        return math.pi * self.a * self.b * (self.z_max - self.z_min)

    @property
    def bounds_mm(self) -> Bounds:
        return (
            (self.center_x - self.a, self.center_x + self.a),
            (self.center_y - self.b, self.center_y + self.b),
            (self.z_min, self.z_max),
        )


@dataclass(frozen=True)
class Box:
    """An axis-aligned box, half-open [min, max) along every axis.

    Half-open faces split a voxel centred on a face evenly between the two sides when its
    coverage is sub-sampled (as the phantoms do), so the voxelised volume stays unbiased.
    """

    x_min: float
    x_max: float
    y_min: float
    y_max: float
    z_min: float
    z_max: float

    def contains(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        return _in_slab(x, self.x_min, self.x_max) & _in_slab(y, self.y_min, self.y_max) & _in_slab(z, self.z_min, self.z_max)

    @property
    def volume_mm3(self) -> float:
        return (self.x_max - self.x_min) * (self.y_max - self.y_min) * (self.z_max - self.z_min)

    @property
    def bounds_mm(self) -> Bounds:
        return ((self.x_min, self.x_max), (self.y_min, self.y_max), (self.z_min, self.z_max))


@dataclass(frozen=True)
class Ellipsoid:
    """An axis-aligned ellipsoid."""

    center: tuple[float, float, float]
    semi_axes: tuple[float, float, float]

    def contains(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        (cx, cy, cz), (a, b, c) = self.center, self.semi_axes
        return ((x - cx) / a) ** 2 + ((y - cy) / b) ** 2 + ((z - cz) / c) ** 2 <= 1 + _EDGE

    @property
    def volume_mm3(self) -> float:
        a, b, c = self.semi_axes
        return 4.0 / 3.0 * math.pi * a * b * c

    @property
    def bounds_mm(self) -> Bounds:
        return tuple((c - r, c + r) for c, r in zip(self.center, self.semi_axes))  # type: ignore[return-value]


@dataclass(frozen=True)
class CShape:
    """An annulus along z, open on its posterior (+y) side: a C wrapped around its axis.

    The part of the annulus with y > center_y + `arm_end_y` is removed, so the arms end flat
    `arm_end_y` posterior of the axis (0 <= arm_end_y <= inner radius; 0 gives a half annulus).
    """

    center_x: float
    center_y: float
    inner_radius: float
    outer_radius: float
    arm_end_y: float
    z_min: float
    z_max: float

    def __post_init__(self) -> None:
        if not 0 <= self.arm_end_y <= self.inner_radius < self.outer_radius:
            raise ValueError("C-shape needs 0 <= arm end <= inner radius < outer radius")

    def contains(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        dx, dy = x - self.center_x, y - self.center_y
        r2 = dx * dx + dy * dy
        ring = (r2 >= self.inner_radius**2) & (r2 <= self.outer_radius**2 * (1 + _EDGE))
        return ring & (dy <= self.arm_end_y) & _in_slab(z, self.z_min, self.z_max)

    @property
    def volume_mm3(self) -> float:
        half_ring = 0.5 * math.pi * (self.outer_radius**2 - self.inner_radius**2)
        # Band 0 <= dy <= arm_end_y of the ring: the chord integrals of both circles.
        h = self.arm_end_y
        band = _half_chord_integral(self.outer_radius, h) - _half_chord_integral(self.inner_radius, h)
        return (half_ring + band) * (self.z_max - self.z_min)

    @property
    def bounds_mm(self) -> Bounds:
        r = self.outer_radius
        return (
            (self.center_x - r, self.center_x + r),
            (self.center_y - r, self.center_y + self.arm_end_y),
            (self.z_min, self.z_max),
        )


@dataclass(frozen=True)
class EllipseWithKeepout:
    """An elliptical prism (centred at x=0, y=0) minus a keep-out channel around a posterior cylinder.

    The channel is a disc of `keepout_radius` around (0, keepout_y) plus the strip |x| <
    keepout_radius posterior of it: a horseshoe that wraps around a spinal cord from the front
    and sides, leaving a gap of (keepout_radius - cord radius) everywhere.
    """

    a: float
    b: float
    keepout_y: float
    keepout_radius: float
    z_min: float
    z_max: float

    def __post_init__(self) -> None:
        rho, cy = self.keepout_radius, self.keepout_y
        # Closed-form volume needs the half-disc and the strip inside the ellipse.
        if not (0 <= cy and rho < self.a and cy + rho < self.b and cy - rho > -self.b):
            raise ValueError("keep-out channel must lie inside the ellipse, on its posterior half")
        if self.b * math.sqrt(1 - (rho / self.a) ** 2) <= cy:
            raise ValueError("keep-out strip must reach the ellipse boundary posteriorly")

    def contains(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        ellipse = (x / self.a) ** 2 + (y / self.b) ** 2 <= 1 + _EDGE
        disc = x * x + (y - self.keepout_y) ** 2 < self.keepout_radius**2
        strip = (np.abs(x) < self.keepout_radius) & (y >= self.keepout_y)
        return ellipse & ~disc & ~strip & _in_slab(z, self.z_min, self.z_max)

    @property
    def volume_mm3(self) -> float:
        rho = self.keepout_radius
        half_disc = 0.5 * math.pi * rho * rho
        # Strip from y = keepout_y to the ellipse boundary y = b * sqrt(1 - x^2 / a^2).
        strip = self.b / self.a * _half_chord_integral(self.a, rho) - 2 * rho * self.keepout_y
        return (math.pi * self.a * self.b - half_disc - strip) * (self.z_max - self.z_min)

    @property
    def bounds_mm(self) -> Bounds:
        return ((-self.a, self.a), (-self.b, self.b), (self.z_min, self.z_max))


# Lattice step (mm) of the numerical volume of a `Difference`: the error is a small fraction
# of a percent for the millimetre-scale shapes of the phantoms.
_INTEGRATION_STEP_MM = 0.1


@dataclass(frozen=True)
class Difference:
    """`base` with `removed` cut out, e.g. a prostate indented by the rectum that abuts it.

    The volume is vol(base) minus the volume of the overlap, integrated on a lattice of
    `_INTEGRATION_STEP_MM` over the overlap of the two bounding boxes (one z plane at a time).
    """

    base: Shape
    removed: Shape

    def contains(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        return self.base.contains(x, y, z) & ~self.removed.contains(x, y, z)

    @cached_property
    def volume_mm3(self) -> float:
        step = _INTEGRATION_STEP_MM
        boxes = zip(self.base.bounds_mm, self.removed.bounds_mm)
        lo_hi = [(max(a[0], b[0]), min(a[1], b[1])) for a, b in boxes]
        if any(hi <= lo for lo, hi in lo_hi):
            return self.base.volume_mm3
        x, y, z = (np.arange(lo + step / 2, hi, step) for lo, hi in lo_hi)
        xx, yy = np.meshgrid(x, y, indexing="ij")
        overlap = 0
        for z_plane in z:
            zz = np.full_like(xx, z_plane)
            overlap += int(np.count_nonzero(self.base.contains(xx, yy, zz) & self.removed.contains(xx, yy, zz)))
        return self.base.volume_mm3 - overlap * step**3

    @property
    def bounds_mm(self) -> Bounds:
        return self.base.bounds_mm


# Lattice step (mm) on which an `Expansion` measures distances: its margin comes out short by
# about a fifth of the step (0.1 mm), 1.3% of the volume of a 20 mm sphere grown by 6 mm.
_EXPANSION_STEP_MM = 0.5


@dataclass(frozen=True)
class Expansion:
    """`base` grown by `margin_mm` in every direction: a PTV drawn as its CTV plus an isotropic margin.

    A point is inside when it lies within `margin_mm` of `base`, so the expansion of an indented
    CTV reaches into the indentation only as far as the margin (an ellipsoid with longer
    semi-axes would fill it). Distances come from a Euclidean distance transform of `base` on a
    lattice of `_EXPANSION_STEP_MM`, computed once; the volume is counted on the same lattice.
    """

    base: Shape
    margin_mm: float

    def __post_init__(self) -> None:
        if not self.margin_mm > 0:
            raise ValueError("expansion margin must be positive")

    @cached_property
    def _lattice(self) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
        """(lattice axes, mask of the lattice points within the margin of `base`)."""
        step = _EXPANSION_STEP_MM
        axes = tuple(np.arange(lo + step / 2, hi, step) for lo, hi in self.bounds_mm)
        inside = self.base.contains(axes[0][:, None, None], axes[1][None, :, None], axes[2][None, None, :])
        within = distance_transform_edt(~inside, sampling=step) <= self.margin_mm
        return axes, within

    def contains(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        axes, within = self._lattice
        index, valid = [], []
        for coordinate, axis in zip((x, y, z), axes):
            i = np.rint((np.asarray(coordinate, dtype=np.float64) - axis[0]) / _EXPANSION_STEP_MM).astype(np.int64)
            valid.append((i >= 0) & (i < len(axis)))
            index.append(np.clip(i, 0, len(axis) - 1))
        return within[index[0], index[1], index[2]] & valid[0] & valid[1] & valid[2]

    @cached_property
    def volume_mm3(self) -> float:
        return float(np.count_nonzero(self._lattice[1])) * _EXPANSION_STEP_MM**3

    @property
    def bounds_mm(self) -> Bounds:
        m = self.margin_mm
        return tuple((lo - m, hi + m) for lo, hi in self.base.bounds_mm)  # type: ignore[return-value]
