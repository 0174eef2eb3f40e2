"""The HTML/PDF report: agreement with plan.json, unconverged labelling, escaping, self-containment."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from html.parser import HTMLParser

import pytest
from evaluate_fakes import masks_of, protocol, solve_result, synthetic_case

from specc.evaluate import Review, evaluate_plan
from specc.report import ReportError, render_html, write_report

HOSTILE = '<script>alert("x")</script>'
TARGET = f"PTV {HOSTILE}"


class GoalRows(HTMLParser):
    """Text of each cell of each `tr.goal`, by the cell's class."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, str]] = []
        self._cell: str | None = None

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "tr" and attributes.get("class") == "goal":
            self.rows.append({})
        elif tag == "td" and self.rows:
            classes = (attributes.get("class") or "").split()
            self._cell = next((c for c in classes if c.startswith("goal-")), None)

    def handle_endtag(self, tag):
        if tag == "td":
            self._cell = None

    def handle_data(self, data):
        if self._cell and self.rows:
            self.rows[-1][self._cell] = self.rows[-1].get(self._cell, "") + data


def _plan(status: str = "optimal", name: str = "Protocol"):
    case = synthetic_case(target_name=TARGET)
    goals = {
        TARGET: ["D95% >= 50 Gy", "D2% <= 62 Gy (variation 90 Gy)"],
        "Organ": ["Max <= 40 Gy", "V30Gy[%] <= 50 (priority 2)", "D50cc <= 5 Gy (priority 3)"],
    }
    masks = masks_of(case)
    plan_protocol = protocol(goals, target=TARGET, name=name)
    evaluation = evaluate_plan(plan_protocol, case, masks, solve_result(case, status=status, scale=0.65), {})
    return case, masks, evaluation


@pytest.fixture(scope="module")
def converged():
    case, masks, evaluation = _plan(name=f"Prostate {HOSTILE}")
    return case, masks, evaluation, render_html(evaluation.record, case, evaluation, masks)


def test_report_and_plan_json_agree_on_every_goal(converged):
    _, _, evaluation, html = converged
    record = json.loads(evaluation.record.model_dump_json(indent=2))
    parser = GoalRows()
    parser.feed(html)
    assert len(parser.rows) == len(record["goals"]) == 5
    labels = {"pass": "PASS", "variation": "VARIATION", "fail": "FAIL", "not_evaluated": "NOT EVALUATED"}
    for row, goal_json in zip(parser.rows, record["goals"]):
        assert row["goal-structure"] == goal_json["structure"]
        assert row["goal-text"] == goal_json["text"]
        assert row["goal-status"].startswith(labels[goal_json["status"]])
        if goal_json["value"] is None:
            assert row["goal-value"].strip() == "n/a"
        else:
            shown, unit = row["goal-value"].split()
            assert unit == goal_json["unit"]
            assert float(shown) == pytest.approx(goal_json["value"], abs=0.005)
    assert {g["status"] for g in record["goals"]} == {"pass", "variation", "fail", "not_evaluated"}


def test_user_strings_are_escaped(converged):
    _, _, _, html = converged
    assert "<script" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html


def test_report_is_self_contained(converged):
    _, _, _, html = converged
    assert "<link" not in html and "http://" not in html and "https://" not in html
    assert html.count('src="data:image/svg+xml;base64,') == 3  # DVH, slices, fluence


def test_an_unconverged_plan_shows_no_goal_as_passed():
    case, masks, evaluation = _plan(status="optimal_inaccurate")
    assert "pass" in {g.measured_status for g in evaluation.record.goals}
    html = render_html(evaluation.record, case, evaluation, masks)
    parser = GoalRows()
    parser.feed(html)
    assert all(row["goal-status"].startswith("NOT CONVERGED") for row in parser.rows)
    assert ">PASS<" not in html
    assert 'id="not-converged"' in html and '@top-center { content: "NOT CONVERGED' in html


def test_review_block_is_not_approved_until_approved(converged):
    case, masks, evaluation, html = converged
    assert "NOT APPROVED" in html
    review = Review(reviewer="Dr. A", date="2025-01-02", approved=True)
    approved = evaluation.record.model_copy(update={"review": review})
    approved_html = render_html(approved, case, evaluation, masks)
    assert "NOT APPROVED" not in approved_html and "Dr. A" in approved_html


def test_write_report_writes_html_and_pdf(converged, tmp_path):
    case, masks, evaluation, _ = converged
    paths = write_report(tmp_path / "out", evaluation.record, case, evaluation, masks, pdf=True)
    assert [p.name for p in paths] == ["report.html", "report.pdf"]
    assert paths[1].read_bytes().startswith(b"%PDF")


def test_missing_weasyprint_is_a_clear_error(converged, tmp_path, monkeypatch):
    case, masks, evaluation, _ = converged
    monkeypatch.setitem(sys.modules, "weasyprint", None)  # import weasyprint now raises ImportError
    with pytest.raises(ReportError, match="WeasyPrint is not usable"):
        write_report(tmp_path, evaluation.record, case, evaluation, masks, pdf=True)


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed")
def test_chromium_renders_the_report(converged, tmp_path):
    case, masks, evaluation, _ = converged
    (html_path,) = write_report(tmp_path, evaluation.record, case, evaluation, masks)
    screenshot = tmp_path / "report.png"
    subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={screenshot}",
         "--window-size=1200,2000", html_path.as_uri()],
        check=True, capture_output=True, timeout=120,
    )
    assert screenshot.stat().st_size > 50_000  # a rendered page with figures, not a blank one
