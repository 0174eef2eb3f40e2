"""What `specc compare` and `specc approve` say before any number: how a protocol's files differ is judged by one
rule (`protocol_difference`), for two plans and for a plan and its files now; each line carries its severity
(`Notice.warning`), and the command line prints "warning:" or "note:" by it, never by the line's words."""

from __future__ import annotations

from pathlib import Path

import pytest

from evaluate_fakes import synthetic_case
from specc.approval import approve, protocol_changed_since
from specc.cli.compare import _warn
from specc.evaluate.record import ProtocolInfo
from specc.pipeline import plan
from specc.protocol import load_protocol
from specc.report.compare import (
    CONTENT_CHANGED, FORMATTING_ONLY, NOT_TOLD, Notice, protocol_difference, protocol_with_digests, read_plans, read_record,
    warnings,
)
from specc.report.compare_cohorts import ComparedCohort, cohort_warnings
from test_approval_protocol_files import PROTOCOL  # a protocol being tuned, as its approvals see it

EDITS = {
    "commented": ("# reviewed, no change\n" + PROTOCOL, FORMATTING_ONLY),
    "reweighted": (PROTOCOL.replace("weight: 1}", "weight: 3}"), CONTENT_CHANGED),
}


def _planned(protocol_file: Path, text: str, folder: Path) -> Path:
    protocol_file.write_text(text, encoding="utf-8")
    assert plan(load_protocol(protocol_file), synthetic_case(), folder).succeeded
    return folder


@pytest.mark.parametrize("edit", list(EDITS))
def test_approve_judges_the_files_now_by_the_rule_compare_judges_two_plans_by(tmp_path: Path, edit: str) -> None:
    """A plan of a protocol file, the file then edited and planned again: `specc compare` of the two plans and
    `specc approve` of the first (its files now the edited ones) give one verdict, with one severity."""
    protocol_file = tmp_path / "tuned.yaml"
    first = _planned(protocol_file, PROTOCOL, tmp_path / "first")
    text, verdict = EDITS[edit]
    second = _planned(protocol_file, text, tmp_path / "second")
    record = read_record(first / "plan.json")
    edited = read_record(second / "plan.json").protocol
    assert protocol_difference([record.protocol, edited]) == verdict
    [compared] = warnings(read_plans([first, second]))
    approved = protocol_changed_since(record)
    assert isinstance(approved, Notice) and compared.text.endswith(verdict.text)
    # `specc approve` says it of the record it approved, not of plan.json read again
    assert approve(first, "Dr. A. Example", "", reason="tuned").protocol_changed == approved
    assert approved.warning == compared.warning == verdict.warning == (verdict != FORMATTING_ONLY)
    # a plan.json written before the content fingerprint: the rule cannot tell, and both say so as a warning
    older = record.protocol.model_copy(update={"content_sha256": None})
    assert protocol_difference([older, edited]) == NOT_TOLD and NOT_TOLD.warning
    said = protocol_changed_since(record.model_copy(update={"protocol": older}))
    assert said is not None and said.warning and "cannot tell a comment from a clinical change" in said.text
    # files that no longer load are no comment edit, whatever plan.json recorded
    protocol_file.write_text(PROTOCOL.replace("fractions: 30", "fractions: 0"), encoding="utf-8")
    for planned in (record, record.model_copy(update={"protocol": older})):
        said = protocol_changed_since(planned)
        assert said is not None and said.warning and "hold other content now" in said.text
        assert f"no longer load as a protocol ({protocol_file}:" in said.text


