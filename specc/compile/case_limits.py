"""The protocol of one case: goal limits stated as a table by a structure's volume, read on the case.

A goal such as RTOG 0813's "maximum dose 2 cm from the PTV" states its limit by the PTV's volume
(`specc.protocol.volume_table`). That volume is the case's: the structure's voxels on its mask times the
voxel volume, as the evaluation measures a structure's volume (`EvaluationContext.volume_cc`). This step
turns the protocol into the one protocol of the case, before anything is derived, compiled or judged
from its goals, so that the program's limits, the evaluation, the report, plan.json and a cohort's row
all read the same numbers. A plan reaches it through `with_optimization`, a check of a given dose
through `specc.check`, each on the masks it measures with.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from specc.compile.structures import resolve_structures

if TYPE_CHECKING:
    from specc.case import Case
    from specc.protocol import Protocol


def with_case_limits(
    protocol: Protocol, masks: Mapping[str, np.ndarray], voxel_volume_cc: float, absent: Mapping[str, str]
) -> Protocol:
    """`protocol` with its tables by volume read on the case whose `masks` (by protocol structure name) are
    given; `protocol` itself when it has none. A ProtocolError names each goal whose structure's volume is
    outside its table, at its line, with the volume and the table's range."""
    tabled = {goal.by_volume.structure for goal in protocol.goals if goal.by_volume is not None and goal.per_case}
    if not tabled:
        return protocol
    return protocol.with_limits_at(mask_volumes_cc({name: masks[name] for name in tabled if name in masks},
                                                   voxel_volume_cc), absent)


def mask_volumes_cc(masks: Mapping[str, np.ndarray], voxel_volume_cc: float) -> dict[str, float]:
    """Each structure's volume in cc on its mask: its voxels times the voxel volume, as the evaluation measures a
    volume. The one count a table is read at, whether for a plan, a check or `specc compile --explain`."""
    return {name: float(np.count_nonzero(mask)) * voxel_volume_cc for name, mask in masks.items()}


def case_protocol(protocol: Protocol, case: Case) -> Protocol:
    """`with_case_limits` on `case`'s masks, resolved here only when a goal needs a structure's volume (the compile
    resolves them again: deriving every structure twice is not worth it for a protocol without such a goal)."""
    if not any(goal.per_case for goal in protocol.goals):
        return protocol
    resolved = resolve_structures(protocol, case)
    return with_case_limits(protocol, resolved.masks, case.voxel_volume_cc, resolved.absent)
