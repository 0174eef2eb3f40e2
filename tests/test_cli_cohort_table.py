"""`specc cohort`'s summary table in an 80-column terminal or a log file, with a protocol of many goals.

Audit c3 F1: with 24 goals every column but the case was squeezed to 0-2 characters: no header, no
solver status, no value, nothing telling the cases that erred from those planned.
"""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

import specc.cli.plan  # noqa: F401  (registers the commands)
from evaluate_fakes import synthetic_case
from specc.case.model import Structure
from specc.cli.app import app
from specc.cli.plan import cohort_table
from specc.pipeline import goal_columns, plan_cohort
from specc.protocol import load_protocol
from specc.report.compare_cohorts import STATUS_ORDER

# 24 goals, one of them failed by every plan (the organ's mean), as a head-and-neck protocol has.
GOALS = (
    [f"Target: D{percent}% >= {percent / 2:g} Gy" for percent in range(40, 100, 5)]
    + [f"Organ: D{percent}% <= {70 - percent / 2:g} Gy" for percent in range(10, 80, 10)] + ["Organ: Mean <= 1 Gy"]
    + ["Body: Max <= 100 Gy", "Body: Mean <= 50 Gy", "Body: D2% <= 90 Gy", "Body: D50% <= 80 Gy"]
)
# Hard: a case whose organ lies in its target cannot meet both (infeasible).
TERMS = ["{kind: min_dose, structure: Target, dose: 60 Gy}", "{kind: max_dose, structure: Organ, dose: 59 Gy}",
         "{kind: quadratic_overdose, structure: Body, dose: 0 Gy, weight: 1}"]
runner = CliRunner()


def _protocol(path: Path, goals: list[str]) -> Path:
    by_structure: dict[str, list[str]] = {}
    for goal in goals:
        structure, text = goal.split(": ", 1)
        by_structure.setdefault(structure, []).append(text)
    lines = ["specc: 1", "name: Many goals", "site: test", "version: 1.0.0",
             "structures: {Target: {role: target}, Organ: {role: oar}, Body: {role: other}}",
             "prescription: {fractions: 30, levels: [{target: Target, dose: 60 Gy}]}", "goals:"]
    lines += [f"  {structure}: {json.dumps(texts)}" for structure, texts in by_structure.items()]
    lines += ["optimization:", "  terms:", *(f"    - {term}" for term in TERMS)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def cases(tmp_path_factory) -> list[Path]:
    """A case that plans, one that is infeasible (its organ is its target) and one the protocol cannot compile."""
    folder = tmp_path_factory.mktemp("cases")
    good = synthetic_case()
    in_target = Structure(name="Organ", mask=good.structures["Target"].mask)
    files = [folder / "good.h5", folder / "conflict.h5", folder / "no-organ.h5"]
    good.save(files[0])
    dataclasses.replace(good, case_id="conflict", structures={**good.structures, "Organ": in_target}).save(files[1])
    dataclasses.replace(synthetic_case(oar_name="Rectum_wall"), case_id="no organ").save(files[2])
    return files


def _table(output: str) -> tuple[list[str], dict[str, list[str]]]:
    """The summary table as printed (from its title to the run's last line), and each case's cells, a cell
    folded onto more lines joined again with spaces."""
    lines = output.splitlines()
    start = next(index for index, line in enumerate(lines) if "cohort of 3" in line)
    end = next(index for index, line in enumerate(lines) if "cases planned; wrote" in line)
    rows: dict[str, list[list[str]]] = {}
    case = None
    for line in lines[start:end]:
        if not line.startswith("│"):
            continue
        cells = [cell.strip() for cell in line.split("│")[1:-1]]
        case = cells[0] or case
        rows.setdefault(case, []).append(cells)
    joined = {case: [" ".join(filter(None, parts)) for parts in zip(*folded)] for case, folded in rows.items()}
    return lines[start:end], joined


def test_at_80_columns_each_case_shows_its_status_goal_counts_and_failed_goals(tmp_path: Path, cases) -> None:
    protocol, out = _protocol(tmp_path / "many.yaml", GOALS), tmp_path / "out"
    # CliRunner's output is not a terminal: what a log file gets, at the width a terminal of 80 columns has
    result = runner.invoke(app, ["cohort", str(protocol), *map(str, cases), "--out", str(out), "-q"],
                           env={"COLUMNS": "80"})
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), (result.output, result.exception)
    table, rows = _table(result.output)
    shown = "\n".join(table)
    assert max(len(line) for line in table) <= 80, shown
    assert [cell.strip() for cell in table[2].split("┃")[1:-1]] == ["case", "status", "goals", "failed goals"], shown
    record = json.loads((out / "synthetic" / "plan.json").read_text(encoding="utf-8"))
    statuses = [goal["status"] for goal in record["goals"]]
    assert "fail" in statuses and len(statuses) == 24  # the organ's mean: a failed goal to name
    counts = ", ".join(f"{statuses.count(status)} {status}" for status in STATUS_ORDER if status in statuses)
    failed = "; ".join(f"{goal['structure']}: {goal['text']}" for goal in record["goals"] if goal["status"] == "fail")
    assert rows == {
        "synthetic": ["synthetic", "optimal", counts, failed],
        "conflict": ["conflict", "infeasible", "-", "-"],
        "no organ (no_organ)": ["no organ (no_organ)", "error", "-", "-"],
    }, shown
    assert "each goal's value: cohort.csv and cohort.html" in " ".join(shown.split())


