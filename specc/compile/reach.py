"""What the case's beamlets reach: target voxels no beamlet gives dose, beams that give none.

A case cannot judge this itself: it knows no roles, and an organ beside the fields rightly
holds rows without dose (the prostate phantom's bladder and rectum do). A target is what the
beamlets were aimed at, so a target voxel whose influence row is empty is a sign that the
rows do not belong to the voxels they are listed for: a matRad dij kept in its own row order
(column-major over [Ny Nx Nz]) instead of specc's (C order over (x, y, z)), or a dose grid or
field cut short of the target. Such a case plans without complaint, and its organ goals are
judged on rows that belong elsewhere, so the compile stage says so in a note that reaches the
terminal and plan.json.

A target no beamlet reaches at all is an error: no fluence changes its dose, so there is
nothing to optimize for it. Any share short of that stays a note. No share separates a cut
dose grid (the goals, measured on the full grid, then show the coverage lost) from rows in
another order, and a threshold would be a guess; the note gives the count and the share.

A beam none of whose beamlets gives dose makes a nine-field case an eight-field plan; a note
names it and each beam with beamlets that give none. A beam whose isocentre lies outside the dose
grid is noted too: the isocentre sits in the patient, so the grid's spacing or origin is likely in
other units (a spacing in cm written as mm shrinks a 10 mm grid tenfold, its PTV to 0.17 cc).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from specc.case.products import select_rows
from specc.compile.places import said_at_structure
from specc.errors import CompileError

if TYPE_CHECKING:
    from specc.case import Case
    from specc.compile.structures import ResolvedStructures
    from specc.protocol import Protocol

_CAUSES = (
    "likely causes: the influence matrix's rows are not in the order of `voxel_indices` (matRad's dij rows run "
    "column-major over [Ny Nx Nz], specc's C order over (x, y, z): docs/case-format.md), or the dose grid or the "
    "beamlets' field was cut short of the target"
)


def reach_notes(protocol: Protocol, case: Case, structures: ResolvedStructures) -> list[str]:
    """Notes on target voxels and beams without dose; CompileError for a target no beamlet reaches."""
    notes = [note for name in structures.masks if structures.is_target(name)
             for note in _unreached_target(protocol, case, name, structures.masks[name])]
    return notes + _beams_without_dose(case) + _isocentres_outside_grid(case)


def _unreached_target(protocol: Protocol, case: Case, name: str, mask: np.ndarray) -> list[str]:
    rows = case.rows(mask)
    block = select_rows(case.influence, rows)
    reached = np.asarray(block.max(axis=1).todense()).ravel() > 0
    unreached, total = int(np.count_nonzero(~reached)), len(rows)
    if not unreached:
        return []
    if unreached == total:
        raise CompileError(said_at_structure(
            protocol, name, f"target {name!r}: none of its {total} voxels receives dose from any beamlet of case "
            f"{case.case_id!r} (their rows of the influence matrix are empty), so no fluence can treat it; {_CAUSES}"
        ))
    share = 100.0 * unreached / total
    return [
        f"{name}: {unreached} of its {total} voxels ({share:.1f}% of the target) receive no dose from any beamlet "
        f"(their rows of the influence matrix are empty): no fluence covers them, and a goal on an organ may be "
        f"judged on rows that are not its voxels; {_CAUSES}"
    ]


def _beams_without_dose(case: Case) -> list[str]:
    with_dose = case.beamlets_with_dose
    parts = []
    for beam in case.beams:
        columns = case.beamlets.of_beam(beam.id)
        none = int(np.count_nonzero(~with_dose[columns]))
        if not none:
            continue
        which = f"all {none} beamlets (the whole beam gives no dose)" if none == len(columns) else (
            f"{none} of its {len(columns)} beamlets"
        )
        parts.append(f"beam {beam.id} (gantry {beam.gantry_deg:g}°): {which}")
    if not parts:
        return []
    return [
        f"influence columns without dose: {'; '.join(parts)} give no voxel any dose, so the plan uses only the other "
        "beamlets, and a beam that gives none is a field the plan does not have; a dose calculation or import that "
        "lost them (a failed beam, columns in another order than the beamlets) shows so"
    ]


def _isocentres_outside_grid(case: Case) -> list[str]:
    """A note naming the beams whose isocentre lies beyond the dose grid's outer voxel faces."""
    grid = case.grid
    low = [origin - spacing / 2 for origin, spacing in zip(grid.origin_mm, grid.spacing_mm)]
    high = [origin + (n - 0.5) * spacing for origin, spacing, n in zip(grid.origin_mm, grid.spacing_mm, grid.shape)]
    outside = [beam for beam in case.beams
               if any(not lo <= c <= hi for c, lo, hi in zip(beam.isocenter_mm, low, high))]
    if not outside:
        return []
    bounds = ", ".join(f"{axis} {lo:g}..{hi:g}" for axis, lo, hi in zip("xyz", low, high))
    by_centre: dict[tuple[float, float, float], list[str]] = {}
    for beam in outside:
        by_centre.setdefault(tuple(beam.isocenter_mm), []).append(str(beam.id))
    where = "; ".join(f"beam{'s' if len(ids) > 1 else ''} {', '.join(ids)} at ({', '.join(f'{c:g}' for c in centre)})"
                      for centre, ids in by_centre.items())
    return [
        f"isocentre outside the dose grid ({bounds} mm): {where} mm; an isocentre lies in the patient, so the grid's "
        "spacing or origin may be in other units than mm (a spacing in cm written as mm makes the grid ten times "
        "smaller) or the grid is cut short"
    ]

