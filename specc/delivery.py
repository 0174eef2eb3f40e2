"""Plans delivered as MLC segments: sequenced from a solved fluence, or forward planned.

With `delivery: {technique: step_and_shoot}` the plan a physician signs is what the MLC
segments deliver, so the pipeline evaluates the segments' fluence, not the optimized one; the
optimized fluence's goal values are kept beside it to show what sequencing cost. A plan is
converged only when both the fluence and the segment weights were. With `technique: forward`
no fluence is optimized: the segments are shaped from the structures (`sequence.forward`)
and only their weights are. Either way a small segment that carries much of its beam's weight
is noted (`_small_heavy_notes`): the weights stay as optimized, the planner is told.

The segment weights are solved as the fluence is: the fast path, handing over to the reference
solver (CLARABEL) where it does. Until 2026-11-27 they went to CLARABEL, since the fast path
could not certify a segment program whose every segment carries weight (its stationarity was
measured against a gradient that vanishes there) and was slow on many overlapping columns.
`python -m benchmarks.delivery` (5 mm C-shape, 7 beams, docs/delivery.md), the fast path's
solve over CLARABEL's: 0.19 / 0.15 / 0.17 at 5 / 10 / 20 levels with the default sequencing
(54 / 68 / 90 segments), 0.46 / 0.49 / 0.43 with the sweep's 86 / 168 / 293 segments; on the
same program the two objectives agree within 1e-6. A cvxpy solver named by the protocol or the
command line solves them itself.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from specc.planning import CompiledPlan, compile_terms
from specc.protocol import Delivery
from specc.sequence import Sequence, SequenceError, check_sequenceable, sequence_fluence
from specc.sequence.forward import forward_sequence
from specc.sequence.weights import keep_segments, segment_case, segment_program
from specc.solve import SolveResult
from specc.solve.choice import SEGMENT_WEIGHTS
from specc.solve.result import TermValue
from specc.solve.sample_check import CheckedSolve

# A segment weight below this fraction of the largest is a solver's rounding of zero: the
# segment is not delivered (and the plan is evaluated without it).
WEIGHT_FLOOR = 1e-6
# A delivered segment opening less than SMALL_SEGMENT_CM2 (about 1.4 x 1.4 cm) that carries
# more than HEAVY_SEGMENT_SHARE of its beam's summed weight is noted (`_small_heavy_notes`).
# Such a field is deep in the small-field range: its output factor falls steeply with its size
# and depends on the detector it was measured with, and a leaf-position error is a large part of
# its gap (1 mm of a 5 mm gap is 20% of the opening). An output off by 5-10% on a fifth of the
# beam moves the beam's dose by 1-2%; beyond that share the beam rests on its least certain
# part. 2 cm² is also the minimum that cost the C-shape under 0.4 Gy (docs/delivery.md step 6).
SMALL_SEGMENT_CM2 = 2.0
HEAVY_SEGMENT_SHARE = 0.20


@dataclass(frozen=True)
class Delivered:
    """The delivered plan (`result`: its beamlet fluence, status and terms) and its segments."""

    delivery: Delivery
    result: SolveResult
    sequence: Sequence
    fluence_result: SolveResult | None  # the optimized fluence it was sequenced from (None: forward planned)
    weights: str  # how the segments were weighted, as the report says it
    notes: list[str]


def deliver(compiled: CompiledPlan, solve: SolveResult, delivery: Delivery) -> Delivered:
    """Sequence `solve`'s fluence and (unless the protocol says `as_sequenced`) optimize the weights."""
    check_sequenceable(compiled.case)
    sequence = sequence_fluence(compiled.case.beamlets, solve.fluence, delivery.levels, delivery.sequencer)
    notes = [
        f"step-and-shoot delivery: each beam's fluence rounded to {delivery.levels} levels of its largest beamlet "
        f"weight and sequenced into {len(sequence.weights)} segments ({delivery.sequencer.replace('_', ' ')}); "
        "goals are measured on the segments' dose"
    ]
    then = "before the weights were optimized" if delivery.optimize_segment_weights else "(the others keep their weights)"
    sequence = _without_small(sequence, delivery, notes, then)
    if not delivery.optimize_segment_weights:
        return _delivered(delivery, _as_sequenced(solve, sequence), sequence, solve, "as sequenced", notes)
    weighted, sequence = _optimized_weights(compiled, sequence, notes, delivery.min_segment_weight_percent)
    if not weighted.usable:
        notes.append(
            f"segment weight optimization ended {weighted.status} ({weighted.message}); "
            "the segments keep the weights they were sequenced with"
        )
        weights = f"as sequenced (optimization ended {weighted.status})"
        return _delivered(delivery, _as_sequenced(solve, sequence), sequence, solve, weights, notes)
    message = f"segment weights ({weighted.solver}): {weighted.message}"
    if not solve.converged:
        message += f"; the fluence they were sequenced from did not converge: {solve.message}"
    result = replace(
        weighted,
        status=weighted.status if solve.converged else solve.status,
        converged=solve.converged and weighted.converged,
        message=message,
    )
    return _delivered(delivery, result, sequence, solve, "optimized", notes)