def test_the_per_goal_table_is_kept_where_it_fits(tmp_path: Path, cases) -> None:
    few = _protocol(tmp_path / "few.yaml", ["Target: D95% >= 47.5 Gy", "Organ: Mean <= 1 Gy"])
    outcome = plan_cohort(load_protocol(few), cases[:1], tmp_path / "out")
    assert [column.header for column in cohort_table(outcome, 80).columns] == [
        "case", "status", "Target: D95% >= 47.5 Gy [Gy]", "Organ: Mean <= 1 Gy [Gy]"]
    many = plan_cohort(load_protocol(_protocol(tmp_path / "many.yaml", GOALS)), cases[:1], tmp_path / "out-many")
    assert [column.header for column in cohort_table(many, 80).columns] == ["case", "status", "goals", "failed goals"]
    assert len(cohort_table(many, 2000).columns) == 2 + 24  # a terminal wide enough: every goal's value


# Audit r2 F5: a DICOM UID as case id, 100 characters, wider than an 80-column terminal.
UID = "1.2.826.0.1.3680043.8.498." + "".join(str(digit % 10) for digit in range(74))
FEW = ["Target: D95% >= 47.5 Gy", "Organ: Mean <= 1 Gy"]


def _blocks(output: str) -> tuple[list[str], str, str]:
    """The summary as printed (its title to the run's last line), its one case's name with its folded lines
    joined again, and the line under the name (status, counts, failed goals, folded lines joined)."""
    lines = output.splitlines()
    start = next(index for index, line in enumerate(lines) if "cohort of 1" in line)
    end = next(index for index, line in enumerate(lines) if "cases planned; wrote" in line)
    inside = [line.strip("│ ") for line in lines[start:end] if line.startswith("│")]
    said = next(index for index, line in enumerate(inside) if line.startswith("status "))
    return lines[start:end], "".join(inside[:said]), " ".join(inside[said:])


@pytest.mark.parametrize("goals", [FEW, GOALS], ids=["2 goals", "24 goals"])
def test_a_case_name_wider_than_80_columns_is_folded_whole_and_its_status_still_shown(
    tmp_path: Path, cases, goals: list[str]
) -> None:
    """r2 F5: a 90-character name hid every column but the case, itself cut at the 80th column."""
    case = tmp_path / "uid.h5"
    dataclasses.replace(synthetic_case(), case_id=UID).save(case)
    protocol, out = _protocol(tmp_path / "p.yaml", goals), tmp_path / "out"
    result = runner.invoke(app, ["cohort", str(protocol), str(case), "--out", str(out), "-q"], env={"COLUMNS": "80"})
    assert result.exit_code == 0 and len(UID) == 100, (result.output, result.exception)
    shown, name, said = _blocks(result.output)
    assert max(len(line) for line in shown) <= 80, "\n".join(shown)
    assert name == UID, "\n".join(shown)
    record = json.loads((out / UID / "plan.json").read_text(encoding="utf-8"))
    statuses = [goal["status"] for goal in record["goals"]]
    counts = ", ".join(f"{statuses.count(status)} {status}" for status in STATUS_ORDER if status in statuses)
    failed = "; ".join(f"{goal['structure']}: {goal['text']}" for goal in record["goals"] if goal["status"] == "fail")
    assert "fail" in statuses and said == f"status optimal, {counts}; failed: {failed}", "\n".join(shown)
    caption = " ".join(" ".join(shown).split())
    assert (f"each goal's value: cohort.csv and cohort.html (neither a column for each of the {len(goals)} goals nor "
            "the goals counted per case fit in 80 columns beside the longest case name, 100 characters)") in caption


def test_the_caption_blames_the_case_name_where_the_goals_alone_would_fit(tmp_path: Path) -> None:
    """r2 F5: the caption said 'a column for each of the 2 goals does not fit' where the case name was what did
    not. At each width: the widest table that fits, the case name whole, no line wider than the width."""
    case = tmp_path / "uid.h5"
    dataclasses.replace(synthetic_case(), case_id=UID).save(case)
    outcome = plan_cohort(load_protocol(_protocol(tmp_path / "p.yaml", FEW)), [case], tmp_path / "out")
    counted, per_goal = ["case", "status", "goals", "failed goals"], ["case", "status", *goal_columns(outcome.protocol)]
    shown_as = []
    for width in range(70, 200):
        table = cohort_table(outcome, width)
        console = Console(width=width, record=True, file=io.StringIO())
        console.print(table)
        shown = console.export_text()
        assert max(len(line) for line in shown.splitlines()) <= width, shown
        headers = [column.header for column in table.columns]
        caption = " ".join(str(table.caption or "").split())
        if headers == counted:
            assert caption.endswith(f"(a column for each of the 2 goals does not fit in {width} columns beside the "
                                    "longest case name, 100 characters)"), caption
        elif headers == per_goal:
            assert not caption
        if headers != ["case"]:
            assert f"│ {UID} │" in shown, shown
        shown_as.append("per goal" if headers == per_goal else "counted" if headers == counted else "blocks")
    # narrow to wide: blocks, then the goals counted, then a column per goal, each at some width
    order = ["blocks", "counted", "per goal"]
    assert set(shown_as) == set(order) and shown_as == sorted(shown_as, key=order.index), shown_as
