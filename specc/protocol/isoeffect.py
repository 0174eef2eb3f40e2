"""Isoeffective doses by the linear-quadratic model: EQD2 and BED of a course, per voxel.

A physical dose D delivered in n equal fractions to a tissue of ratio alpha/beta has

    BED  = D (1 + D / (n alpha/beta))
    EQD2 = BED / (1 + 2 / alpha/beta)      (the dose in 2 Gy fractions with the same effect)

Courses of different fractionation add in BED (or EQD2), never in physical dose: a
re-irradiation's cumulative cord dose is the EQD2 of the earlier course plus the EQD2 of this
one, each from its own dose per fraction. Both are increasing in D, so a single course's
EQD2 goal on a maximum or a DVH point is the physical goal at `physical_gy` of its threshold;
a mean is not (the mean of EQD2 is not the EQD2 of the mean).

The model holds for doses per fraction where repair is complete between fractions and no
repopulation is counted (no time factor): it is what clinics state re-irradiation and
hypofractionation limits in, not a dose calculation.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

DoseQuantity = Literal["physical", "EQD2", "BED"]
ISOEFFECTIVE: tuple[DoseQuantity, ...] = ("EQD2", "BED")


def _scale(quantity: DoseQuantity, alpha_beta_gy: float) -> float:
    """BED per unit of `quantity`: 1 for BED, 1 + 2/(alpha/beta) for EQD2."""
    if quantity == "BED":
        return 1.0
    if quantity == "EQD2":
        return 1.0 + 2.0 / alpha_beta_gy
    raise ValueError(f"{quantity!r} is not an isoeffective dose")


def divisor(quantity: DoseQuantity, alpha_beta_gy: float) -> float:
    """s in `EQD2 or BED = D (d + alpha/beta) / s` (D the total dose, d per fraction): alpha/beta + 2 for
    EQD2, alpha/beta for BED. Per fraction the isoeffective dose is `d (d + alpha/beta) / s`, the form a
    term on per-fraction doses writes (`mean_dose`)."""
    return alpha_beta_gy * _scale(quantity, alpha_beta_gy)


def isoeffective_gy(
    total_gy: np.ndarray | float, fractions: int, alpha_beta_gy: float, quantity: DoseQuantity
) -> np.ndarray:
    """The EQD2 or BED (Gy) of physical `total_gy` delivered in `fractions` equal fractions."""
    dose = np.asarray(total_gy, dtype=np.float64)
    return dose * (dose / fractions + alpha_beta_gy) / divisor(quantity, alpha_beta_gy)


def physical_gy(isoeffective: float, fractions: int, alpha_beta_gy: float, quantity: DoseQuantity) -> float:
    """The physical total dose in `fractions` fractions whose EQD2 or BED is `isoeffective` Gy.

    The positive root of D^2 / (n ab) + D - BED = 0, written so that it does not cancel when
    BED is small against n ab."""
    bed = isoeffective * _scale(quantity, alpha_beta_gy)
    if bed <= 0:
        return 0.0
    n_ab = fractions * alpha_beta_gy
    return 2.0 * bed / (1.0 + math.sqrt(1.0 + 4.0 * bed / n_ab))
