"""Segment weight optimization: the protocol's program again, with the apertures fixed.

Rounding a fluence to intensity levels moves the dose, most where the plan was tightest
(target edges next to an organ). Planning systems recover most of it by optimizing the
segments' weights with the apertures held: the dose is linear in the weights, so this is the
same convex program with the influence matrix A replaced by A S (S: beamlets x segments,
`Sequence.apertures`), and everything the compiler, the solvers and the priorities do applies
to it unchanged. A case whose "beamlets" are the segments is that program's input.

Terms on the fluence itself (smoothness, fluence regularization: the terms naming no
structure) are left out of it: the apertures already fix the fluence's shape, and they are
measured on the delivered fluence like every term.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np

from specc.case import Beamlets, Case
from specc.protocol import Protocol
from specc.sequence.segments import Sequence, SequenceError
from specc.terms.base import TermBase


@dataclass(frozen=True)
class SegmentProgram:
    """What the weight optimization compiles: the protocol without its fluence terms, and the
    priority of each remaining term index (`with_optimization`'s map, renumbered)."""

    protocol: Protocol
    goal_priorities: dict[int, int]
    left_out: list[TermBase]  # the fluence terms left out


def segment_program(protocol: Protocol, goal_priorities: Mapping[int, int]) -> SegmentProgram:
    """`protocol` (with its optimization terms, derived or written) for the segments' weights."""
    optimization = protocol.optimization
    if optimization is None or not optimization.terms:
        raise SequenceError("segment weights are optimized on the plan's own terms, and the protocol has none")
    kept = [index for index, term in enumerate(optimization.terms) if term.structures()]
    left_out = [term for term in optimization.terms if not term.structures()]
    if not kept:
        raise SequenceError("every optimization term acts on the fluence alone: none is left to weight the segments")
    renumbered = {new: goal_priorities[old] for new, old in enumerate(kept) if old in goal_priorities}
    terms = [optimization.terms[index] for index in kept]
    copy = protocol.model_copy(update={"optimization": optimization.model_copy(update={"terms": terms})})
    return SegmentProgram(copy, renumbered, left_out)


def segment_case(case: Case, sequence: Sequence) -> Case:
    """`case` with one influence column per segment (A S, Gy per unit segment weight per fraction).

    Each segment is placed at the centre of its open beamlets, one beam's segments side by
    side; the positions only name the segments (no term on the fluence is compiled here).
    """
    apertures = sequence.apertures
    if apertures.shape[1] == 0:
        raise SequenceError("the plan delivers no fluence: there is no segment to weight")
    influence = (case.influence @ apertures).tocsr()
    influence.data = influence.data.astype(case.influence.dtype, copy=False)
    open_count = np.asarray(apertures.sum(axis=0)).ravel()
    centre_x = (case.beamlets.x_mm @ apertures) / open_count
    centre_y = (case.beamlets.y_mm @ apertures) / open_count
    beam_of_segment = np.concatenate([np.full(len(beam.weights), beam.beam) for beam in sequence.beams])
    segments = Beamlets(
        beam_of_segment, centre_x, centre_y, np.ones(len(open_count)), np.ones(len(open_count))
    )
    return replace(case, case_id=f"{case.case_id} (segments)", influence=influence, beamlets=segments)


def keep_segments(segments: Case, columns: np.ndarray) -> Case:
    """A segment case restricted to some of its segments (`columns`, in order): the columns of
    A S it already holds, not a new product."""
    b = segments.beamlets
    kept = Beamlets(b.beam_id[columns], b.x_mm[columns], b.y_mm[columns], b.width_mm[columns], b.height_mm[columns])
    return replace(segments, influence=segments.influence[:, columns], beamlets=kept)
