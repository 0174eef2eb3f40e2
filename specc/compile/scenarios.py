"""Robust optimization over setup-error scenarios: the protocol's terms copied into each one.

With `robustness: {optimize: true}`, every term on a robust structure (those the robustness
section lists, else the prescription targets, and their parts: `robust_structures`) is
written once more for the structure displaced by each scenario's setup error, a shift or a
turn about the beams' isocentre: the structure's name replaced by a scenario name such as
"CTV (x +3 mm)" or "CTV (about z +2 deg)", whose dose the compile stage gives as the
interpolated rows W A of `specc.case.shifts` and the evaluate stage as the same
interpolation of the final dose. With random errors every scenario is of the dose blurred by
them (the expected dose over many fractions), and the blurred dose alone is one more: "CTV
(random 3 mm SD)", "CTV (x +3 mm; random 3 mm SD)", rows W G A with G the blur.

* A hard limit then holds in the nominal scenario and in every displaced one: the worst case
  over the scenarios, exactly, with nothing else changed (the copies are ordinary limits).
* An objective becomes its average over the scenarios (equal probabilities: the stochastic
  programming form of Unkelbach and Oelfke 2004): each copy weighs 1/(scenarios + 1) of the
  term, so the term's total weight, and its balance against the other terms, is unchanged.
  With `objective: worst_case` a quadratic or uniform-dose penalty is instead held at its
  worst scenario (`specc.terms.worst_case`, minimax: the copies at the term's whole weight
  under one maximum), which the fast first-order path has no form for: such a program goes to
  the reference solver.

The copies keep the term's protocol line and priority, so reports cite the line the user
wrote and priority steps keep their order. The scenarios are the ones the robustness check
measures, so a hard limit met in the optimization is met there too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from specc.case.shifts import Displacement, DisplacedVoxels, beams_isocentre, outside_note
from specc.compile.places import said_at_structure
from specc.errors import CompileError
from specc.protocol.models import SetupScenario, random_error_text, scenario_name
from specc.terms.worst_case import WORST_CASE_KINDS, WorstCase

if TYPE_CHECKING:
    from specc.case import Case
    from specc.protocol import Protocol


def robust_structures(protocol: Protocol) -> set[str]:
    """The structures robust optimization copies terms for: those the robustness section lists,
    and every structure defined as a part of one (a difference, intersection, crop or shrink of
    it, such as the coverage region `PTV - Rectum` that goals-only protocols derive), since a
    part of a displaced structure is displaced with it."""
    robust = set(protocol.robust_structures())
    grown = True
    while grown:
        parts = {
            name for name, spec in protocol.structures.items()
            if spec.expression is not None and robust.intersection(spec.expression.within())
        }
        grown = not parts <= robust
        robust |= parts
    return robust


def with_scenarios(protocol: Protocol) -> Protocol:
    """`protocol` with its robust terms copied into every scenario (itself without robust optimization)."""
    robustness, optimization = protocol.robustness, protocol.optimization
    if robustness is None or not robustness.optimize or optimization is None:
        return protocol
    displacements, blur = robustness.scenarios, robustness.blur_mm
    if not displacements:
        return protocol
    robust = robust_structures(protocol)
    share = 1.0 / (len(displacements) + 1)
    scenarios: dict[str, SetupScenario] = {}
    terms = []
    for term in optimization.terms:
        structure = getattr(term, "structure", None)
        if structure not in robust:
            terms.append(term)
            continue
        names = [scenario_name(structure, offset, rotation, blur) for offset, rotation in displacements]
        for name, (offset, rotation) in zip(names, displacements):
            if name in protocol.structures:
                raise CompileError(said_at_structure(
                    protocol, name, f"structure {name!r} has the name robust optimization gives {structure} displaced "
                    "by a setup error; rename it"
                ))
            scenarios[name] = SetupScenario(structure=structure, offset_mm=offset, rotation_deg=rotation,
                                            random_error_mm=blur)
        copies = [term, *(term.model_copy(update={"structure": name}) for name in names)]
        if robustness.objective == "worst_case" and term.kind in WORST_CASE_KINDS:
            terms.append(WorstCase(scenarios=copies, priority=term.priority, source=term.source))
            continue
        if not term.is_constraint:
            weight = term.weight  # type: ignore[attr-defined]
            copies = [copy.model_copy(update={"weight": weight * share}) for copy in copies]
        terms.extend(copies)
    robust_optimization = optimization.model_copy(update={"terms": terms, "scenarios": scenarios})
    return protocol.model_copy(update={"optimization": robust_optimization})


def robust_notes(
    protocol: Protocol, displaced: list[SetupScenario], case: Case, masks: Mapping[str, np.ndarray]
) -> list[str]:
    """What robust optimization did (the program's notes): the structures held in the scenarios, those
    listed that no term names, and voxels displaced where the case computes no dose."""
    robustness = protocol.robustness
    assert robustness is not None, "robust notes are of a protocol with robust optimization"
    robust = list(dict.fromkeys(scenario.structure for scenario in displaced))
    blur = robustness.blur_mm
    held = "nominal and each displaced one" if blur is None else (
        f"nominal, then the dose blurred by random errors ({random_error_text(blur)}) alone"
        + (" and each displaced one of it" if len(robustness.scenarios) > 1 else "")
    )
    objectives = "objectives averaged over them"
    if robustness.objective == "worst_case":
        objectives = (f"the {', '.join(WORST_CASE_KINDS)} penalties at their worst scenario (minimax), other "
                      "objectives averaged over them")
    note = (
        f"robust optimization: the terms on {', '.join(robust)} are held in {len(robustness.scenarios) + 1} "
        f"setup-error scenarios ({held}, static dose cloud): hard limits in every one, {objectives}"
    )
    missing = [name for name in protocol.robust_structures() if name not in robust]
    if missing:
        note += f"; no term names {', '.join(missing)}, so its goals are checked in the scenarios but not optimized there"
    notes = [note]
    centre = beams_isocentre(case.beams)
    for base in robust:
        moved = [Displacement.of(scenario, centre) for scenario in displaced if scenario.structure == base]
        displaced_voxels = [DisplacedVoxels.of(case.grid, masks[base], m) for m in moved]
        if outside := outside_note(case.voxel_indices, base, displaced_voxels, blur):
            notes.append(outside)
    return notes
