"""`specc plan` and `specc compile` through the command line (coarse phantom: 10 mm, 5 beams)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

import specc.cli.plan  # noqa: F401  (registers the commands)
from specc.case.phantoms import build_phantom
from specc.cli.app import app

PROTOCOL = Path(__file__).parent.parent / "protocols" / "tg119" / "c-shape.yaml"
COARSE = ["--phantom", "c-shape", "--grid", "10", "--beams", "5"]
runner = CliRunner()


def test_plan_on_a_coarse_phantom_writes_the_report_and_exits_0(tmp_path: Path) -> None:
    result = runner.invoke(app, ["plan", str(PROTOCOL), *COARSE, "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "optimal (CLARABEL)" in result.output and "Clinical goals" in result.output
    for name in ("report.html", "plan.json", "result.h5"):
        assert (tmp_path / name).is_file()
    record = json.loads((tmp_path / "plan.json").read_text())
    assert [goal["text"] for goal in record["goals"]] == ["D95% >= 50 Gy", "D10% <= 55 Gy", "D10% <= 10 Gy (variation 25 Gy)"]
    assert record["solver"]["status"] == "optimal"


def test_compile_prints_the_program_summary() -> None:
    result = runner.invoke(app, ["compile", str(PROTOCOL), *COARSE])
    assert result.exit_code == 0, result.output
    for text in ("PTV", "Core", "Shell", "Body", "nonzeros", "estimated memory", "variables", "c-shape.yaml:"):
        assert text in result.output


def test_an_infeasible_protocol_exits_1_names_the_hard_terms_and_writes_no_report(tmp_path: Path) -> None:
    case_path = tmp_path / "case.h5"
    build_phantom("c-shape", beams=5, grid_mm=10.0).save(case_path)
    text = PROTOCOL.read_text().split("optimization:")[0] + (
        "optimization:\n  terms:\n"
        "    - {kind: min_dose, structure: PTV, dose: 50 Gy}\n"
        "    - {kind: max_dose, structure: Shell, dose: 10 Gy}\n"
    )
    protocol = tmp_path / "infeasible.yaml"
    protocol.write_text(text)
    out = tmp_path / "out"
    result = runner.invoke(app, ["plan", str(protocol), "--case", str(case_path), "--out", str(out), "-q"])
    assert result.exit_code == 1
    assert "no plan: infeasible" in result.output
    assert f"min_dose PTV >= 50 Gy ({protocol}:" in result.output
    assert f"max_dose Shell <= 10 Gy ({protocol}:" in result.output
    assert not out.exists()


def test_case_and_phantom_are_exclusive(tmp_path: Path) -> None:
    result = runner.invoke(app, ["plan", str(PROTOCOL), "--out", str(tmp_path)])
    assert result.exit_code == 1 and "exactly one of --case CASE.h5 or --phantom NAME" in result.output
    result = runner.invoke(app, ["plan", str(PROTOCOL), "--case", "x.h5", "--grid", "5", "--out", str(tmp_path)])
    assert result.exit_code == 1 and "--grid and --beams apply to --phantom only" in result.output
