"""cohort.html marks a value judged on part of its organ (plan.json `partial_structure`: the case contours only some
of the organ's `parts`), so that it is not read as a whole organ's beside the other cases (audit c3 F4)."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

from evaluate_fakes import protocol, synthetic_case
from specc.pipeline import COHORT_CSV, plan_cohort
from specc.report.cohort_page import PARTIAL_MARK, write_cohort_page

TERMS = ["{kind: quadratic_underdose, structure: Target, dose: 60 Gy, weight: 10}",
         "{kind: quadratic_overdose, structure: Organ, dose: 10 Gy, weight: 1}"]
GOALS = {"Target": ["D95% >= 54 Gy"], "Organ": ["Mean <= 5 Gy"]}
JUDGED_ON = "Organ: judged on the case's 'Organ_L' alone: its part 'Organ_R' is not in the case"


def _on_one_part(plan_json: Path) -> None:
    """The plan's Organ goal as the evaluate stage records one on a structure read from one of its two parts."""
    record = json.loads(plan_json.read_text())
    for goal in record["goals"]:
        if goal["structure"] == "Organ":
            goal.update(note=JUDGED_ON, partial_structure=True)
    plan_json.write_text(json.dumps(record))


def test_a_value_judged_on_part_of_its_organ_is_marked_counted_and_explained(tmp_path: Path) -> None:
    files = []
    for seed in range(3):
        path = tmp_path / f"case{seed}.h5"
        dataclasses.replace(synthetic_case(seed=seed), case_id=f"p{seed}").save(path)
        files.append(path)
    plan_protocol = protocol(GOALS, terms=TERMS)
    plan_cohort(plan_protocol, files, tmp_path / "out")
    write_cohort_page(tmp_path / "out" / COHORT_CSV, plan_protocol)
    whole = (tmp_path / "out" / "cohort.html").read_text()
    assert PARTIAL_MARK not in whole and "partial-footnote" not in whole

    _on_one_part(tmp_path / "out" / "p1" / "plan.json")
    write_cohort_page(tmp_path / "out" / COHORT_CSV, plan_protocol)
    page = (tmp_path / "out" / "cohort.html").read_text()
    cases = {match.group(1): match.group(2) for match in
             re.finditer(r'<tr class="cohort-case">\s*<td><a href="(p\d)/report.html">.*?</td>(.*?)</tr>', page, re.S)}
    assert sorted(cases) == ["p0", "p1", "p2"]
    marked = {case: row.count('class="partial-mark"') for case, row in cases.items()}
    assert marked == {"p0": 0, "p1": 1, "p2": 0}  # the Organ value of p1 only, not its target's
    goal_rows = re.findall(r'<tr class="cohort-goal">(.*?)</tr>', page, re.S)
    assert [row.count(f"{PARTIAL_MARK} 1 case judged on part of the organ") for row in goal_rows] == [0, 1]
    assert 'id="partial-footnote"' in page and "counted in the goal's median" in page
