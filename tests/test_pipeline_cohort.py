"""`plan_cohort`: one protocol over several case files, failures reported and the rest planned."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import pytest

from evaluate_fakes import protocol, synthetic_case
from specc.pipeline import COHORT_CSV, plan_cohort, write_cohort_csv
from specc.protocol import parse_protocol_text

TERMS = [
    "{kind: quadratic_underdose, structure: Target, dose: 60 Gy, weight: 10}",
    "{kind: quadratic_overdose, structure: Organ, dose: 10 Gy, weight: 1}",
]
GOALS = {"Target": ["D50% >= 50 Gy"], "Organ": ["Mean <= 1 Gy"]}  # the organ goal cannot be met


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cohort")
    files = {
        "first": folder / "first.h5",
        "no organ": folder / "no-organ.h5",
        "damaged": folder / "damaged.h5",
        "same id": folder / "same-id.h5",
    }
    dataclasses.replace(synthetic_case(), case_id="patient/1").save(files["first"])
    dataclasses.replace(synthetic_case(oar_name="Rectum_wall"), case_id="patient 2").save(files["no organ"])
    files["damaged"].write_bytes(b"not an HDF5 file")
    dataclasses.replace(synthetic_case(seed=1), case_id="patient/1").save(files["same id"])
    events: list[tuple[int, str, bool]] = []
    outcome = plan_cohort(
        protocol(GOALS, terms=TERMS),
        list(files.values()),
        folder / "out",
        case_progress=lambda index, total, case, entry: events.append((index, Path(case).name, entry is None)),
    )
    return files, folder / "out", outcome, events


def test_every_case_is_planned_into_its_own_folder_and_failures_do_not_stop_the_others(cohort) -> None:
    files, out, outcome, events = cohort
    first, no_organ, damaged, same_id = outcome.entries
    assert [entry.case_file for entry in outcome.entries] == [str(path) for path in files.values()]
    assert first.folder == out / "patient_1" and same_id.folder == out / "patient_1-2"  # safe and unique
    for entry in (first, same_id):
        assert entry.error is None and entry.outcome is not None and entry.outcome.succeeded
        assert sorted(p.name for p in entry.folder.iterdir()) == ["plan.json", "report.html", "result.h5"]
    assert no_organ.outcome is None and "structure 'Organ'" in no_organ.error and "Rectum_wall" in no_organ.error
    assert no_organ.case_id == "patient 2" and not no_organ.folder.exists()
    assert damaged.case_id is None and damaged.folder is None and "not a readable HDF5 file" in damaged.error
    assert [e for e in events if e[2]] == [(i, p.name, True) for i, p in enumerate(files.values(), start=1)]
    assert len(events) == 8


def test_cohort_csv_holds_each_cases_solver_status_and_goal_values_from_its_plan_json(cohort) -> None:
    files, out, outcome, _ = cohort
    assert outcome.summary_csv == out / COHORT_CSV
    with outcome.summary_csv.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["case_file"] for row in rows] == [str(path) for path in files.values()]
    assert [row["solver_status"] for row in rows] == ["optimal", "error", "error", "optimal"]
    assert [row["exit_code"] for row in rows] == ["0", "1", "1", "0"]
    for row, entry in zip(rows, outcome.entries):
        if entry.outcome is None:
            assert row["error"] == entry.error and row["folder"] == ""
            assert row["Target: D50% >= 50 Gy [Gy] value"] == row["Target: D50% >= 50 Gy [Gy] status"] == ""
            continue
        record = json.loads((entry.folder / "plan.json").read_text())
        assert row["folder"] == str(entry.folder) and row["case_id"] == record["case"]["case_id"] == "patient/1"
        assert (row["case_sha256"], row["protocol_sha256"]) == (record["case"]["sha256"], record["protocol"]["sha256"])
        for goal in record["goals"]:
            column = f"{goal['structure']}: {goal['text']} [{goal['unit']}]"
            assert float(row[f"{column} value"]) == pytest.approx(goal["value"], abs=5e-5)
            assert row[f"{column} status"] == goal["status"]
    assert [row["Organ: Mean <= 1 Gy [Gy] status"] for row in rows] == ["fail", "", "", "fail"]
    assert rows[0]["case_sha256"] != rows[3]["case_sha256"]  # one case id, two cases: told apart
    assert {row["protocol_sha256"] for row in rows} == {outcome.protocol.source.sha256}  # also where no plan was made


def test_the_cohort_exit_code_is_its_worst_case(cohort) -> None:
    _, _, outcome, _ = cohort
    assert [entry.exit_code(strict=True) for entry in outcome.entries] == [2, 1, 1, 2]
    assert outcome.exit_code() == 1 and outcome.exit_code(strict=True) == 1  # no plan outranks a failed goal
    planned = dataclasses.replace(outcome, entries=[outcome.entries[0], outcome.entries[3]])
    assert planned.exit_code() == 0 and planned.exit_code(strict=True) == 2


def test_with_a_robustness_section_each_robust_goal_gets_its_worst_value_and_status(tmp_path: Path) -> None:
    case_file = tmp_path / "case.h5"
    synthetic_case().save(case_file)
    robust = protocol(GOALS, terms=TERMS, robustness="{setup_error: 5 mm}")  # the target checked by default
    outcome = plan_cohort(robust, [case_file], tmp_path / "out")
    with outcome.summary_csv.open(newline="") as handle:
        (row,) = list(csv.DictReader(handle))
    worst = json.loads((outcome.entries[0].folder / "plan.json").read_text())["robustness"]["goals"]
    assert [goal["text"] for goal in worst] == ["D50% >= 50 Gy"]  # the target's goal, not the organ's
    assert float(row["Target: D50% >= 50 Gy [Gy] worst value"]) == pytest.approx(worst[0]["worst"], abs=5e-5)
    assert row["Target: D50% >= 50 Gy [Gy] worst status"] == worst[0]["status"]
    assert "Organ: Mean <= 1 Gy [Gy] worst value" not in row


def test_cohort_html_counts_each_goal_and_links_every_case_to_its_report(cohort) -> None:
    _, out, outcome, _ = cohort
    assert outcome.pages == [out / "cohort.html"]
    html = (out / "cohort.html").read_text()
    # One patient id planned twice (two folders): both rows, each linked to its own report.
    assert html.count('class="cohort-case"') == 2
    assert 'href="patient_1/report.html"' in html and 'href="patient_1-2/report.html"' in html
    organ = next(row for row in html.split('<tr class="cohort-goal">')[1:] if "Mean &lt;= 1 Gy" in row)
    assert '<span class="status status-fail">FAIL</span> 2' in organ
    assert "2 cases without a plan" in html and "not a readable HDF5 file" in html
    assert "<title>Cohort: Test protocol v1.0.0: 4 cases</title>" in html  # every case of the run, planned or not


def test_each_rows_exit_code_is_what_specc_plan_with_the_same_flags_returns(cohort, tmp_path: Path) -> None:
    _, _, outcome, _ = cohort
    summary = write_cohort_csv(tmp_path / COHORT_CSV, outcome.protocol, outcome.entries, strict=True)
    with summary.open(newline="") as handle:
        assert [row["exit_code"] for row in csv.DictReader(handle)] == ["2", "1", "1", "2"]


def test_goal_columns_carry_the_unit_of_the_value(tmp_path: Path) -> None:
    text = (
        "specc: 1\nname: t\nsite: t\nversion: 1.0.0\n"
        "structures: {Target: {role: target}, Organ: {role: oar, alpha_beta: 3 Gy}}\n"
        "prescription: {fractions: 30, levels: [{target: Target, dose: 60 Gy}]}\n"
        "goals:\n"
        "  Target: ['D50% >= 50 Gy', 'V95%[cc] >= 10']\n"
        "  Organ:\n    - Max <= 40 Gy (EQD2)\n    - Max <= 40 Gy\n"
    )
    summary = write_cohort_csv(tmp_path / COHORT_CSV, parse_protocol_text(text, "units.yaml"), [])
    with summary.open(newline="") as handle:
        header = next(csv.reader(handle))
    assert [name.removesuffix(" value") for name in header if name.endswith(" value")] == [
        "Target: D50% >= 50 Gy [Gy]", "Target: V95%[cc] >= 10 [cc]",
        "Organ: Max <= 40 Gy (EQD2) [Gy EQD2]", "Organ: Max <= 40 Gy [Gy]",
    ]


def test_a_case_listed_twice_is_said_and_counted_once_on_the_page(tmp_path: Path) -> None:
    case_file, other = tmp_path / "case.h5", tmp_path / "other.h5"
    synthetic_case().save(case_file)
    synthetic_case(seed=1).save(other)
    outcome = plan_cohort(protocol(GOALS, terms=TERMS), [case_file, other, case_file], tmp_path / "out")
    assert [entry.same_as for entry in outcome.entries] == [None, None, str(case_file)]
    with outcome.summary_csv.open(newline="") as handle:
        assert len(list(csv.DictReader(handle))) == 3  # every case file listed keeps its row
    html = (tmp_path / "out" / "cohort.html").read_text()
    organ = next(row for row in html.split('<tr class="cohort-goal">')[1:] if "Mean &lt;= 1 Gy" in row)
    assert '<span class="status status-fail">FAIL</span> 2' in organ  # two cases, not three
    assert html.count('class="cohort-case"') == 3 and "(same case as synthetic: not counted)" in html
    assert "synthetic-3 is the same case as synthetic" in html and "counted once" in html


def test_a_case_that_fails_leaves_no_earlier_plan_in_its_folder_and_the_page_names_folders_not_of_this_run(
    tmp_path: Path,
) -> None:
    no_organ, out = tmp_path / "no-organ.h5", tmp_path / "out"
    dataclasses.replace(synthetic_case(oar_name="Rectum_wall"), case_id="patient 2").save(no_organ)
    # an earlier run's: this case's folder, a case since dropped, and what a run killed while it wrote a case's
    # files leaves (its staging folder, no plan of an earlier run)
    for folder in (out / "patient_2", out / "dropped", out / ".patient_1.0a1b2c3d.partial"):
        folder.mkdir(parents=True)
        for name in ("plan.json", "report.html", "result.h5", "mine.txt"):
            (folder / name).write_text("earlier", encoding="utf-8")
    (entry,) = plan_cohort(protocol(GOALS, terms=TERMS), [no_organ], out).entries
    assert entry.error is not None and entry.folder == out / "patient_2"
    assert sorted(path.name for path in entry.removed) == ["plan.json", "report.html", "result.h5"]
    assert [path.name for path in (out / "patient_2").iterdir()] == ["mine.txt"]
    assert len(list((out / "dropped").iterdir())) == 4  # left as it is: not this run's case
    html = (out / "cohort.html").read_text()
    assert "dropped: plan folders beside cohort.csv that it does not list" in html and "not part of this run" in html
    assert ".partial" not in html
    # No case planned: the page still names the protocol read, and its SHA-256.
    assert "<title>Cohort: Test protocol v1.0.0: 1 case</title>" in html  # one case, in the singular
    with (out / COHORT_CSV).open(newline="") as handle:
        assert next(csv.DictReader(handle))["protocol_sha256"] in html


def test_ctrl_c_during_a_case_removes_the_earlier_runs_cohort_files_and_names_one_it_cannot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C during the first case removes an earlier run's cohort.csv and pages (they would read as this run's);
    one that cannot be removed was a PermissionError raised out of the clean-up in place of the interruption. It
    is now named in `CohortInterrupted.kept`, as when the run stops before its first case (`remove_earlier_cohort`)."""
    import errno

    from specc.pipeline import CohortInterrupted, run_cohort

    out = tmp_path / "out"
    out.mkdir()
    for name in (COHORT_CSV, "cohort.html", "cohort.pdf"):
        (out / name).write_text("earlier run", encoding="utf-8")
    unlink = Path.unlink

    def refused(self: Path, *args: object, **kwargs: object) -> None:
        if self.name == "cohort.html":
            raise PermissionError(errno.EACCES, "Permission denied")
        unlink(self, *args, **kwargs)

    def stopped(item: Path, out: Path, taken: set[str]):
        raise KeyboardInterrupt

    monkeypatch.setattr(Path, "unlink", refused)
    with pytest.raises(CohortInterrupted) as raised:
        run_cohort(protocol(GOALS, terms=TERMS), ["a.h5"], out, stopped)
    assert raised.value.removed == [out / COHORT_CSV, out / "cohort.pdf"] and raised.value.summary is None
    assert raised.value.kept == [
        f"could not remove {out / 'cohort.html'} (Permission denied): an earlier run's, not this run's"]
    assert [path.name for path in out.iterdir()] == ["cohort.html"]
