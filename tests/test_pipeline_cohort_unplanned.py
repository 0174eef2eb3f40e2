"""A cohort's cases without a plan: cohort.csv and cohort.html say what stopped each and which data it was.

Audit c3 F5: cohort.html listed an infeasible case by its message alone, which begins with the
solver's fallback ("SPECC-LBFGS did not solve this program ..."): the word "infeasible" was nowhere on
the page. F7: a case that was read but got no plan (infeasible, a compile error) had no case SHA-256,
so a re-run of the study could not show that it was the same data.
"""

from __future__ import annotations

import csv
import dataclasses
import html
import json
from pathlib import Path

import pytest

from evaluate_fakes import protocol, synthetic_case
from specc.case import Case
from specc.case.model import Structure
from specc.pipeline import plan_cohort

# Hard limits a case whose organ lies in its target cannot meet both of (infeasible).
TERMS = ["{kind: min_dose, structure: Target, dose: 60 Gy}", "{kind: max_dose, structure: Organ, dose: 59 Gy}",
         "{kind: quadratic_overdose, structure: Body, dose: 0 Gy, weight: 1}"]
GOALS = {"Target": ["D95% >= 47.5 Gy"], "Organ": ["Mean <= 1 Gy"]}


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    folder = tmp_path_factory.mktemp("unplanned")
    good = synthetic_case()
    in_target = Structure(name="Organ", mask=good.structures["Target"].mask)
    files = {name: folder / f"{name}.h5" for name in ("good", "conflict", "no-organ", "damaged")}
    good.save(files["good"])
    dataclasses.replace(good, case_id="conflict", structures={**good.structures, "Organ": in_target}).save(
        files["conflict"])
    dataclasses.replace(synthetic_case(oar_name="Rectum_wall"), case_id="no organ").save(files["no-organ"])
    files["damaged"].write_bytes(b"not an HDF5 file")
    outcome = plan_cohort(protocol(GOALS, terms=TERMS), list(files.values()), folder / "out")
    with outcome.summary_csv.open(newline="", encoding="utf-8") as handle:
        rows = {Path(row["case_file"]).stem: row for row in csv.DictReader(handle)}
    return files, outcome, rows


def test_every_case_that_was_read_has_its_sha256_in_cohort_csv(cohort) -> None:
    files, outcome, rows = cohort
    assert [rows[name]["solver_status"] for name in files] == ["optimal", "infeasible", "error", "error"]
    planned = json.loads((outcome.entries[0].folder / "plan.json").read_text(encoding="utf-8"))
    assert rows["good"]["case_sha256"] == planned["case"]["sha256"]
    for name in ("conflict", "no-organ"):  # read, then no plan: the data is still known
        assert rows[name]["folder"] == "" and rows[name]["case_sha256"] == Case.load(files[name]).content_hash()
    assert rows["damaged"]["case_sha256"] == ""  # the file could not be read: no content to hash


def test_cohort_html_leads_each_case_without_a_plan_with_its_status_and_sha256(cohort) -> None:
    files, outcome, rows = cohort
    page = html.unescape(outcome.pages[0].read_text(encoding="utf-8"))
    for name, case_id in (("conflict", "conflict"), ("no-organ", "no organ")):
        said = f"{case_id}: {rows[name]['solver_status']} (case SHA-256 {rows[name]['case_sha256'][:12]}): "
        assert said + rows[name]["error"] in page
    assert f"{files['damaged']}: error: {rows['damaged']['error']}" in page
    assert "conflict: infeasible (case SHA-256" in page
