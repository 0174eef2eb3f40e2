"""The dose a goal is judged on, per voxel: physical, or each course's EQD2 / BED summed.

A composite plan's physical dose is this course's plus the prior course's, each delivered in
its own fractions; an isoeffective goal converts them apart (each from its own dose per
fraction) and adds the results, which is how re-irradiation limits are stated. The DVH of that
dose is what the goal's metric is read from, on the full grid as every goal is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from specc.protocol.isoeffect import isoeffective_gy
from specc.protocol.units import format_number

if TYPE_CHECKING:
    from specc.protocol.goals import Goal
    from specc.protocol.models import Protocol


def judged_dose(goal: Goal, protocol: Protocol, own_gy: np.ndarray, prior_gy: np.ndarray | None) -> np.ndarray:
    """`goal`'s dose on some voxels from this plan's physical dose there and the prior course's (None: no
    prior course): their sum, or for an EQD2 / BED goal the sum of each course's isoeffective dose; this
    plan's alone for a goal on this course."""
    if goal.course == "this":
        prior_gy = None
    if not goal.isoeffective:
        return own_gy if prior_gy is None else own_gy + prior_gy
    spec = protocol.structures[goal.structure]
    assert spec.alpha_beta is not None, "the protocol's consistency rules require alpha/beta for an isoeffective goal"
    alpha_beta = spec.alpha_beta.gy
    dose = isoeffective_gy(own_gy, protocol.prescription.fractions, alpha_beta, goal.quantity)
    if prior_gy is None:
        return dose
    prior = protocol.prescription.prior
    assert prior is not None and prior.fractions is not None, "a prior dose with EQD2 goals needs its fractions"
    return dose + isoeffective_gy(prior_gy, prior.fractions, alpha_beta, goal.quantity)


def dose_key(goal: Goal) -> tuple[str, str]:
    """What a goal's DVH depends on beyond its structure: the quantity (alpha/beta is the structure's) and
    the course (the composite's "physical" is the structure's own DVH)."""
    return (goal.structure, goal.quantity if goal.course == "composite" else f"{goal.quantity}, this course")


def isoeffective_notes(protocol: Protocol) -> list[str]:
    """What a reviewer needs to redo an EQD2 / BED goal's value: the model, each ratio, each course's fractions."""
    structures = list(dict.fromkeys(goal.structure for goal in protocol.goals if goal.isoeffective))
    if not structures:
        return []
    ratios = ", ".join(
        f"{name} {format_number(spec.alpha_beta.gy)} Gy"
        for name in structures
        if (spec := protocol.structures[name]).alpha_beta is not None
    )
    prior = protocol.prescription.prior
    courses = f"this plan's dose in its {protocol.prescription.fractions} fractions"
    if prior is not None:
        courses += f" and the prior course's in {prior.fractions}, each converted from its own dose per fraction and added"
    return [
        f"goals in EQD2 / BED: each voxel's dose converted by the linear-quadratic model (no time factor), "
        f"alpha/beta {ratios}; {courses}"
    ]