def test_a_cohort_whose_plans_differ_in_comments_only_is_a_note(tmp_path: Path) -> None:
    """Within one cohort as between cohorts: the line naming the cohort keeps the rule's severity."""
    record = read_record(_planned(tmp_path / "tuned.yaml", PROTOCOL, tmp_path / "plan") / "plan.json")
    commented = record.model_copy(update={"protocol": record.protocol.model_copy(update={"sha256": "ab" * 32})})
    cohort = ComparedCohort("v1", tmp_path / "cohort.csv", {"p0": record, "p1": commented}, [])
    [said] = [notice for notice in cohort_warnings([cohort]) if "protocol" in notice.text]
    assert said.text.startswith("v1: its plans' protocols share a name and version")
    assert said.text.endswith(FORMATTING_ONLY.text)
    assert not said.warning
    reweighted = commented.protocol.model_copy(update={"content_sha256": "cd" * 32})
    cohort = ComparedCohort("v1", cohort.summary, {"p0": record, "p1": commented.model_copy(
        update={"protocol": reweighted})}, [])
    [said] = [notice for notice in cohort_warnings([cohort]) if "protocol" in notice.text]
    assert said.text.endswith(CONTENT_CHANGED.text) and said.warning
    assert cohort.protocols_with_digests == ", ".join(map(protocol_with_digests, [record.protocol, reweighted]))


def test_one_rule_gives_a_plan_s_and_a_cohort_s_protocol_hashes(tmp_path: Path) -> None:
    """Each protocol beside its own hashes, a plan's as a cohort's; a cohort's several in its cases' order, each
    file once."""
    planned = ProtocolInfo(name="P", version="1", site="s", files=[], sha256="a" * 64, content_sha256="c" * 64)
    edited = planned.model_copy(update={"name": "Q", "sha256": "b" * 64, "content_sha256": "d" * 64})
    assert protocol_with_digests(planned) == "P v1 (SHA-256 aaaaaaaaaaaa, content SHA-256 cccccccccccc)"
    assert protocol_with_digests(planned.model_copy(update={"content_sha256": None})) == "P v1 (SHA-256 aaaaaaaaaaaa)"
    record = read_record(_planned(tmp_path / "tuned.yaml", PROTOCOL, tmp_path / "plan") / "plan.json")
    plans = {case: record.model_copy(update={"protocol": protocol})
             for case, protocol in (("p0", edited), ("p1", planned), ("p2", planned))}
    assert ComparedCohort("v1", tmp_path / "cohort.csv", plans, []).protocols_with_digests == (
        "Q v1 (SHA-256 bbbbbbbbbbbb, content SHA-256 dddddddddddd), "
        "P v1 (SHA-256 aaaaaaaaaaaa, content SHA-256 cccccccccccc)")


def test_the_command_line_prints_each_line_by_its_severity_not_by_its_words(capsys: pytest.CaptureFixture[str]) -> None:
    _warn([Notice(f"a warning whose words end as a note's: {FORMATTING_ONLY.text}"), Notice("a note", warning=False)])
    said = " ".join(capsys.readouterr().err.split())
    assert said == f"warning: a warning whose words end as a note's: {FORMATTING_ONLY.text} note: a note"


def test_a_notice_is_its_words_and_its_severity_together() -> None:
    """A Notice was a str carrying its severity beside it: equal to its words alone, and to a notice of the other
    severity, so that a test or a caller comparing lines lost the severity without a word. Now both make it."""
    assert Notice(FORMATTING_ONLY.text) != FORMATTING_ONLY  # the same words as a warning: another line
    assert Notice(FORMATTING_ONLY.text, warning=False) == FORMATTING_ONLY
    assert FORMATTING_ONLY != FORMATTING_ONLY.text and not isinstance(FORMATTING_ONLY, str)


def test_the_comparison_page_shows_a_note_apart_from_its_warnings(tmp_path: Path) -> None:
    """compare.html showed a comment-only edit in the red warnings banner, the terminal calling it a note."""
    from specc.report.compare import render_comparison

    protocol_file = tmp_path / "tuned.yaml"
    first = _planned(protocol_file, PROTOCOL, tmp_path / "first")
    second = _planned(protocol_file, EDITS["commented"][0], tmp_path / "second")
    html = render_comparison(read_plans([first, second]))
    assert '<div class="banner" id="warnings">' not in html
    notes = html.split('<div class="banner banner-info" id="notes">')[1].split("</div>")[0]
    assert FORMATTING_ONLY.text in notes
    reweighted = _planned(protocol_file, EDITS["reweighted"][0], tmp_path / "third")
    html = render_comparison(read_plans([first, reweighted]))
    assert 'id="notes"' not in html
    assert CONTENT_CHANGED.text in html.split('<div class="banner" id="warnings">')[1].split("</div>")[0]
