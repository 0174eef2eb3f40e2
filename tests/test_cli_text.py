"""What the terminal prints of user text (goals, structure, protocol, label and file names): exactly as written.

Square brackets are part of the protocol language (`V10Gy[cc]`: a volume in cc, where
`V10Gy` is in %), so a goal printed without them states another goal.
"""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from evaluate_fakes import synthetic_case
from specc.cli import app
from specc.export import read_result
from specc.export.rtdose import write_rtdose

PROTOCOL = """\
specc: 1
name: Markup [i]test
site: t
version: 1.0.0
structures: {Target: {role: target}, "[b]x": {role: oar}}
prescription: {fractions: 30, levels: [{target: Target, dose: 60 Gy}]}
goals: {Target: ['D50% >= 50 Gy'], "[b]x": ['V10Gy[cc] <= 40', 'Mean <= 1 Gy']}
optimization:
  terms:
    - {kind: quadratic_underdose, structure: Target, dose: 60 Gy, weight: 10}
    - {kind: quadratic_overdose, structure: "[b]x", dose: 10 Gy, weight: 1}
"""
WIDE = {"COLUMNS": "250"}  # no cell wrapped: each text whole on its line
runner = CliRunner()


def _written(tmp_path: Path) -> tuple[Path, Path]:
    protocol = tmp_path / "markup.yaml"
    protocol.write_text(PROTOCOL)
    case = tmp_path / "case.h5"
    synthetic_case(oar_name="[b]x").save(case)
    return protocol, case


def test_plan_check_and_compare_print_goals_and_names_with_their_brackets(tmp_path: Path) -> None:
    protocol, case = _written(tmp_path)
    planned = tmp_path / "plan [red]1"
    result = runner.invoke(app, ["plan", str(protocol), "--case", str(case), "--out", str(planned)], env=WIDE)
    assert result.exit_code == 0, result.output
    assert "│ [b]x      │ V10Gy[cc] <= 40 │" in result.output
    assert f"wrote {planned / 'report.html'}" in result.output

    dose = write_rtdose(read_result(planned / "result.h5"), tmp_path / "RD.dcm")
    checked = tmp_path / "check"
    result = runner.invoke(
        app, ["check", str(protocol), "--case", str(case), "--dose", str(dose), "--out", str(checked)], env=WIDE
    )
    assert result.exit_code == 0, result.output
    assert "│ [b]x      │ V10Gy[cc] <= 40 │" in result.output

    result = runner.invoke(
        app, ["compare", str(planned), str(checked), "--label", "[u]a", "--out", str(tmp_path / "cmp"), "--label", "b"],
        env=WIDE,
    )
    assert result.exit_code == 0, result.output
    assert "[u]a" in result.output and "│ [b]x      │ V10Gy[cc] <= 40 │" in result.output


def test_the_cohort_table_heads_its_columns_with_the_goals_as_written(tmp_path: Path) -> None:
    protocol, case = _written(tmp_path)
    result = runner.invoke(app, ["cohort", str(protocol), str(case), "--out", str(tmp_path / "out"), "-q"], env=WIDE)
    assert result.exit_code == 0, result.output
    assert "Markup [i]test: cohort of 1" in result.output
    assert "[b]x: V10Gy[cc] <= 40 [cc]" in result.output
