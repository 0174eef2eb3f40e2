"""`specc compare`: plans side by side, read back from the plan.json each plan wrote."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from datetime import datetime, timezone
from pathlib import Path

import pytest
from pypdf import PdfReader
from typer.testing import CliRunner

from evaluate_fakes import protocol, synthetic_case
from specc.cli.app import app
from specc.pipeline import plan
from specc.protocol import load_protocol
from specc.report.compare import (
    CompareError, Notice, comparison_figure, goal_rows, read_plans, render_comparison, warnings, write_comparison,
)
from specc.report.identity import record_json
from test_report_pdf import pages, says

TERMS = [
    "{kind: quadratic_underdose, structure: Target, dose: 60 Gy, weight: 10}",
    "{kind: quadratic_overdose, structure: Organ, dose: 10 Gy, weight: 1}",
]


@pytest.fixture(scope="module")
def plans(tmp_path_factory) -> dict[str, Path]:
    """Two plans of one case (the second, of the protocol's next version, with a heavier organ penalty, an
    extra goal and a setup-error check), and one of another case and prescription (the first's version)."""
    folder = tmp_path_factory.mktemp("plans")
    case = synthetic_case()
    goals = {"Target": ["D95% >= 54 Gy"], "Organ": ["Mean <= 5 Gy"]}
    plan(protocol(goals, terms=TERMS), case, folder / "first")
    heavier = [TERMS[0], TERMS[1].replace("weight: 1", "weight: 20")]
    more = {**goals, "Organ": ["Mean <= 5 Gy", "Max <= 40 Gy"]}
    revised = protocol(more, terms=heavier, robustness="{setup_error: 5 mm}").model_copy(update={"version": "1.1.0"})
    plan(revised, case, folder / "second")
    other_case = dataclasses.replace(synthetic_case(seed=3), case_id="another")
    plan(protocol(goals, terms=TERMS, fractions=25), other_case, folder / "other")
    return {name: folder / name for name in ("first", "second", "other")}


def _record(folder: Path) -> dict:
    return json.loads((folder / "plan.json").read_text())


def _plan_folder(folder: Path, record: dict) -> Path:
    """A plan folder holding `record` as its plan.json (a plan changed for a test)."""
    folder.mkdir()
    (folder / "plan.json").write_text(json.dumps(record))
    return folder


def test_goals_are_matched_by_structure_and_text_and_a_missing_goal_is_never_a_value(plans) -> None:
    compared = read_plans([plans["first"], plans["second"] / "plan.json"])
    assert [plan.label for plan in compared] == ["first", "second"]
    rows = {(row.structure, row.text, row.scope): row for row in goal_rows(compared)}
    first, second = _record(plans["first"]), _record(plans["second"])
    mean = rows[("Organ", "Mean <= 5 Gy", "nominal")]
    assert [m.value for m in mean.measured] == [first["goals"][1]["value"], second["goals"][1]["value"]]
    assert mean.difference() == pytest.approx(second["goals"][1]["value"] - first["goals"][1]["value"])
    assert mean.difference() < 0  # the heavier organ penalty lowers its mean
    highest = rows[("Organ", "Max <= 40 Gy", "nominal")]
    assert highest.measured[0] is None and highest.difference() is None  # the first plan has no such goal
    worst = rows[("Target", "D95% >= 54 Gy", "worst")]
    assert worst.measured[0] is None and worst.measured[1].value == second["robustness"]["goals"][0]["worst"]
    assert warnings(compared) == []  # same case, same prescription, both converged


def test_a_goal_whose_threshold_or_priority_was_tuned_is_one_row_with_both_texts_and_the_difference(
    plans, tmp_path: Path
) -> None:
    """Goals paired as `specc diff` pairs them (structure, metric, side), not by text (audit s18/a4 F3): the
    raised coverage goal and the tightened, demoted organ goal are each one row showing both versions and the
    change in value; a pairing that would be a guess (one goal before, two of its kind after) stays unpaired."""
    revised = {"Target": ["D95% >= 55 Gy"], "Organ": ["Mean <= 4 Gy (priority 2)"]}
    plan(protocol(revised, terms=TERMS), synthetic_case(), tmp_path / "tuned")
    compared = read_plans([plans["first"], tmp_path / "tuned"])
    first, tuned = _record(plans["first"]), _record(tmp_path / "tuned")
    rows = {(row.structure, row.scope): row for row in goal_rows(compared)}
    assert len(goal_rows(compared)) == 2
    coverage, mean = rows[("Target", "nominal")], rows[("Organ", "nominal")]
    assert coverage.text == "D95% >= 54 Gy → D95% >= 55 Gy"
    assert mean.text == "Mean <= 5 Gy → Mean <= 4 Gy (priority 2)"
    for row, index in ((coverage, 0), (mean, 1)):
        assert row.difference() == pytest.approx(tuned["goals"][index]["value"] - first["goals"][index]["value"])
    page = render_comparison(compared)
    assert "D95% &gt;= 54 Gy → D95% &gt;= 55 Gy" in page and ">n/a<" not in page

    record = dict(tuned, goals=[tuned["goals"][1], dict(tuned["goals"][1], text="Mean <= 3 Gy", threshold=3.0)])
    two = _plan_folder(tmp_path / "two", record)
    organ = [row for row in goal_rows(read_plans([plans["first"], two])) if row.structure == "Organ"]
    assert [row.texts for row in organ] == [
        ["Mean <= 5 Gy", None], [None, "Mean <= 4 Gy (priority 2)"], [None, "Mean <= 3 Gy"]
    ]
    assert all(row.difference() is None for row in organ)


def test_what_would_mislead_is_said_first(plans, tmp_path: Path) -> None:
    record = _record(plans["second"])
    record.update(converged=False)
    record["solver"]["status"] = "time_limit"
    unconverged = _plan_folder(tmp_path / "unconverged", record)
    found = [notice.text for notice in warnings(read_plans([plans["first"], plans["other"], unconverged]))]
    assert "different cases" in found[0] and "another" in found[0]
    assert found[1].startswith("the plans' protocols differ (first: Test protocol v1.0.0")  # other: 25 fractions
    assert "prescriptions differ" in found[2] and "in 25" in found[2]
    assert found[3].startswith("unconverged: its solver ended time_limit (SPECC-LBFGS); not a usable plan")


def test_a_protocol_changed_without_a_new_version_is_warned_of(plans, tmp_path: Path) -> None:
    """Two plans "of v1.0.0" made with different protocols, as the cohort comparison and `specc diff` say
    (audit h7 F3); a new version is no warning."""
    record = _record(plans["first"])
    first_sha256, first_content = record["protocol"]["sha256"], record["protocol"]["content_sha256"]
    # a weight changed, the version left as it was: other bytes, other content
    record["protocol"].update(sha256="ab" * 32, content_sha256="cd" * 32)
    edited = _plan_folder(tmp_path / "edited", record)
    expected = (f"the plans' protocols differ (first: Test protocol v1.0.0 (SHA-256 {first_sha256[:12]}, content "
                f"SHA-256 {first_content[:12]}); edited: Test protocol v1.0.0 (SHA-256 abababababab, content SHA-256 "
                "cdcdcdcdcdcd)): the same name and version with different content, so one was changed without a new "
                "version")
    assert warnings(read_plans([plans["first"], edited])) == [Notice(expected)]  # a warning
    assert warnings(read_plans([plans["first"], plans["second"]])) == []  # v1.0.0 and v1.1.0
    result = CliRunner().invoke(app, ["compare", str(plans["first"]), str(edited), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert f"warning: {expected}" in " ".join(result.output.split())
    page = (tmp_path / "out" / "compare.html").read_text()
    assert 'id="warnings"' in page and "so one was changed without a new version" in page


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("one", "at least two plans"),
        ("missing", "missing: no such file"),
        ("not json", "not a specc plan record"),
        ("labels", "1 labels for 2 plans"),
    ],
)
def test_bad_input_is_a_clear_error_naming_the_file(plans, tmp_path: Path, setup: str, message: str) -> None:
    paths, labels = [plans["first"], plans["second"]], []
    if setup == "one":
        paths = paths[:1]
    elif setup == "missing":
        paths[1] = tmp_path / "missing"
    elif setup == "not json":
        broken = tmp_path / "broken.json"
        broken.write_text('{"format": 1, "goals": "no"}')
        paths[1] = broken
    else:
        labels = ["only one"]
    with pytest.raises(CompareError, match=message):
        read_plans(paths, labels)


def test_the_page_shows_each_plan_s_provenance_and_escapes_labels(plans, tmp_path: Path) -> None:
    compared = read_plans([plans["first"], plans["second"]], ["<b>margin</b>", "robust"])
    (page,) = write_comparison(tmp_path, compared)
    html = page.read_text()
    assert "<b>margin</b>" not in html and "&lt;b&gt;margin&lt;/b&gt;" in html
    assert html.count('class="compared-plan"') == 2 and html.count('class="compared-goal"') == 4
    assert _record(plans["second"])["protocol"]["sha256"][:12] in html
    assert "robust − &lt;b&gt;margin&lt;/b&gt;" in html  # the difference column of two plans
    assert "checked only" in html and 'id="warnings"' not in html


def test_the_command_prints_the_goals_and_writes_the_page(plans, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["compare", str(plans["first"]), str(plans["other"]), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "warning: the plans are of different cases" in result.output and "Mean <= 5 Gy" in result.output
    assert (tmp_path / "compare.html").exists()
    missing = CliRunner().invoke(app, ["compare", str(plans["first"]), str(tmp_path / "nowhere"), "--out", str(tmp_path)])
    assert missing.exit_code == 1 and "no such file" in missing.output and "Traceback" not in missing.output


def test_plans_in_folders_of_the_same_name_are_numbered(plans, tmp_path: Path) -> None:
    copies = []
    for place in ("a", "b"):
        folder = tmp_path / place / "plan"
        folder.mkdir(parents=True)
        (folder / "plan.json").write_text((plans["first"] / "plan.json").read_text())
        copies.append(folder)
    assert [plan.label for plan in read_plans([*copies, plans["second"]])] == ["plan (1)", "plan (2)", "second"]


def _unconverged_copy(plans: dict[str, Path], tmp_path: Path) -> Path:
    record = _record(plans["second"])
    record.update(converged=False)
    record["solver"]["status"] = "optimal_inaccurate"
    return _plan_folder(tmp_path / "stalled", record)


def test_an_unconverged_plan_is_labelled_in_the_figure_legend_and_table_heads(plans, tmp_path: Path) -> None:
    compared = read_plans([plans["first"], _unconverged_copy(plans, tmp_path)])
    legend = comparison_figure(compared).axes[0].get_legend()
    labels = [text.get_text() for text in legend.get_texts()]
    assert "first" in labels and "stalled (NOT CONVERGED)" in labels and "stalled" not in labels
    html = render_comparison(compared)
    dvh = html.split('<section id="dvh">')[1]
    assert 'stalled: mean / max <span class="status status-not_converged">NOT CONVERGED</span>' in dvh
    assert '<p class="running-unconverged">NOT CONVERGED: stalled</p>' in html
    assert "content: string(unconverged)" in html
    assert "NOT CONVERGED" not in render_comparison(read_plans([plans["first"], plans["second"]]))


def test_every_pdf_page_says_not_converged(plans, tmp_path: Path) -> None:
    compared = read_plans([plans["first"], _unconverged_copy(plans, tmp_path)])
    _, pdf = write_comparison(tmp_path / "out", compared, pdf=True)
    document = pages(pdf)
    assert len(document) >= 2  # goals on the first, the DVH figure and table after
    assert all(says(page.top, "NOT CONVERGED: stalled") for page in document), [page.top for page in document]


def test_goals_converted_with_different_ratios_are_warned_of(plans, tmp_path: Path) -> None:
    """Two plans' "Max <= 30 Gy (EQD2)" converted with alpha/beta 2 and 3 Gy: the difference is of the model."""
    folders = []
    for ratio in (2.0, 3.0):
        record = _record(plans["second"])
        goal = dict(record["goals"][0], text="Max <= 30 Gy (EQD2)", quantity="EQD2", alpha_beta_gy=ratio)
        record["goals"] = [goal]
        folders.append(_plan_folder(tmp_path / f"ab{ratio:g}", record))
    found = [notice.text for notice in warnings(read_plans(folders))]
    assert any(f"{goal['structure']} Max <= 30 Gy (EQD2): converted with alpha/beta 2, 3 Gy" in line for line in found)
    assert warnings(read_plans([folders[0], folders[0]])) == []


def test_one_case_id_over_other_case_data_on_another_grid_is_said_as_such(plans, tmp_path: Path) -> None:
    """Two plans of one case id whose case data differ (the case resampled onto 2 mm): not "different cases",
    and both evaluation grids are named, since a difference may be the grid's."""
    record = _record(plans["first"])
    record["case"].update(sha256="f" * 64, source="resampled", grid={**record["case"]["grid"], "spacing_mm": [2, 2, 2]})
    resampled = _plan_folder(tmp_path / "resampled", record)
    found = [notice.text for notice in warnings(read_plans([plans["first"], resampled]))]
    case = _record(plans["first"])["case"]
    assert found[0] == (
        f"the plans name the same case {case['case_id']!r} but hold different case data (first: the case "
        f"{case['case_id']} from {case['source']} ({case['sha256'][:12]}); resampled: the case {case['case_id']} from "
        "resampled (ffffffffffff)): each value is measured on its own case data"
    )
    shape = " × ".join(str(n) for n in case["grid"]["shape"])
    spacing = " × ".join(f"{s:g}" for s in case["grid"]["spacing_mm"])
    assert found[1].startswith(f"the plans are measured on different grids (first: {shape} voxels of {spacing} mm")
    assert f"resampled: {shape} voxels of 2 × 2 × 2 mm" in found[1] and "--measure-on" not in found[1]


EDITED_PROTOCOL = (
    "specc: 1\nname: Edited\nsite: t\nversion: 1.0.0\n"
    "structures: {Target: {role: target}, Organ: {role: oar}}\n"
    "prescription: {fractions: 30, levels: [{target: Target, dose: 60 Gy}]}\n"
    "goals:\n  Target: ['D95% >= 54 Gy']\n  Organ: ['Mean <= 5 Gy', 'Max <= 40 Gy']\n"
    "optimization:\n  terms:\n"
    "    - {kind: quadratic_underdose, structure: Target, dose: 60 Gy, weight: 10}\n"
    "    - {kind: quadratic_overdose, structure: Organ, dose: 10 Gy, weight: 1}\n"
)
# What `specc diff` finds no difference in: a comment, a goal's spelling (cGy, spaces, the default priority
# written out), two goals of one structure and the goals' structures in another order, the terms swapped.
REWRITTEN_PROTOCOL = (
    "# comment-only edit: a typo fixed in the header comment\n"
    "specc: 1\nname: Edited\nsite: t\nversion: 1.0.0\n"
    "structures: {Target: {role: target}, Organ: {role: oar}}\n"
    "prescription: {fractions: 30, levels: [{target: Target, dose: 6000 cGy}]}\n"
    "goals:\n  Organ: ['Max<=40Gy (priority 1)', 'Mean <= 500 cGy']\n  Target: ['D95% >= 54 Gy']\n"
    "optimization:\n  terms:\n"
    "    - {kind: quadratic_overdose, structure: Organ, dose: 10 Gy, weight: 1}\n"
    "    - {kind: quadratic_underdose, structure: Target, dose: 60 Gy, weight: 10}\n"
)


@pytest.fixture(scope="module")
def edits(tmp_path_factory) -> dict[str, Path]:
    """Plans of one protocol file as first written, rewritten (no difference to `specc diff`), and with a weight
    changed, all three v1.0.0 (audit s20/t1 F0)."""
    folder = tmp_path_factory.mktemp("edits")
    case = synthetic_case()
    texts = {"written": EDITED_PROTOCOL, "rewritten": REWRITTEN_PROTOCOL,
             "reweighted": EDITED_PROTOCOL.replace("weight: 1}", "weight: 3}")}
    for name, text in texts.items():
        (folder / f"{name}.yaml").write_text(text, encoding="utf-8")
        assert plan(load_protocol(folder / f"{name}.yaml"), case, folder / name).succeeded
    return {name: folder / name for name in texts}


def test_a_comment_or_formatting_edit_is_said_as_one_not_as_an_unversioned_change(edits, tmp_path: Path) -> None:
    """The files differ, the content does not: `specc compare` says so, as `specc diff` says "no difference"; a
    weight changed under the same version is still the unversioned change."""
    written, rewritten = _record(edits["written"])["protocol"], _record(edits["rewritten"])["protocol"]
    assert written["sha256"] != rewritten["sha256"] and written["content_sha256"] == rewritten["content_sha256"]
    found = warnings(read_plans([edits["written"], edits["rewritten"]]))
    content = written["content_sha256"][:12]
    assert found == [Notice(
        f"the plans' protocols share a name and version (written: Edited v1.0.0 (SHA-256 {written['sha256'][:12]}, "
        f"content SHA-256 {content}); rewritten: Edited v1.0.0 (SHA-256 {rewritten['sha256'][:12]}, content SHA-256 "
        f"{content})): the protocol files differ in comments, formatting or descriptive fields only (description, "
        "references, authors, colours) (same content)", warning=False,  # a note
    )]
    three = read_plans([edits["written"], edits["rewritten"], edits["reweighted"]])
    changed = [notice.text for notice in warnings(three)]
    assert len(changed) == 1 and changed[0].startswith("the plans' protocols differ (written: Edited v1.0.0")
    assert changed[0].endswith("the same name and version with different content, so one was changed without a new "
                               "version")
    result = CliRunner().invoke(app, ["compare", str(edits["written"]), str(edits["rewritten"]),
                                      "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "descriptive fields only (description, references, authors, colours) (same content)" in said
    assert "without a new version" not in said
    assert "note: the plans' protocols share" in said and "warning: the plans' protocols" not in said  # as approve
    page = (tmp_path / "out" / "compare.html").read_text()
    assert "descriptive fields only (description, references, authors, colours) (same content)" in page
    assert f'<span class="mono">{content}</span>' in page


def test_plans_written_before_the_content_fingerprint_keep_the_byte_rule_worded_honestly(edits, tmp_path: Path) -> None:
    """plan.json without `protocol.content_sha256` (written before it was recorded) still reads; its other bytes
    cannot be told a comment or a clinical change, and the warning says exactly that."""
    folders = []
    for name in ("written", "rewritten"):
        record = _record(edits[name])
        del record["protocol"]["content_sha256"]
        folders.append(_plan_folder(tmp_path / name, record))
    compared = read_plans(folders)
    assert [plan.record.protocol.content_sha256 for plan in compared] == [None, None]
    [found] = [notice.text for notice in warnings(compared)]
    assert found.startswith("the plans' protocols share a name and version (written: Edited v1.0.0 (SHA-256 ")
    assert found.endswith("the protocol files differ; plans written before specc recorded the content fingerprint "
                          "cannot tell a comment from a clinical change")
    # one plan with the fingerprint, one without: still not told; two fingerprints that differ tell a change
    one_each = [notice.text for notice in warnings(read_plans([edits["written"], folders[1]]))]
    assert one_each[0].endswith("cannot tell a comment from a clinical change")
    assert warnings(read_plans([folders[0], edits["written"], edits["reweighted"]]))[0].text.endswith(
        "so one was changed without a new version")


def _plan_id(folder: Path) -> str:
    """A plan's id as its report's pages give it: the first 12 digits of its plan.json's SHA-256."""
    return hashlib.sha256((folder / "plan.json").read_bytes()).hexdigest()[:12]


def test_every_page_names_the_plans_by_id_and_the_time_of_the_comparison(plans, tmp_path: Path) -> None:
    """compare.pdf's pages read "Plan comparison · first vs second": no date, no plan ids, so two comparisons of two
    runs of one case and protocol were alike page for page, and its PDF had no author, creator or date (audit s21/p1
    F4, F8). Each page now names every plan with its id, as each plan's report names it, and when it was compared."""
    compared = read_plans([plans["first"], plans["second"]])
    before = datetime.now(timezone.utc).replace(microsecond=0)
    html_page, pdf = write_comparison(tmp_path, compared, pdf=True)
    after = datetime.now(timezone.utc)
    ids = [_plan_id(plans["first"]), _plan_id(plans["second"])]
    html = html_page.read_text()
    header = re.search(r'<p class="running-title">(.*?)</p>', html).group(1)
    stamp = re.search(r"compared (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC", header)
    assert header.startswith(f"Plan comparison · first (plan {ids[0]}) vs second (plan {ids[1]}) · compared ")
    assert before <= datetime.fromisoformat(stamp.group(1)).replace(tzinfo=timezone.utc) <= after
    provenance = html.split('<table id="plans">')[1].split("</table>")[0]
    assert all(f'<span class="mono plan-id">{plan_id}</span>' in provenance for plan_id in ids)
    document = pages(pdf)
    assert all(says(page.top, f"first (plan {ids[0]}) vs second (plan {ids[1]})") and says(page.top, stamp.group(0))
               for page in document), [page.top for page in document]
    info = PdfReader(pdf).metadata
    record = compared[1].record
    assert info["/Title"] == "Plan comparison: first vs second (Test protocol v1.0.0, Test protocol v1.1.0 on synthetic)"
    assert info["/Author"] == "specc" and info["/Creator"] == f"specc {record.specc_version}"
    assert info["/CreationDate"].startswith(datetime.fromisoformat(stamp.group(1)).strftime("D:%Y%m%d%H%M%S"))
    assert all(plan.sha256 in info["/Subject"] and plan.record.created[:10] in info["/Subject"] for plan in compared)


def test_the_plan_id_is_of_the_file_read_even_where_this_specc_would_write_it_otherwise(plans, tmp_path: Path) -> None:
    """A plan.json written before a field was added reads with its default, so written out again it is other bytes:
    the id is of the file, the one its report printed and `specc approve` binds."""
    record = _record(plans["first"])
    for structure in record["structures"]:
        structure.pop("role")
    older = _plan_folder(tmp_path / "older", record)
    compared = read_plans([older, plans["second"]])
    assert compared[0].sha256[:12] == _plan_id(older)
    assert compared[0].sha256 != hashlib.sha256(record_json(compared[0].record).encode()).hexdigest()
    assert f"older (plan {_plan_id(older)})" in render_comparison(compared)


def test_a_plan_json_that_is_not_utf8_text_is_an_error_naming_the_file(plans, tmp_path: Path) -> None:
    """It raised UnicodeDecodeError, a traceback, from `specc compare` and `specc approve` alike."""
    broken = tmp_path / "latin1.json"
    broken.write_bytes('{"format": 1, "note": "Ärzte"}'.encode("latin-1"))
    with pytest.raises(CompareError, match=rf"^{re.escape(str(broken))}: not a specc plan record \(not UTF-8 text"):
        read_plans([plans["first"], broken])
