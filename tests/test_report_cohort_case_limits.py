"""A goal whose limit is a table by a structure's volume is judged on each case by its own limit (audit s18/b2 F1):
cohort.csv, cohort.html and `specc compare` give, beside each case's value, the limit it was judged by and where it
was read, and say that the goal's limit differs by case, so that a median or a difference is not read as one over
values judged alike."""

from __future__ import annotations

import csv
import dataclasses
import json
import re
from pathlib import Path

import numpy as np
from evaluate_fakes import synthetic_case

from specc.case.model import Structure
from specc.evaluate import GoalRecord
from specc.pipeline import COHORT_CSV, plan_cohort
from specc.protocol import parse_protocol_text
from specc.report.cohort_page import write_cohort_page
from specc.report.compare import goal_rows, read_plans, write_comparison
from specc.report.compare_cohorts import cohort_goal_rows, read_cohort
from specc.report.limits import resolved_limits

PROTOCOL = """\
specc: 1
name: SBRT by volume
site: test
version: 1.0.0
structures:
  Target: {role: target}
  Organ: {role: oar}
prescription: {fractions: 3, levels: [{target: Target, dose: 54 Gy}]}
optimization:
  terms:
    - {kind: quadratic_underdose, structure: Target, dose: 54 Gy, weight: 10}
    - {kind: quadratic_overdose, structure: Organ, dose: 10 Gy, weight: 1}
goals:
  Target:
    - "D95% >= 50 Gy"
  Organ:
    - metric: Max
      "<=": {by_volume_of: Target, volume_cc: [1.8, 13.2, 22.0], limit: [50%, 50%, 54%], variation: [57%, 58%, 63%]}
"""
TABLE_COLUMN = "Organ: Max <= 50%-54% by Target volume, 1.8-22 cc (variation 57%-63%) [Gy]"


def _cases(tmp_path: Path) -> list[Path]:
    """Two cases whose Targets differ in volume (the second trimmed of its top), so the table gives each its limit."""
    files = []
    for seed, trimmed in ((0, False), (1, True)):
        case = synthetic_case(seed=seed)
        if trimmed:
            target = case.structures["Target"]
            _, _, z = np.meshgrid(*case.grid.axes_mm(), indexing="ij")
            structures = {**case.structures, "Target": Structure(name="Target", mask=target.mask & (z < 5.0),
                                                                 color=target.color)}
            case = dataclasses.replace(case, structures=structures)
        path = tmp_path / f"p{seed}.h5"
        dataclasses.replace(case, case_id=f"p{seed}").save(path)
        files.append(path)
    return files


def test_each_case_limit_is_in_the_cohort_csv_page_and_comparison(tmp_path: Path) -> None:
    protocol = parse_protocol_text(PROTOCOL, "site/sbrt.yaml")
    plan_cohort(protocol, _cases(tmp_path), tmp_path / "out")
    summary = tmp_path / "out" / COHORT_CSV
    records = {case: json.loads((tmp_path / "out" / case / "plan.json").read_text())["goals"][1] for case in ("p0", "p1")}
    assert records["p0"]["threshold"] != records["p1"]["threshold"]  # two volumes, two limits

    rows = {row["case_id"]: row for row in csv.DictReader(summary.open(newline="", encoding="utf-8"))}
    for case, goal in records.items():
        assert float(rows[case][f"{TABLE_COLUMN} limit"]) == goal["threshold"]
        assert float(rows[case][f"{TABLE_COLUMN} variation"]) == goal["variation"]
        assert rows[case][f"{TABLE_COLUMN} limit source"] == goal["limit_source"]
        assert goal["limit_source"].startswith("from the table by Target volume at ")
    assert not any(column.startswith("Target: D95% >= 50 Gy") and column.endswith("limit")
                   for column in rows["p0"])  # a fixed limit is in the goal's text: no column of its own

    write_cohort_page(summary, protocol)
    page = (tmp_path / "out" / "cohort.html").read_text(encoding="utf-8")
    cases = dict(re.findall(r'<tr class="cohort-case">\s*<td><a href="(p\d)/report.html">.*?</td>(.*?)</tr>', page, re.S))
    expected = {case: resolved_limits(GoalRecord.model_validate(goal)) for case, goal in records.items()}
    for case, goal in records.items():  # "27.93 Gy, variation 32.49 Gy, from the table by Target volume at ..."
        limit, variation = expected[case].split(" Gy, variation ")[0], expected[case].split(" Gy, variation ")[1]
        assert abs(float(limit) - goal["threshold"]) <= 0.005  # shown with two decimals (or more where needed)
        assert abs(float(variation.split(" Gy, ")[0]) - goal["variation"]) <= 0.005
        assert expected[case].endswith(goal["limit_source"])
        assert re.findall(r'class="muted case-limit">limit (.*?)</span>', cases[case]) == [expected[case]]
    goal_rows_html = re.findall(r'<tr class="cohort-goal">(.*?)</tr>', page, re.S)
    assert ["limit-per-case" in row for row in goal_rows_html] == [False, True]
    assert "it differs by case" in goal_rows_html[1]
    assert [row.limit_per_case for row in cohort_goal_rows([read_cohort(summary)])] == [False, True]

    plans = read_plans([tmp_path / "out" / "p0", tmp_path / "out" / "p1"])
    table_row = goal_rows(plans)[1]
    assert table_row.limits_differ and not goal_rows(plans)[0].limits_differ
    assert [m.limit for m in table_row.measured] == [expected["p0"], expected["p1"]]
    write_comparison(tmp_path / "cmp", plans)
    compared = (tmp_path / "cmp" / "compare.html").read_text(encoding="utf-8")
    shown = re.findall(r'class="muted plan-limit">limit (.*?)</span>', compared)
    assert shown == [m.limit for m in table_row.measured]


def test_the_terminal_comparison_shows_each_plans_limit_where_they_differ(tmp_path: Path) -> None:
    """`specc compare` in the terminal gave the two values of the table goal without the limits they were judged by."""
    from typer.testing import CliRunner

    import specc.cli.compare  # noqa: F401  (registers the command)
    from specc.cli.app import app

    plan_cohort(parse_protocol_text(PROTOCOL, "site/sbrt.yaml"), _cases(tmp_path), tmp_path / "out")
    result = CliRunner().invoke(app, ["compare", str(tmp_path / "out" / "p0"), str(tmp_path / "out" / "p1"), "--out",
                                      str(tmp_path / "cmp")])
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    limits = [m.limit for m in goal_rows(read_plans([tmp_path / "out" / "p0", tmp_path / "out" / "p1"]))[1].measured]
    for limit in limits:  # the first words of each (the table may wrap the rest)
        assert f"limit {' '.join(limit.split()[:2])}" in said, said
