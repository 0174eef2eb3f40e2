"""Plans delivered as MLC segments: sequenced from a solved fluence, or forward planned.

With `delivery: {technique: step_and_shoot}` the plan a physician signs is what the MLC
segments deliver, so the pipeline evaluates the segments' fluence, not the optimized one; the
optimized fluence's goal values are kept beside it to show what sequencing cost. A plan is
converged only when both the fluence and the segment weights were. With `technique: forward`
no fluence is optimized: the segments are shaped from the structures (`sequence.forward`)
and only their weights are. Either way the protocol's minimum opening and segment areas,
minimum segment weight and maximum segments per beam remove segments (each removal counted in
a note, so that the counts sequenced, removed and delivered add up), and a segment with a small
opening that carries much of its beam's weight is noted (`_small_heavy_notes`): the weights
stay as optimized, the planner is told.

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

from specc.planning import CompiledPlan, SampleMemory, compile_terms
from specc.protocol import Area, Delivery
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
# A delivered segment with a separate opening (`BeamSegments.opening_areas_cm2`) of less than
# SMALL_SEGMENT_CM2 (about 1.4 x 1.4 cm) that carries more than HEAVY_SEGMENT_SHARE of its beam's
# summed weight is noted (`_small_heavy_notes`).
# Such a field is deep in the small-field range: its output factor falls steeply with its size
# and depends on the detector it was measured with, and a leaf-position error is a large part of
# its gap (1 mm of a 5 mm gap is 20% of the opening). An output off by 5-10% on a fifth of the
# beam moves the beam's dose by 1-2%; beyond that share the beam rests on its least certain
# part. 2 cm² is also the min_segment_area (a segment's openings summed) that cost the C-shape
# under 0.4 Gy (docs/delivery.md step 6). The note takes each opening whichever minimum is set:
# a segment passing min_segment_area may be all small openings.
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
    sequence = _without_small(sequence, delivery, notes)
    if not delivery.optimize_segment_weights:
        sequence = _capped_as_sequenced(sequence, delivery.max_segments_per_beam, notes)
        return _delivered(delivery, _as_sequenced(solve, sequence), sequence, solve, "as sequenced", notes)
    weighted, sequence = _optimized_weights(compiled, sequence, notes, delivery)
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
    sequence = _without_small(sequence, delivery, notes)
    weighted, sequence = _optimized_weights(compiled, sequence, notes, delivery)
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


def _without_small(sequence: Sequence, delivery: Delivery, notes: list[str]) -> Sequence:
    """`sequence` without what the protocol's minimum areas take (each noted), in the order a
    delivered segment must pass them: openings smaller than `min_opening_area` closed first, then
    segments opening less than `min_segment_area` in all removed, so that a segment whose small
    openings were closed is measured as it is delivered. A SequenceError when nothing is left."""
    then = "(the weights stay as sequenced)"
    if delivery.optimize_segment_weights:
        then = "before the weights were optimized"
    sequence = _without_small_openings(sequence, delivery.min_opening_area, notes, then)
    return _without_small_segments(sequence, delivery.min_segment_area, notes, then)


def _without_small_segments(sequence: Sequence, minimum: Area | None, notes: list[str], then: str) -> Sequence:
    """`sequence` without the segments whose open area, summed over their openings, is less than
    `minimum` (`min_segment_area`, noted); a SequenceError when none is left.

    The whole segment's area, as RayStation, Monaco and Pinnacle define a minimum segment area
    and their users read `min_segment_area`: a segment of eight separate 0.25 cm² holes passes
    2 cm². Closing each small opening instead (`min_opening_area`) cost the 5 mm C-shape's PTV
    D95% 50.81 -> 29.66 Gy at 1 cm² (docs/delivery.md step 7)."""
    if minimum is None:
        return sequence
    areas = sequence.areas_cm2()
    small = areas < minimum.cm2
    if not small.any():
        return sequence
    if small.all():
        raise SequenceError(
            f"every one of the {len(areas)} segments opens less than min_segment_area {minimum} in all "
            f"(the largest {areas.max():.2f} cm²): nothing is left to deliver"
        )
    kept = sequence.with_weights(np.where(small, 0.0, sequence.weights)).without_empty()
    notes.append(
        f"{int(small.sum())} of {len(areas)} segments open less than {minimum} in all (their openings summed; the "
        f"smallest {areas.min():.2f} cm²) and were removed {then}" + _emptied(sequence, kept)
    )
    return kept


def _without_small_openings(sequence: Sequence, minimum: Area | None, notes: list[str], then: str) -> Sequence:
    """`sequence` with every separate opening smaller than `minimum` (`min_opening_area`) closed
    (`Sequence.without_openings_below`: a segment left with none removed, one left the same as
    another of its beam merged into it; noted); a SequenceError when nothing is left to deliver.

    Small-field output and leaf-position error are each opening's: a segment of eight separate
    5 x 5 mm holes opens 2 cm² in all but is eight 0.25 cm² fields (audit s19/a2 F1)."""
    if minimum is None:
        return sequence
    kept, done = sequence.without_openings_below(minimum.cm2)
    if done.openings == 0:
        return sequence
    if not kept.beams:
        raise SequenceError(
            f"every opening of the {len(sequence.weights)} segments is smaller than min_opening_area {minimum} "
            f"(the largest {done.largest_cm2:.2f} cm²): nothing is left to deliver"
        )
    removed = [
        f"{done.emptied} left with no opening" if done.emptied else "",
        f"{done.merged} left the same as another segment of their beam (merged into it)" if done.merged else "",
    ]
    openings = f"{done.openings} segment opening{'s' if done.openings != 1 else ''}"
    notes.append(
        f"{openings} smaller than min_opening_area {minimum} (the smallest {done.smallest_cm2:.2f} cm²; an opening "
        "is leaf pairs whose gaps overlap along the leaves) closed in "
        f"{done.segments} of {len(sequence.weights)} segments {then}"
        + (f"; segments removed: {', '.join(part for part in removed if part)}" if any(removed) else "")
        + _emptied(sequence, kept)
    )
    return kept


def _emptied(before: Sequence, after: Sequence) -> str:
    """The clause naming the beams `before` has segments in and `after` has none ("" if none)."""
    emptied = sorted({beam.beam for beam in before.beams} - {beam.beam for beam in after.beams})
    return f"; beam {', '.join(map(str, emptied))} keeps no segment and delivers nothing" if emptied else ""


def _capped_as_sequenced(sequence: Sequence, max_segments: int | None, notes: list[str]) -> Sequence:
    """`sequence` with each beam's lightest segments as cut beyond `max_segments` removed (noted): with
    `as_sequenced` there is no weight optimization to choose them, and the others keep their weights."""
    if max_segments is None:
        return sequence
    remove = np.zeros(len(sequence.weights), dtype=bool)
    start = 0
    for beam in sequence.beams:
        excess = len(beam.weights) - max_segments
        if excess > 0:
            remove[start + np.argsort(beam.weights, kind="stable")[:excess]] = True
        start += len(beam.weights)
    if not remove.any():
        return sequence
    notes.append(
        f"{int(remove.sum())} of {len(remove)} segments removed to keep each beam to max_segments_per_beam "
        f"{max_segments} (the lightest as cut; the others keep their weights)"
    )
    return sequence.with_weights(np.where(remove, 0.0, sequence.weights)).without_empty()


def _optimized_weights(
    compiled: CompiledPlan, sequence: Sequence, notes: list[str], delivery: Delivery
) -> tuple[SolveResult, Sequence]:
    """The protocol's program solved for the weights of `sequence`'s segments (notes appended).

    Usable: the result's fluence is the beamlet fluence of the weighted segments, which are
    returned without those the optimum does not use and without those the protocol's minimum
    segment weight or maximum segments per beam remove (`_to_remove`: a few at a time, the
    weights solved again each time, until none is left to remove). Otherwise both come back as
    they were.
    """
    min_percent, max_segments = delivery.min_segment_weight_percent, delivery.max_segments_per_beam
    program = segment_program(compiled.protocol, compiled.goal_priorities)
    # as the fluence was solved (see the module docstring), its variables the segments' weights, as its messages say
    settings = replace(compiled.settings, variables=SEGMENT_WEIGHTS)
    kept: tuple[SolveResult, Sequence, CheckedSolve] | None = None  # the last solve whose segments all pass
    light = capped = solves = 0  # segments removed by the minimum weight, by the maximum count
    pending = (0, 0)  # those the last round removed: counted once a solve without them stands
    weightless = 0  # segments the optimum gave no weight (below WEIGHT_FLOOR): not delivered, and said so
    offered = len(sequence.weights)
    case = segment_case(compiled.case, sequence)
    samples = SampleMemory()  # a sample one round found too coarse is not compiled again in the next
    while True:
        checked = compile_terms(program.protocol, case, settings, program.goal_priorities, samples=samples).solve()
        weighted, solves = checked.result, solves + 1
        if not weighted.usable:
            if kept is None:
                return weighted, sequence
            rules = [f"below {min_percent:g}% of their beam's weight" if min_percent is not None else "",
                     f"beyond max_segments_per_beam {max_segments}" if max_segments is not None else ""]
            notes.append(
                f"segment weights: without the segments {' or '.join(rule for rule in rules if rule)} the solve ended "
                f"{weighted.status}; the plan keeps the last weights the solver gave, those segments included"
            )
            weighted, sequence, checked = kept
            break
        light, capped = light + pending[0], capped + pending[1]
        weights = np.where(weighted.fluence > WEIGHT_FLOOR * weighted.fluence.max(), weighted.fluence, 0.0)
        below, beyond = _to_remove(sequence, weights, min_percent, max_segments)
        kept = (weighted, sequence.with_weights(weights).without_empty(), checked)
        weightless += int(np.count_nonzero(weights == 0.0))  # `without_empty` drops them
        remove = below | beyond
        if not remove.any():
            sequence = kept[1]
            break
        pending = (int(np.count_nonzero(below)), int(np.count_nonzero(beyond)))
        weights = np.where(remove, 0.0, weights)
        sequence = sequence.with_weights(weights).without_empty()
        case = keep_segments(case, np.flatnonzero(weights > 0))  # the segments `without_empty` kept, in order
    notes.extend(f"segment weights: {note}" for note in checked.notes)
    if weightless:
        notes.append(
            f"segment weights: {weightless} of the {offered} segments got no weight from the optimum (below "
            f"{WEIGHT_FLOOR:g} of the largest) and are not delivered"
        )
    if light:
        notes.append(
            f"segment weights: {light} segments below {min_percent:g}% of their beam's summed weight removed, "
            f"the weights optimized again each time ({solves} solves)"
        )
    if capped:
        notes.append(
            f"segment weights: {capped} segments removed to keep each beam to max_segments_per_beam {max_segments} "
            f"(the lightest, a few at a time), the weights optimized again each time ({solves} solves)"
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


def _to_remove(
    sequence: Sequence, weights: np.ndarray, min_percent: float | None, max_segments: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """The segments to remove this round, (below the minimum weight, beyond the maximum count).

    Of each beam's segments beyond `max_segments` (those with weight counted), the lightest
    half of the excess (at least one); of the others below `min_percent` of the beam's summed
    weight, the lighter half (at least one, those beyond the count included). Removing every one at once over-shoots: the weights
    solved again without them spread over the rest, and the minimum then removes those too
    (measured, 5 mm C-shape at 10 levels and 5%: 35 segments left and every goal failed), and the
    weights solved again choose the next lightest better than the first solve's. Halving keeps
    the rounds to a few."""
    below = np.zeros(len(weights), dtype=bool)
    beyond = np.zeros(len(weights), dtype=bool)
    start = 0
    for beam in sequence.beams:
        stop = start + len(beam.weights)
        own = weights[start:stop]
        live = np.flatnonzero(own > 0)
        if max_segments is not None and len(live) > max_segments:
            lightest = live[np.argsort(own[live], kind="stable")]
            beyond[start + lightest[: (len(live) - max_segments + 1) // 2]] = True
        if min_percent is not None:
            # The lighter half of the beam's light segments, counting those the maximum count removes already:
            # the two rules together remove no more of them in a round than the minimum alone (review s19/r2 F2).
            light = (own > 0) & (own < min_percent / 100.0 * own.sum())
            wanted = (int(light.sum()) + 1) // 2 - int((light & beyond[start:stop]).sum())
            left = np.flatnonzero(light & ~beyond[start:stop])
            lighter = left[np.argsort(own[left], kind="stable")][: max(wanted, 0)]
            below[start + lighter] = True
        start = stop
    return below, beyond


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
    """A note naming each delivered segment with a separate opening smaller than SMALL_SEGMENT_CM2
    that carries more than HEAVY_SEGMENT_SHARE of its beam's summed weight (see there for why; each
    opening is its own small field, whatever the segment's other openings, so a segment that passes
    `min_segment_area` by its sum is still named), and the protocol setting that closes them. The
    weights the optimizer gives are kept: this only says so."""
    found = []
    for beam in sequence.beams:
        total = float(beam.weights.sum())
        if total <= 0:
            continue
        for openings, weight in zip(beam.opening_areas_cm2(), beam.weights):
            if openings.size and openings.min() < SMALL_SEGMENT_CM2 and weight / total > HEAVY_SEGMENT_SHARE:
                several = ""
                if openings.size > 1:
                    several = f" (the smallest of {openings.size} openings, {openings.sum():.2f} cm² in all)"
                found.append(f"beam {beam.beam}: {openings.min():.2f} cm²{several} with {100 * weight / total:.0f}%")
    if not found:
        return []
    return [
        f"small segments carry much of their beam's weight ({'; '.join(found)}; noted for an opening under "
        f"{SMALL_SEGMENT_CM2:g} cm² in a segment with over {100 * HEAVY_SEGMENT_SHARE:.0f}% of the beam's summed "
        "weight): "
        "a small field's output depends steeply on its size and on the leaf positions (1 mm is 20% of a 5 mm gap), "
        "so much of these beams' dose rests on their least certain segments; "
        f"`delivery: {{min_opening_area: \"{SMALL_SEGMENT_CM2:g} cm2\"}}` closes smaller openings before the weights "
        "are optimized, at a cost to the goals on specc's small-opening segments (min_segment_area removes only "
        "segments smaller in all; docs/delivery.md)"
    ]
