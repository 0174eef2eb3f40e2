"""DVH tables of a plan that did not converge say so in every file, and the terminal warns."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evaluate_fakes import protocol, synthetic_case
from specc.cli import app
from specc.evaluate import PlanRecord
from specc.export.dvh_tables import DVH_COLUMNS, write_record_tables
from specc.pipeline import plan

TERMS = [
    "{kind: quadratic_underdose, structure: Target, dose: 60 Gy, weight: 10}",
    "{kind: quadratic_overdose, structure: Organ, dose: 10 Gy, weight: 1}",
]


@pytest.fixture(scope="module")
def planned(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("dvh") / "plan"
    assert plan(protocol({"Target": ["D50% >= 55 Gy"]}, terms=TERMS), synthetic_case(), folder).succeeded
    return folder


def _unconverged(record: PlanRecord) -> PlanRecord:
    solver = record.solver.model_copy(update={"status": "optimal_inaccurate", "converged": False})
    return record.model_copy(update={"converged": False, "solver": solver})


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_a_converged_plans_tables(planned, tmp_path):
    record = PlanRecord.model_validate_json((planned / "plan.json").read_text())
    write_record_tables(record, tmp_path)
    rows = _rows(tmp_path / "dvh.csv")
    assert tuple(rows[0]) == DVH_COLUMNS and {row["plan_status"] for row in rows} == {"converged"}
    assert {row["dose_of"] for row in rows} == {"this plan"}  # a composite's says so (test_pipeline_composite.py)
    tables = json.loads((tmp_path / "dvh.json").read_text())
    assert (tables["converged"], tables["solver_status"]) == (True, record.solver.status)


def test_an_unconverged_plans_tables_say_so(planned, tmp_path):
    record = _unconverged(PlanRecord.model_validate_json((planned / "plan.json").read_text()))
    write_record_tables(record, tmp_path)
    assert {row["plan_status"] for row in _rows(tmp_path / "dvh.csv")} == {"NOT CONVERGED"}
    tables = json.loads((tmp_path / "dvh.json").read_text())
    assert (tables["converged"], tables["solver_status"]) == (False, "optimal_inaccurate")


def test_cli_warns_of_an_unconverged_plan(planned, tmp_path):
    folder = Path(shutil.copytree(planned, tmp_path / "plan"))
    runner = CliRunner()
    converged = runner.invoke(app, ["export", "dvh", str(folder), "--out", str(tmp_path / "a")])
    assert converged.exit_code == 0 and "NOT CONVERGED" not in converged.output
    record = _unconverged(PlanRecord.model_validate_json((folder / "plan.json").read_text()))
    (folder / "plan.json").write_text(record.model_dump_json())
    exported = runner.invoke(app, ["export", "dvh", str(folder), "--out", str(tmp_path / "b")])
    said = " ".join(exported.output.split())
    assert exported.exit_code == 0
    assert "NOT CONVERGED: its solver ended optimal_inaccurate (SPECC-LBFGS); not a usable plan" in said
