"""Step-and-shoot delivery of a solved plan: sequence it, weight the segments, record what changed.

With `delivery: {technique: step_and_shoot}` the plan a physician signs is what the MLC
segments deliver, so the pipeline evaluates the segments' fluence, not the optimized one; the
optimized fluence's goal values are kept beside it to show what sequencing cost. A plan is
converged only when both the fluence and the segment weights were.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from specc.planning import CompiledPlan, compile_terms
from specc.protocol import Delivery
from specc.sequence import Sequence, sequence_fluence
from specc.sequence.weights import segment_case, segment_program
from specc.solve import SolveResult

# A segment weight below this fraction of the largest is a solver's rounding of zero: the
# segment is not delivered (and the plan is evaluated without it).
WEIGHT_FLOOR = 1e-6


@dataclass(frozen=True)
class Delivered:
    """The delivered plan (`result`: its beamlet fluence, status and terms) and its segments."""

    result: SolveResult
    sequence: Sequence
    fluence_result: SolveResult  # the optimized fluence it was sequenced from
    weights: str  # how the segments were weighted, as the report says it
    notes: list[str]


def deliver(compiled: CompiledPlan, solve: SolveResult, delivery: Delivery) -> Delivered:
    """Sequence `solve`'s fluence and (unless the protocol says `as_sequenced`) optimize the weights."""
    sequence = sequence_fluence(compiled.case.beamlets, solve.fluence, delivery.levels)
    notes = [
        f"step-and-shoot delivery: each beam's fluence rounded to {delivery.levels} levels of its largest beamlet "
        f"weight and sequenced into {len(sequence.weights)} segments (sweep); goals are measured on the segments' dose"
    ]
    if not delivery.optimize_segment_weights:
        return Delivered(_as_sequenced(solve, sequence), sequence, solve, "as sequenced", notes)
    program = segment_program(compiled.protocol, compiled.goal_priorities)
    segments = compile_terms(
        program.protocol, segment_case(compiled.case, sequence), compiled.settings, program.goal_priorities
    )
    checked = segments.solve()
    weighted = checked.result
    notes.extend(f"segment weights: {note}" for note in checked.notes)
    if not weighted.usable:
        notes.append(
            f"segment weight optimization ended {weighted.status} ({weighted.message}); "
            "the segments keep the weights they were sequenced with"
        )
        return Delivered(
            _as_sequenced(solve, sequence), sequence, solve, f"as sequenced (optimization ended {weighted.status})", notes
        )
    if program.left_out:
        notes.append(
            f"segment weights optimized without {', '.join(program.left_out)}: the apertures fix the fluence's shape; "
            "measured on the delivered fluence"
        )
    weights = np.where(weighted.fluence > WEIGHT_FLOOR * weighted.fluence.max(), weighted.fluence, 0.0)
    sequence = sequence.with_weights(weights).without_empty()
    left_out = [replace(term, objective_contribution=None) for term in solve.terms if term.label in program.left_out]
    message = f"segment weights ({weighted.solver}): {weighted.message}"
    if not solve.converged:
        message += f"; the fluence they were sequenced from did not converge: {solve.message}"
    result = replace(
        weighted,
        status=weighted.status if solve.converged else solve.status,
        converged=solve.converged and weighted.converged,
        message=message,
        fluence=sequence.fluence(),
        terms=[*weighted.terms, *left_out],
    )
    return Delivered(result, sequence, solve, "optimized", notes)


def _as_sequenced(solve: SolveResult, sequence: Sequence) -> SolveResult:
    """The fluence solve with the segments' fluence: no objective was computed at that point."""
    terms = [replace(term, objective_contribution=None) for term in solve.terms]
    return replace(solve, fluence=sequence.fluence(), objective=None, terms=terms)