def plan_forward(compiled: CompiledPlan, delivery: Delivery) -> Delivered:
    """Shape each beam's segments from the targets and blocked organs, and optimize their weights.

    There is no fluence to fall back on: a weight solve that leaves no point leaves no plan
    (the result says why, and the pipeline writes nothing)."""
    check_sequenceable(compiled.case)
    protocol = compiled.protocol
    targets = [name for name, spec in protocol.structures.items() if spec.role == "target"]
    blocked, unblocked = _blocked(compiled, delivery)
    margin = delivery.aperture_margin.mm if delivery.aperture_margin is not None else 0.0
    sequence = forward_sequence(compiled.case, compiled.program.masks, targets, blocked, margin)
    notes = [
        f"forward plan: {len(sequence.weights)} segments shaped from the beam's-eye-view projection of "
        f"{', '.join(targets)}" + (f" grown by {delivery.aperture_margin}" if margin else "")
        + (f", blocking {', '.join(blocked)}" if blocked else "")
        + "; only their weights were optimized (segments left without weight are not delivered)"
    ]
    if unblocked:
        absent = compiled.program.structures.absent
        notes.append(
            "forward plan: not blocked (the default blocks every organ at risk the case has): "
            + "; ".join(f"{name}: {absent[name]}" for name in unblocked)
        )
    sequence = _without_small(sequence, delivery, notes, "before the weights were optimized")
    weighted, sequence = _optimized_weights(compiled, sequence, notes, delivery.min_segment_weight_percent)
    if weighted.usable:
        weighted = replace(weighted, message=f"segment weights ({weighted.solver}): {weighted.message}")
    return _delivered(delivery, weighted, sequence, None, "optimized", notes)


def _blocked(compiled: CompiledPlan, delivery: Delivery) -> tuple[list[str], list[str]]:
    """The organs the apertures block, and those the default (every organ at risk) leaves out because the
    case has no mask of them (`if_contoured: true` and not contoured, or an empty derived organ: the compile
    stage's `absent`). A `block` list as written is kept: the protocol refuses `if_contoured` on its organs,
    and the compile stage an empty one."""
    if delivery.block is not None:
        return list(delivery.block), []
    organs = [name for name, spec in compiled.protocol.structures.items() if spec.role == "oar"]
    masks = compiled.program.masks
    return [name for name in organs if name in masks], [name for name in organs if name not in masks]


def _without_small(sequence: Sequence, delivery: Delivery, notes: list[str], then: str) -> Sequence:
    """`sequence` without the segments opening less than `delivery.min_segment_area` (noted);
    a SequenceError when none is left, since there would be nothing to deliver."""
    if delivery.min_segment_area is None:
        return sequence
    areas = sequence.areas_cm2()
    small = areas < delivery.min_segment_area.cm2
    if not small.any():
        return sequence
    if small.all():
        raise SequenceError(
            f"every one of the {len(areas)} segments opens less than min_segment_area {delivery.min_segment_area} "
            f"(the largest {areas.max():.2f} cm²): nothing is left to deliver"
        )
    kept = sequence.with_weights(np.where(small, 0.0, sequence.weights)).without_empty()
    emptied = sorted({beam.beam for beam in sequence.beams} - {beam.beam for beam in kept.beams})
    notes.append(
        f"{int(small.sum())} of {len(areas)} segments open less than {delivery.min_segment_area} (the smallest "
        f"{areas.min():.2f} cm²) and were removed {then}"
        + (f"; beam {', '.join(map(str, emptied))} keeps no segment and delivers nothing" if emptied else "")
    )
    return kept


