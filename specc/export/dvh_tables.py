"""DVH curves and goal results as CSV and JSON, for spreadsheets and scripts.

The tables come from the plan record in result.h5 when it has one, or from plan.json (a
`specc check` writes no result.h5: it has no fluence, and its dose is the other system's own
file): the same curves and goal results the signed report shows, derived structures included.
A result written without a record gets curves computed from the case's structures (exact,
voxel by voxel) and no goals, and the JSON says which source was used.

A plan whose solver did not converge is no usable plan, and its tables travel without its
report: dvh.json carries `converged` and the solver status, and every row of dvh.csv says
NOT CONVERGED in its `plan_status` column. A column, not a comment line: every CSV reader keeps
it, where a leading "#" line breaks readers that do not expect one. So does a composite plan's
(docs/composite.md): its curves are of the prior course plus the plan, and every row's `dose_of`
says so (dvh.json names the prior files in `composite_with_prior_dose`); a curve pulled into a
spreadsheet or another DVH tool keeps what it is of.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from specc.evaluate.dvh import DVH
from specc.evaluate.record import NOT_CONVERGED_LABEL, GoalRecord, PlanRecord, StructureDose
from specc.export.result_file import PlanResult, ResultError

if TYPE_CHECKING:
    from specc.case import Case

DVH_COLUMNS = ("structure", "dose_gy", "volume_percent", "volume_cc", "plan_status", "dose_of")
COMPOSITE = "composite (prior + this plan)"
THIS_PLAN = "this plan"
GOAL_COLUMNS = ("structure", "goal", "metric", "comparator", "threshold", "variation", "unit", "quantity", "course",
                "priority", "value", "status", "source")


def write_dvh_tables(result: PlanResult, out_dir: str | Path, case: Case | None = None) -> list[Path]:
    """Write dvh.csv, goals.csv (when the result has a plan record) and dvh.json into `out_dir`."""
    if result.record is not None:
        return write_record_tables(result.record, out_dir)
    if case is None:
        raise ResultError(f"{result.path}: no plan record inside; pass the case with --case to compute DVHs")
    # without its record, result.h5's own root attributes say whether the solver converged, if anything does
    return _write_tables(Path(out_dir), _curves_from_case(result, case), [], {
        "case_id": result.case_id, "fractions": result.fractions, "source": "case structures",
        "converged": result.converged, "solver_status": result.solver_status,
    }, _status(result.converged), COMPOSITE if result.prior_dose_gy is not None else THIS_PLAN)


def plan_status(record: PlanRecord) -> str:
    """What dvh.csv's plan_status column says of a plan record: converged, NOT CONVERGED, or external dose (a
    check of another system's dose). A check of a dose whose file says NOT CONVERGED (specc's own export of such
    a plan) is NOT CONVERGED too: it read "external dose" while the terminal said the column says so (review
    s20/r2 F3)."""
    if not record.converged:
        return NOT_CONVERGED_LABEL
    return "external dose" if record.solver is None else "converged"


def _status(converged: bool | None) -> str:
    """converged, NOT CONVERGED, or unknown (a result.h5 that can say neither)."""
    return "unknown" if converged is None else "converged" if converged else NOT_CONVERGED_LABEL


def write_record_tables(record: PlanRecord, out_dir: str | Path) -> list[Path]:
    """The tables of a plan record (plan.json): a plan's, or a check's of another system's dose."""
    header: dict[str, object] = {
        "case_id": record.case.case_id, "fractions": record.prescription.fractions, "source": "plan record",
        "converged": record.converged, "solver_status": record.solver.status if record.solver is not None else None,
    }
    if record.dose_source is not None:
        header["dose_file"] = {"file": record.dose_source.file, "sha256": record.dose_source.sha256,
                               "format": record.dose_source.format}
    if record.prior_dose is not None:  # the curves and goals are of the composite
        header["composite_with_prior_dose"] = [{"file": f.file, "sha256": f.sha256} for f in record.prior_dose.files]
    goals = [_goal_row(goal) for goal in record.goals]
    dose_of = COMPOSITE if record.prior_dose is not None else THIS_PLAN
    return _write_tables(Path(out_dir), record.structures, goals, header, plan_status(record), dose_of)


def _write_tables(
    out_dir: Path, curves: list[StructureDose], goals: list[dict[str, object]], header: dict[str, object], status: str,
    dose_of: str,
) -> list[Path]:
    """dvh.csv, goals.csv (with goals) and dvh.json; `status` and `dose_of` fill dvh.csv's last two columns."""
    out_dir.mkdir(parents=True, exist_ok=True)
    dvh_csv = out_dir / "dvh.csv"
    with dvh_csv.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(DVH_COLUMNS)
        for curve in curves:
            for dose, percent in zip(curve.dose_gy, curve.volume_percent):
                volume_cc = percent * curve.volume_cc / 100
                writer.writerow([curve.structure, f"{dose:.4f}", f"{percent:.4f}", f"{volume_cc:.4f}", status, dose_of])
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
        **header,
        "dose": "total over all fractions, Gy",
        "structures": [curve.model_dump() for curve in curves],
        "goals": goals,
    }, indent=1))
    written.append(dvh_json)
    return written


def _curves_from_case(result: PlanResult, case: Case) -> list[StructureDose]:
    """Curves of the case structures at the plan record's resolution, up to the plan's maximum."""
    curves, dose = [], result.composite_dose_gy
    highest = float(dose.max())
    for name, structure in case.structures.items():
        dvh = DVH.from_dose(dose[structure.mask], case.voxel_volume_cc)
        doses, percent = dvh.curve_by_step(max_dose_gy=highest)
        curves.append(StructureDose(
            structure=name, color=structure.color, volume_cc=dvh.volume_cc, min_gy=dvh.min, mean_gy=dvh.mean,
            max_gy=dvh.max, dose_gy=np.round(doses, 6).tolist(), volume_percent=np.round(percent, 6).tolist(),
        ))
    return curves


def _goal_row(goal: GoalRecord) -> dict[str, object]:
    return {
        "structure": goal.structure, "goal": goal.text, "metric": goal.metric, "comparator": goal.comparator,
        "threshold": goal.threshold, "variation": goal.variation, "unit": goal.unit, "quantity": goal.quantity,
        "course": goal.course, "priority": goal.priority,
        "value": goal.value, "status": goal.status, "source": goal.source,
    }
