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

from specc.case import Case
from specc.evaluate import PlanRecord
from specc.sequence import Sequence

FORMAT_NAME = "specc-segments"
FORMAT_VERSION = 1


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
            {
                "beam": beam.id,
                "gantry_deg": beam.gantry_deg,
                "couch_deg": beam.couch_deg,
                "collimator_deg": beam.collimator_deg,
                "isocenter_mm": list(beam.isocenter_mm),
                "energy": beam.energy,
                "leaf_width_mm": segments.grid.pitch_y_mm,
                "leaf_pair_centres_mm": [round(float(y), 3) for y in segments.leaf_y_mm],
                "segments": [
                    {
                        "weight": float(weight * factor),
                        "area_cm2": round(float(area), 4),
                        "quanta_as_sequenced": int(quanta),
                        "left_mm": _mm(left[index].tolist()),
                        "right_mm": _mm(right[index].tolist()),
                    }
                    for index, (weight, quanta, area) in enumerate(
                        zip(segments.weights, segments.apertures.quanta, segments.areas_cm2())
                    )
                ],
            }
        )
    document = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "case_id": case.case_id,
        "case_sha256": record.case.sha256,
        "protocol": {"name": record.protocol.name, "version": record.protocol.version, "sha256": record.protocol.sha256},
        "converged": record.converged,
        "solver_status": record.solver.status,
        "fractions": record.prescription.fractions,
        "weight_unit": "beamlet weight per fraction (the case's influence unit; not monitor units)",
        "intensity_levels": sequence.levels,
        "segment_weights": record.delivery.segment_weights if record.delivery is not None else None,
        "beams": beams,
    }
    path.write_text(json.dumps(document, indent=1), encoding="utf-8")
    return path