def _optimized_weights(
    compiled: CompiledPlan, sequence: Sequence, notes: list[str], min_percent: float | None
) -> tuple[SolveResult, Sequence]:
    """The protocol's program solved for the weights of `sequence`'s segments (notes appended).

    Usable: the result's fluence is the beamlet fluence of the weighted segments, which are
    returned without those the optimum does not use and, with `min_percent`, without those
    below that percentage of their beam's summed weight (removed a few at a time, `_below`,
    the weights solved again each time, until none is below). Otherwise both come back as
    they were.
    """
    program = segment_program(compiled.protocol, compiled.goal_priorities)
    # as the fluence was solved (see the module docstring), its variables the segments' weights, as its messages say
    settings = replace(compiled.settings, variables=SEGMENT_WEIGHTS)
    kept: tuple[SolveResult, Sequence, CheckedSolve] | None = None  # the last solve whose segments all pass
    removed = solves = 0
    weightless = 0  # segments the optimum gave no weight (below WEIGHT_FLOOR): not delivered, and said so
    offered = len(sequence.weights)
    case = segment_case(compiled.case, sequence)
    while True:
        checked = compile_terms(program.protocol, case, settings, program.goal_priorities).solve()
        weighted, solves = checked.result, solves + 1
        if not weighted.usable:
            if kept is None:
                return weighted, sequence
            notes.append(
                f"segment weights: without the segments below {min_percent:g}% of their beam's weight the solve ended "
                f"{weighted.status}; the plan keeps the last weights the solver gave, small segments included"
            )
            weighted, sequence, checked = kept
            break
        weights = np.where(weighted.fluence > WEIGHT_FLOOR * weighted.fluence.max(), weighted.fluence, 0.0)
        small = _below(sequence, weights, min_percent)
        kept = (weighted, sequence.with_weights(weights).without_empty(), checked)
        weightless += int(np.count_nonzero(weights == 0.0))  # `without_empty` drops them
        if not small.any():
            sequence = kept[1]
            break
        removed += int(np.count_nonzero(small))
        weights = np.where(small, 0.0, weights)
        sequence = sequence.with_weights(weights).without_empty()
        case = keep_segments(case, np.flatnonzero(weights > 0))  # the segments `without_empty` kept, in order
    notes.extend(f"segment weights: {note}" for note in checked.notes)
    if weightless:
        notes.append(
            f"segment weights: {weightless} of the {offered} segments got no weight from the optimum (below "
            f"{WEIGHT_FLOOR:g} of the largest) and are not delivered"
        )
    if removed:
        notes.append(
            f"segment weights: {removed} segments below {min_percent:g}% of their beam's summed weight removed, "
            f"the weights optimized again each time ({solves} solves)"
        )
    if program.left_out:
        labels = ", ".join(term.label() for term in program.left_out)
        notes.append(
            f"segment weights optimized without {labels}: the apertures fix the fluence's shape; "
            "measured on the delivered fluence"
        )
    left_out = [
        TermValue(term.label(), term.kind, str(term.source), bool(term.is_constraint), None) for term in program.left_out
    ]
    return replace(weighted, fluence=sequence.fluence(), terms=[*weighted.terms, *left_out]), sequence


def _below(sequence: Sequence, weights: np.ndarray, min_percent: float | None) -> np.ndarray:
    """The segments to remove this round: of each beam's segments below `min_percent` of the
    beam's summed weight, the lighter half (at least one).

    Removing every one at once over-shoots: the weights solved again without them spread over
    the rest, and the minimum then removes those too (measured, 5 mm C-shape at 10 levels and
    5%: 35 segments left and every goal failed). Halving keeps the rounds to a few."""
    remove = np.zeros(len(weights), dtype=bool)
    if min_percent is None:
        return remove
    start = 0
    for beam in sequence.beams:
        stop = start + len(beam.weights)
        own = weights[start:stop]
        below = np.flatnonzero((own > 0) & (own < min_percent / 100.0 * own.sum()))
        lightest = below[np.argsort(own[below])][: (len(below) + 1) // 2]
        remove[start + lightest] = True
        start = stop
    return remove


def _as_sequenced(solve: SolveResult, sequence: Sequence) -> SolveResult:
    """The fluence solve with the segments' fluence: no objective was computed at that point."""
    terms = [replace(term, objective_contribution=None) for term in solve.terms]
    return replace(solve, fluence=sequence.fluence(), objective=None, terms=terms)


def _delivered(
    delivery: Delivery, result: SolveResult, sequence: Sequence, fluence_result: SolveResult | None, weights: str,
    notes: list[str],
) -> Delivered:
    """The delivered plan, its notes ending with those on its final segments (`_small_heavy_notes`)."""
    if result.usable:
        notes.extend(_small_heavy_notes(sequence))
    return Delivered(delivery, result, sequence, fluence_result, weights, notes)


def _small_heavy_notes(sequence: Sequence) -> list[str]:
    """A note naming each delivered segment smaller than SMALL_SEGMENT_CM2 that carries more
    than HEAVY_SEGMENT_SHARE of its beam's summed weight (see there for why), and the protocol
    setting that removes them. The weights the optimizer gives are kept: this only says so."""
    found = []
    for beam in sequence.beams:
        total = float(beam.weights.sum())
        if total <= 0:
            continue
        for area, weight in zip(beam.areas_cm2(), beam.weights):
            if area < SMALL_SEGMENT_CM2 and weight / total > HEAVY_SEGMENT_SHARE:
                found.append(f"beam {beam.beam}: {area:.2f} cm² with {100 * weight / total:.0f}%")
    if not found:
        return []
    return [
        f"small segments carry much of their beam's weight ({'; '.join(found)}; noted under {SMALL_SEGMENT_CM2:g} cm² "
        f"and over {100 * HEAVY_SEGMENT_SHARE:.0f}% of the beam's summed weight): a small field's output depends "
        "steeply on its size and on the leaf positions (1 mm is 20% of a 5 mm gap), so much of these beams' dose "
        f"rests on their least certain segments; `delivery: {{min_segment_area: \"{SMALL_SEGMENT_CM2:g} cm2\"}}` "
        "removes smaller segments before the weights are optimized (docs/delivery.md)"
    ]
