"""segments.json: a plan's MLC segments (step-and-shoot or forward), for a record-and-verify or planning system.

Per beam: its angles and isocentre, the leaf pairs (centre and width along IEC Y_b at the
isocentre plane), and per segment its weight and the two leaf tips of each pair (IEC X_b, mm;
null where the pair is closed). Weights are per fraction in the case's beamlet-weight unit,
after the plan's normalization: a planning system's own dose calculation turns them into
monitor units. The plan's convergence and protocol travel with the segments, so that a file
from a plan that did not converge says so wherever it goes. docs/formats/segments-json.md.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from specc.case import Beamlets, Case
from specc.errors import validation_text
from specc.evaluate import PlanRecord
from specc.export.result_file import ResultError
from specc.case.neighbours import BeamGrid
from specc.sequence import Sequence
from specc.sequence.segments import beam_grids_of, first_beamlet_edge_mm, leaf_pair_centres_mm

FORMAT_NAME = "specc-segments"
FORMAT_VERSION = 1
# The one unit of a segment's weight specc writes: a file saying "monitor units" is not specc's (review s19/r2 F1)
WEIGHT_UNIT = "beamlet weight per fraction (the case's influence unit; not monitor units)"
# The file writes its millimetres to 3 decimals: a tip this close to a beamlet edge is on it.
_FILE_RESOLUTION_MM = 1e-3
# ... and its areas to 4: an area_cm2 further than this from what its tips open is not the plan's.
_AREA_RESOLUTION_CM2 = 1e-3


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SegmentEntry(_Entry):
    weight: float
    area_cm2: float
    quanta_as_sequenced: int
    left_mm: list[float | None]
    right_mm: list[float | None]


class BeamSegmentsEntry(_Entry):
    beam: int
    gantry_deg: float
    couch_deg: float
    collimator_deg: float
    isocenter_mm: tuple[float, float, float]
    energy: str
    leaf_width_mm: float
    leaf_pair_centres_mm: list[float]
    segments: list[SegmentEntry]


class ProtocolEntry(_Entry):
    name: str
    version: str
    sha256: str


class SegmentsDocument(_Entry):
    format: Literal["specc-segments"] = FORMAT_NAME
    version: Literal[1] = FORMAT_VERSION
    case_id: str
    case_sha256: str
    protocol: ProtocolEntry
    converged: bool
    solver_status: str
    fractions: int
    weight_unit: Literal[WEIGHT_UNIT] = WEIGHT_UNIT
    intensity_levels: int | None
    sequencing: str | None = None  # fewest_segments | sweep; None: forward planned (or written before it was recorded)
    segment_weights: str | None
    beams: list[BeamSegmentsEntry]


def _mm(values: list[float]) -> list[float | None]:
    return [None if math.isnan(value) else round(value, 3) for value in values]


def write_segments(path: Path, sequence: Sequence, case: Case, record: PlanRecord) -> Path:
    """Write `sequence`, its weights scaled by the normalization of the plan `record` describes, to `path`."""
    factor = record.normalization_factor
    beams_by_id = {beam.id: beam for beam in case.beams}
    beams = []
    for segments in sequence.beams:
        beam = beams_by_id[segments.beam]
        left, right = segments.leaf_edges_mm()
        beams.append(
            BeamSegmentsEntry(
                beam=beam.id,
                gantry_deg=beam.gantry_deg,
                couch_deg=beam.couch_deg,
                collimator_deg=beam.collimator_deg,
                isocenter_mm=beam.isocenter_mm,
                energy=beam.energy,
                leaf_width_mm=segments.grid.pitch_y_mm,
                leaf_pair_centres_mm=[round(float(y), 3) for y in segments.leaf_y_mm],
                segments=[
                    SegmentEntry(
                        weight=float(weight * factor),
                        area_cm2=round(float(area), 4),
                        quanta_as_sequenced=int(quanta),
                        left_mm=_mm(left[index].tolist()),
                        right_mm=_mm(right[index].tolist()),
                    )
                    for index, (weight, quanta, area) in enumerate(
                        zip(segments.weights, segments.apertures.quanta, segments.areas_cm2())
                    )
                ],
            )
        )
    document = SegmentsDocument(
        case_id=case.case_id,
        case_sha256=record.case.sha256,
        protocol=ProtocolEntry(name=record.protocol.name, version=record.protocol.version, sha256=record.protocol.sha256),
        converged=record.converged,
        solver_status=record.solver.status,
        fractions=record.prescription.fractions,
        intensity_levels=sequence.levels,
        sequencing=sequence.sequencing,
        segment_weights=record.delivery.segment_weights if record.delivery is not None else None,
        beams=beams,
    )
    path.write_text(json.dumps(document.model_dump(mode="json"), indent=1), encoding="utf-8")
    return path


def segments_fluence(document: SegmentsDocument, beamlets: Beamlets) -> np.ndarray:
    """The beamlet fluence (per fraction, the case's unit) that `document`'s segments deliver on the
    case's `beamlets`: each segment's weight on every beamlet whose centre lies under one of its open
    leaf pairs (within half a leaf width of the pair's centre) and between that pair's two tips.

    Read from the file alone, as a planning system reads the RT Plan written from it: what the
    export checks against result.h5's fluence (`PlanResult.check_segments`). Tips lie on beamlet
    edges and centres half a beamlet inside them, so the 3-decimal rounding of the file's
    millimetres cannot move a beamlet in or out of an opening."""
    fluence = np.zeros(len(beamlets.beam_id))
    for beam in document.beams:
        members = np.flatnonzero(beamlets.beam_id == beam.beam)
        if members.size == 0 or not beam.segments:
            continue
        x, y = beamlets.x_mm[members], beamlets.y_mm[members]
        offsets = np.abs(y[:, None] - np.asarray(beam.leaf_pair_centres_mm)[None, :])
        pair = offsets.argmin(axis=1)
        under = offsets[np.arange(len(members)), pair] < beam.leaf_width_mm / 2
        left = np.array([[np.nan if tip is None else tip for tip in s.left_mm] for s in beam.segments])
        right = np.array([[np.nan if tip is None else tip for tip in s.right_mm] for s in beam.segments])
        opened = (left[:, pair] < x) & (x < right[:, pair]) & under  # (segments, beamlets); closed: NaN, never
        fluence[members] += np.array([s.weight for s in beam.segments]) @ opened
    return fluence


def geometry_mismatch(document: SegmentsDocument, case: Case) -> str | None:
    """The first thing in `document` that no plan of `case` can have written, or None. Its beams are the case's
    (`PlanResult.check_segments`, the one caller, refuses any other first).

    A plan's segments are cut on the case's beamlet grid (`specc.sequence`): each beam's angles,
    isocentre and energy are the case beam's, its leaf pairs are the grid's beamlet rows, and every
    leaf tip stops at a beamlet edge with a beamlet of the case under each cell it opens. The RT
    Plan carries all of these, and `segments_fluence` cannot see a tip moved by less than half a
    beamlet (a beamlet is open by its centre) nor one moved over cells without a beamlet: this is
    the check that does (audit s19/a2 F2). Millimetres are compared to the file's 3 decimals."""
    beams = {beam.id: beam for beam in case.beams}
    grids = {grid.beam: grid for grid in beam_grids_of(case.beamlets)}
    for entry in document.beams:
        beam, grid = beams[entry.beam], grids.get(entry.beam)  # a beam not the case's: `check_segments` refused it
        if grid is None:
            return f"beam {entry.beam}: case {case.case_id!r} has no beamlets of such a beam"
        for field in ("gantry_deg", "couch_deg", "collimator_deg", "energy"):
            if getattr(entry, field) != getattr(beam, field):
                return f"beam {entry.beam}: {field} {getattr(entry, field)!r}, the case's {getattr(beam, field)!r}"
        if not np.allclose(entry.isocenter_mm, beam.isocenter_mm, rtol=0, atol=_FILE_RESOLUTION_MM):
            return f"beam {entry.beam}: isocenter_mm {list(entry.isocenter_mm)}, the case's {list(beam.isocenter_mm)}"
        rows = leaf_pair_centres_mm(grid)
        if abs(entry.leaf_width_mm - grid.pitch_y_mm) > _FILE_RESOLUTION_MM:
            return (f"beam {entry.beam}: leaf width {entry.leaf_width_mm:g} mm, the case's beamlet rows "
                    f"{grid.pitch_y_mm:g} mm high")
        if len(entry.leaf_pair_centres_mm) != len(rows):
            return (f"beam {entry.beam}: {len(entry.leaf_pair_centres_mm)} leaf pairs, the case's {len(rows)} "
                    "beamlet rows")
        for pair, (centre, row) in enumerate(zip(entry.leaf_pair_centres_mm, rows), start=1):
            if abs(centre - row) > _FILE_RESOLUTION_MM:
                return (f"beam {entry.beam}: leaf pair {pair} centred on {centre:g} mm, the case's beamlet row "
                        f"{pair} on {row:g} mm")
        for number, segment in enumerate(entry.segments, start=1):
            for pair, tips in enumerate(zip(segment.left_mm, segment.right_mm)):
                if tips[0] is None:
                    continue
                wrong = _tip_off_the_grid(tips, grid, pair)
                if wrong is not None:
                    return (f"beam {entry.beam} segment {number} leaf pair {pair + 1} (centred on "
                            f"{entry.leaf_pair_centres_mm[pair]:g} mm): {wrong}")
            area = sum(right - left for left, right in zip(segment.left_mm, segment.right_mm) if left is not None)
            if abs(area * entry.leaf_width_mm / 100.0 - segment.area_cm2) > _AREA_RESOLUTION_CM2:
                return (f"beam {entry.beam} segment {number}: area_cm2 {segment.area_cm2:g}, its leaf tips open "
                        f"{area * entry.leaf_width_mm / 100.0:.4g} cm²")
    return None


def _tip_off_the_grid(tips: tuple[float, float], grid: BeamGrid, pair: int) -> str | None:
    """Why an open pair's (left, right) tips cannot be a plan's: a tip off the beam's beamlet edges, or
    a cell between them that holds no beamlet of the case (None: neither)."""
    edge0 = first_beamlet_edge_mm(grid)
    edges = []
    for side, tip in zip(("left", "right"), tips):
        edge = round((tip - edge0) / grid.pitch_x_mm)
        if abs(edge0 + edge * grid.pitch_x_mm - tip) > _FILE_RESOLUTION_MM:
            below = edge0 + math.floor((tip - edge0) / grid.pitch_x_mm) * grid.pitch_x_mm
            return (f"{side} tip {tip:g} mm is not on a beamlet edge (leaves stop at the beam's beamlet edges, "
                    f"{grid.pitch_x_mm:g} mm apart: {below:g} or {below + grid.pitch_x_mm:g} mm here)")
        edges.append(edge)
    row = grid.cells[:, pair]
    opened = np.arange(edges[0], edges[1])
    outside = (opened < 0) | (opened >= len(row))
    if outside.any() or (row[opened[~outside]] < 0).any():
        return (f"tips {tips[0]:g} to {tips[1]:g} mm open cells where the case has no beamlet (a plan opens only "
                "its beamlets)")
    return None


def read_segments(path: str | Path, data: bytes | None = None) -> SegmentsDocument:
    """Read a segments.json back; errors name the file and the first field that is wrong. `data`: its bytes where the
    caller has read them, as for `read_result`."""
    path = Path(path)
    try:
        content = path.read_bytes() if data is None else data
    except FileNotFoundError:
        raise ResultError(
            f"{path}: no such file (specc plan writes segments.json only for a protocol with "
            "`delivery: {technique: step_and_shoot}` or `forward`)"
        ) from None
    try:
        document = SegmentsDocument.model_validate_json(content)
    except ValidationError as error:
        raise ResultError(f"{path}: not a specc segments file: {validation_text(error, '(top level)')}") from None
    for beam in document.beams:
        pairs = len(beam.leaf_pair_centres_mm)
        for number, segment in enumerate(beam.segments, start=1):
            if len(segment.left_mm) != pairs or len(segment.right_mm) != pairs:
                raise ResultError(
                    f"{path}: beam {beam.beam} segment {number}: {len(segment.left_mm)} left and "
                    f"{len(segment.right_mm)} right leaf tips for {pairs} leaf pairs"
                )
            tips = list(zip(segment.left_mm, segment.right_mm))
            if any((left is None) != (right is None) or (left is not None and left >= right) for left, right in tips):
                raise ResultError(f"{path}: beam {beam.beam} segment {number}: a leaf pair is open on one side only, "
                                  "or its left tip is not left of its right one")
            if all(left is None for left, _ in tips):
                raise ResultError(f"{path}: beam {beam.beam} segment {number}: every leaf pair is closed (it delivers nothing)")
    return document
