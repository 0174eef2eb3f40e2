"""DVH curves and goal results as CSV and JSON, for spreadsheets and scripts.

The tables come from the plan record in result.h5 when it has one: the same curves and goal
results the signed report shows, derived structures included. A result written without a
record gets curves computed from the case's structures (exact, voxel by voxel) and no goals,
and the JSON says which source was used.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from specc.evaluate.dvh import DVH
from specc.evaluate.record import GoalRecord, PlanRecord, StructureDose
from specc.export.result_file import PlanResult, ResultError

if TYPE_CHECKING:
    from specc.case import Case

CURVE_POINTS = 200
GOAL_COLUMNS = ("structure", "goal", "metric", "comparator", "threshold", "variation", "unit", "priority",
                "value", "status", "source")


def write_dvh_tables(result: PlanResult, out_dir: str | Path, case: Case | None = None) -> list[Path]:
    """Write dvh.csv, goals.csv (when the result has a plan record) and dvh.json into `out_dir`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if result.record_json is not None:
        record = PlanRecord.model_validate_json(result.record_json)
        curves, goals, source = record.structures, [_goal_row(g) for g in record.goals], "plan record"
    else:
        if case is None:
            raise ResultError(f"{result.path}: no plan record inside; pass the case with --case to compute DVHs")
        curves, goals, source = _curves_from_case(result, case), [], "case structures"

    dvh_csv = out_dir / "dvh.csv"
    with dvh_csv.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["structure", "dose_gy", "volume_percent", "volume_cc"])
        for curve in curves:
            for dose, percent in zip(curve.dose_gy, curve.volume_percent):
                writer.writerow([curve.structure, f"{dose:.4f}", f"{percent:.4f}", f"{percent * curve.volume_cc / 100:.4f}"])
    written = [dvh_csv]
    if goals:
        goals_csv = out_dir / "goals.csv"
        with goals_csv.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=GOAL_COLUMNS)
            writer.writeheader()
            writer.writerows(goals)
        written.append(goals_csv)
    dvh_json = out_dir / "dvh.json"
    dvh_json.write_text(json.dumps({
        "case_id": result.case_id,
        "fractions": result.fractions,
        "dose": "total over all fractions, Gy",
        "source": source,
        "structures": [curve.model_dump() for curve in curves],
        "goals": goals,
    }, indent=1))
    written.append(dvh_json)
    return written


def _curves_from_case(result: PlanResult, case: Case) -> list[StructureDose]:
    curves = []
    for name, structure in case.structures.items():
        dvh = DVH.from_dose(result.dose_gy[structure.mask], case.voxel_volume_cc)
        doses, percent = dvh.curve(CURVE_POINTS)
        curves.append(StructureDose(
            structure=name, color=structure.color, volume_cc=dvh.volume_cc, min_gy=dvh.min, mean_gy=dvh.mean,
            max_gy=dvh.max, dose_gy=np.round(doses, 6).tolist(), volume_percent=np.round(percent, 6).tolist(),
        ))
    return curves


def _goal_row(goal: GoalRecord) -> dict[str, object]:
    return {
        "structure": goal.structure, "goal": goal.text, "metric": goal.metric, "comparator": goal.comparator,
        "threshold": goal.threshold, "variation": goal.variation, "unit": goal.unit, "priority": goal.priority,
        "value": goal.value, "status": goal.status, "source": goal.source,
    }
