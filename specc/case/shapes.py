"""Solid shapes with a closed-form volume, from which the phantoms are built.

Each shape answers "is this point inside?" for voxel centres and knows its exact volume, so
the tests can check that a phantom's voxelised structures match their intended size.
Coordinates are DICOM patient coordinates (LPS, mm): +x left, +y posterior, +z superior.
Extents along z are half-open [z_min, z_max) so stacked shapes never share a voxel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np

_EDGE = 1e-9  # points exactly on a curved boundary count as inside


class Shape(Protocol):
    def contains(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray: ...

    @property
    def volume_mm3(self) -> float: ...


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


@dataclass(frozen=True)
class CShape:
    """An annulus along z with an opening on its anterior (-y) side.

    The opening removes the part of the annulus with y < center_y and |x - center_x| <
    `opening_half_width` (at most the inner radius, so both arms end flat).
    """

    center_x: float
    center_y: float
    inner_radius: float
    outer_radius: float
    opening_half_width: float
    z_min: float
    z_max: float

    def __post_init__(self) -> None:
        if not 0 < self.opening_half_width <= self.inner_radius < self.outer_radius:
            raise ValueError("C-shape needs 0 < opening half-width <= inner radius < outer radius")

    def contains(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        dx, dy = x - self.center_x, y - self.center_y
        r2 = dx * dx + dy * dy
        ring = (r2 >= self.inner_radius**2) & (r2 <= self.outer_radius**2 * (1 + _EDGE))
        opening = (dy < 0) & (np.abs(dx) < self.opening_half_width)
        return ring & ~opening & _in_slab(z, self.z_min, self.z_max)

    @property
    def volume_mm3(self) -> float:
        ring = math.pi * (self.outer_radius**2 - self.inner_radius**2)
        w = self.opening_half_width
        opening = _half_chord_integral(self.outer_radius, w) - _half_chord_integral(self.inner_radius, w)
        return (ring - opening) * (self.z_max - self.z_min)


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
