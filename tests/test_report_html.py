"""The HTML/PDF report: agreement with plan.json, unconverged labelling, escaping, self-containment."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from html.parser import HTMLParser

import numpy as np
import pytest
from markupsafe import escape
from matplotlib.collections import PolyCollection
from pypdf import PdfReader
from evaluate_fakes import masks_of, protocol, solve_result, synthetic_case

from specc.evaluate import Review, evaluate_plan
from specc.report import ReportError, render_html, write_report
from specc.report.figures import fluence_figure, slices_figure
from specc.report.html import style_sheet
from specc.report.identity import record_sha256
from specc.solve.priorities import step_row

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


NOTES = [f"{TARGET}: a note that names a structure", "Body: soft objectives see a uniform sample"]


def _plan(status: str = "optimal", name: str = "Protocol", notes: tuple[str, ...] = tuple(NOTES)):
    case = synthetic_case(target_name=TARGET)
    goals = {
        TARGET: ["D95% >= 50 Gy", "D2% <= 62 Gy (variation 90 Gy)"],
        "Organ": ["Max <= 40 Gy", "V30Gy[%] <= 50 (priority 2)", "D50cc <= 5 Gy (priority 3)"],
    }
    masks = masks_of(case)
    plan_protocol = protocol(goals, target=TARGET, name=name)
    solve = solve_result(case, status=status, scale=0.65)
    evaluation = evaluate_plan(plan_protocol, case, masks, solve, {}, notes=notes)
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


def test_a_value_a_hair_below_its_goal_is_shown_with_the_decimals_that_fail_it(converged):
    """A hard limit met within its tolerance can leave a goal failed by 1e-4 Gy: "50.00 Gy FAIL" against
    "D95% >= 50 Gy" would contradict itself on the page the physician signs."""
    case, masks, evaluation, _ = converged
    record = evaluation.record
    goals = [goal.model_copy(update={"value": 49.99991, "measured_status": "fail", "status": "fail"})
             if goal.text == "D95% >= 50 Gy" else goal for goal in record.goals]
    html = render_html(record.model_copy(update={"goals": goals}), case, evaluation, masks)
    parser = GoalRows()
    parser.feed(html)
    (row,) = [row for row in parser.rows if row["goal-text"] == "D95% >= 50 Gy"]
    assert row["goal-value"].split() == ["49.9999", "Gy"] and row["goal-status"].startswith("FAIL")


def test_user_strings_are_escaped(converged):
    _, _, _, html = converged
    assert "<script" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html


def test_notes_are_listed_in_order_and_escaped(converged):
    _, _, _, html = converged
    listed = re.findall(r'<li class="note">(.*?)</li>', html)
    assert listed == [str(escape(note)) for note in NOTES]
    assert html.index('id="notes"') < html.index('id="optimization"')


def test_a_plan_without_notes_says_so():
    case, masks, evaluation = _plan(notes=())
    html = render_html(evaluation.record, case, evaluation, masks)
    assert 'class="note"' not in html and 'id="no-notes"' in html


def test_style_sheet_is_inlined_as_css_not_as_escaped_text(converged):
    _, _, _, html = converged
    style = html[html.index("<style>"): html.index("</style>")]
    assert 'font-family: "DejaVu Sans"' in style and "&#34;" not in style


def test_each_printed_page_names_the_case_and_protocol_and_the_run(converged):
    """Two runs of one case and protocol printed alike page for page (audit s21/p1 F4): the header adds the plan's
    creation time and the first digits of its record's SHA-256, which the title block gives whole."""
    _, _, evaluation, html = converged
    record = evaluation.record
    created = datetime.fromisoformat(record.created).astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    digest = record_sha256(record)
    expected = (f"Case {record.case.case_id} · {record.protocol.name} v{record.protocol.version} · created {created}"
                f" · plan {digest[:12]}")
    assert f'<p class="running-title">{escape(expected)}</p>' in html
    assert f'<span class="mono" id="plan-record">{digest}</span>' in html
    assert "string-set: running content(text)" in html and "content: string(running)" in html


def test_creation_time_is_shown_in_utc(converged):
    _, _, evaluation, html = converged
    shown = datetime.fromisoformat(evaluation.record.created).astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    assert f"<td>{shown} UTC by specc" in html


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


def test_an_unconverged_plan_says_so_in_its_title_and_heading(converged):
    """Audit s18/b1 F6: the browser tab, the file's title and a printout of the HTML (no per-page PDF header)
    read "Plan report: ..." for a plan that did not converge: the banner under the heading was on page 1 only."""
    case, masks, evaluation = _plan(status="optimal_inaccurate")
    html = render_html(evaluation.record, case, evaluation, masks)
    title = re.search(r"<title>(.*?)</title>", html).group(1)
    heading = re.sub(r"<[^>]+>", "", re.search(r"<h1>(.*?)</h1>", html).group(1))
    assert title.startswith("NOT CONVERGED: Plan report: ") and heading.startswith("NOT CONVERGED: Plan report: ")
    converged_html = converged[3]
    assert "NOT CONVERGED" not in re.search(r"<title>(.*?)</title>", converged_html).group(1)
    assert "NOT CONVERGED" not in re.search(r"<h1>(.*?)</h1>", converged_html).group(1)


def test_review_block_says_an_approval_is_recorded_beside_the_report(converged):
    """A report is not rewritten on approval (the approval binds its hash): it never claims APPROVED, and
    says where an approval is and how it is checked (audit h7 F2)."""
    case, masks, evaluation, html = converged
    review = Review(reviewer="Dr. A", date="2025-01-02", approved=True)  # `approved` is set by nothing in specc
    prefilled = evaluation.record.model_copy(update={"review": review})
    for page in (html, render_html(prefilled, case, evaluation, masks)):
        block = page.split('<section id="review"')[1]
        text = " ".join(block.split())
        assert "NOT APPROVED in this report" in text and ">APPROVED<" not in page
        assert "approval.html and approval.json" in text and "specc approve --verify" in text
        assert '@bottom-left { content: "NOT APPROVED in this report: see approval.html beside it"' in page
    assert "Dr. A" in block and "2025-01-02" in block  # the paper sign-off lines, as filled in code


def test_the_report_names_the_plan_record_it_was_rendered_from(converged):
    case, masks, evaluation, html = converged
    digest = record_sha256(evaluation.record)
    assert f'<meta name="specc-plan-record" content="{digest}">' in html
    assert f'<meta name="keywords" content="specc-plan-record {digest}">' in html


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


def test_slice_planes_are_labelled_with_the_patient_directions_they_show(converged):
    case, masks, evaluation, _ = converged
    figure = slices_figure(evaluation.record, case, evaluation.dose, masks)
    # LPS: the positive end of x, y, z is the patient's left, posterior, superior.
    ends = {"x": ("R", "L"), "y": ("A", "P"), "z": ("I", "S")}
    planes = [axes for axes in figure.axes if axes.get_title().split(",")[0] in ("Axial", "Coronal", "Sagittal")]
    assert len(planes) == 3
    for axes in planes:
        labels = {(round(t.get_position()[0], 2), round(t.get_position()[1], 2)): t.get_text() for t in axes.texts}
        horizontal, vertical = axes.get_xlabel()[0], axes.get_ylabel()[0]
        (left, right), (bottom, top) = axes.get_xlim(), axes.get_ylim()
        rightwards, upwards = int(right > left), int(top > bottom)  # 1: the axis grows that way
        assert (labels[(0.02, 0.5)], labels[(0.98, 0.5)]) == (ends[horizontal][1 - rightwards], ends[horizontal][rightwards])
        assert (labels[(0.5, 0.03)], labels[(0.5, 0.97)]) == (ends[vertical][1 - upwards], ends[vertical][upwards])


def test_a_soft_limit_not_reached_is_not_shown_as_a_violated_constraint():
    case = synthetic_case()
    terms = ["{kind: max_dose, structure: Organ, dose: 20 Gy}", "{kind: max_dose, structure: Organ, dose: 20 Gy, hard: false, weight: 1}"]
    plan_protocol = protocol({"Organ": ["Max <= 40 Gy"]}, terms=terms)
    masks = masks_of(case)
    solve = solve_result(case, scale=0.65, protocol=plan_protocol)
    evaluation = evaluate_plan(plan_protocol, case, masks, solve, {})
    hard, soft = evaluation.record.solver.terms
    assert (hard.hard, hard.satisfied, soft.hard, soft.satisfied) == (True, False, False, False)
    html = render_html(evaluation.record, case, evaluation, masks)
    assert html.count('<span class="status status-fail">violated</span>') == 1
    assert html.count('<span class="status status-variation">not reached</span>') == 1
    # by how much, in the term's unit, against the bound it is judged by
    over = f"{hard.value - 20:.3f} Gy (limit 20.000 Gy)"
    assert f'<span class="status status-fail">violated</span> by {over}' in html
    assert f'<span class="status status-variation">not reached</span> by {over}' in html
    older = evaluation.record.model_copy(update={"solver": evaluation.record.solver.model_copy(update={"terms": [
        term.model_copy(update={"limit": None, "violation": None}) for term in (hard, soft)]})})
    assert '<span class="status status-fail">violated</span> by' not in render_html(older, case, evaluation, masks)


def test_a_normalized_plan_says_which_values_are_before_it_and_which_hard_limits_it_broke():
    case = synthetic_case()
    plan_protocol = protocol({"Organ": ["Max <= 40 Gy"]}, terms=["{kind: max_dose, structure: Organ, dose: 20 Gy}"],
                             normalization="{structure: Target, metric: D95%, percent: 100}")
    masks = masks_of(case)
    evaluation = evaluate_plan(plan_protocol, case, masks, solve_result(case, scale=0.65, protocol=plan_protocol), {})
    normalization = evaluation.record.normalization
    assert normalization.hard_limits_exceeded == [f"max_dose Organ <= 20 Gy: {evaluation.record.solver.terms[0].value:.3f} Gy"]
    html = render_html(evaluation.record, case, evaluation, masks)
    assert "Objective contribution (before normalization)" in html
    assert f"(of the optimized plan, before normalization by {normalization.factor:.4f})" in html
    exceeded = re.search(r'<p id="normalization-exceeded">(.*?)</p>', html, re.S)
    assert exceeded is not None and "max_dose Organ &lt;= 20 Gy" in exceeded.group(1)
    # the steps' rows (and the exact DVH values among them) are of the plan before it too (audit s20/t4 F2: an
    # "exact value ... met" row stood beside the same limit "violated" in the normalized plan)
    stepped = evaluation.record.model_copy(update={"solver": evaluation.record.solver.model_copy(
        update={"steps": [step_row(step="1. priority 1 penalties", reached="0", status="optimal")]})})
    html = render_html(stepped, case, evaluation, masks)
    note = re.search(r'<p class="muted steps-note">(.*?)</p>', html, re.S)
    assert note is not None and f"before normalization by {normalization.factor:.4f}" in " ".join(note.group(1).split())
    plain = evaluate_plan(protocol({"Organ": ["Max <= 40 Gy"]}), case, masks, solve_result(case, scale=0.65), {})
    html = render_html(plain.record, case, plain, masks)
    assert "before normalization" not in html and "normalization-exceeded" not in html


def test_the_fluence_figure_draws_each_beamlet_as_its_cell_with_its_weight() -> None:
    case = synthetic_case()
    fluence = np.linspace(0.0, 2.0, case.n_beamlets)
    figure = fluence_figure(case, fluence)
    beamlets = case.beamlets
    for beam, axes in zip(case.beams, figure.axes):
        (collection,) = [c for c in axes.collections if isinstance(c, PolyCollection)]
        members = np.flatnonzero(beamlets.beam_id == beam.id)
        np.testing.assert_array_equal(collection.get_array(), fluence[members])
        for path, m in zip(collection.get_paths(), members):
            xs, ys = path.vertices[:4, 0], path.vertices[:4, 1]
            assert (xs.min(), xs.max()) == pytest.approx((beamlets.x_mm[m] - beamlets.width_mm[m] / 2,
                                                          beamlets.x_mm[m] + beamlets.width_mm[m] / 2))
            assert (ys.min(), ys.max()) == pytest.approx((beamlets.y_mm[m] - beamlets.height_mm[m] / 2,
                                                          beamlets.y_mm[m] + beamlets.height_mm[m] / 2))
        assert collection.get_rasterized()  # a grid of cells: an image in the SVG, not one path per beamlet


def test_the_robustness_table_stays_whole_with_a_unit_on_every_value(converged):
    """Its header row alone at a page's foot, its rows on the next without it, and bare scenario numbers, were the defect."""
    from specc.evaluate.record import RobustGoalRecord, RobustnessRecord

    case, masks, evaluation, _ = converged
    robust = RobustnessRecord(
        setup_error_mm=(5.0, 5.0, 5.0), model="static dose cloud", scenarios_mm=[(5.0, 0.0, 0.0), (-5.0, 0.0, 0.0)],
        scenario_labels=["x +5 mm", "x -5 mm"], structures=[TARGET],
        goals=[RobustGoalRecord(structure=TARGET, text="D95% >= 50 Gy", unit="Gy", nominal=57.8,
                                scenario_values=[50.0, None], worst=50.0, worst_scenario=0,
                                measured_status="pass", status="pass")],
    )
    record = evaluation.record.model_copy(update={"robustness": robust})
    html = render_html(record, case, evaluation, masks)
    section = html.split('<section id="robustness" class="keep">')[1].split("</section>")[0]
    assert "<thead><tr><th>Structure</th>" in section  # repeated by the PDF on any page the table runs onto
    assert "<thead><tr><th>Priority</th>" in html  # the goals table's too
    [row] = section.split('<tr class="robust-goal">')[1:]
    cells = re.findall(r'<td class="num[^"]*">(.*?)</td>', row)
    assert cells == ["57.80 Gy", '50.00 Gy', '<span class="muted">n/a</span>', "50.00 Gy"]
    assert row.count('<td class="num worst">50.00 Gy</td>') == 1  # the scenario's cell, not the Worst column
    assert "+x towards the patient's left, +y posterior, +z superior" in section
    tied = robust.model_copy(update={"goals": [robust.goals[0].model_copy(update={"scenario_values": [50.0, 50.0]})]})
    html = render_html(record.model_copy(update={"robustness": tied}), case, evaluation, masks)
    [row] = html.split('<tr class="robust-goal">')[1:]
    assert row.split("</tr>")[0].count('<td class="num worst">50.00 Gy</td>') == 2  # a tie: both scenarios marked


def test_a_limit_in_percent_of_the_prescription_is_shown_in_gy_beside_it():
    """"D2% <= 107%" is judged against 64.20 Gy (107% of 60 Gy): the reviewer reads that dose, not works it out."""
    case = synthetic_case()
    goals = {"Target": ["D2% <= 107%", "D95% >= 95% (variation 90%, priority 2)", "D50% >= 50 Gy"]}
    evaluation = evaluate_plan(protocol(goals), case, masks_of(case), solve_result(case, scale=0.65), {})
    parser = GoalRows()
    parser.feed(render_html(evaluation.record, case, evaluation, masks_of(case)))
    assert [row["goal-text"] for row in parser.rows] == [
        "D2% <= 107% (64.20 Gy)",
        "D95% >= 95% (variation 90%, priority 2) (57.00 Gy, variation 54.00 Gy)",
        "D50% >= 50 Gy",  # its limit is written in Gy already
    ]


def test_a_resolved_limit_has_the_decimals_that_show_it_exactly():
    from specc.report.limits import limit_text

    assert [limit_text(value) for value in (64.2, 107 / 100 * 66.5, 1 / 3)] == ["64.20", "71.155", "0.333333"]


def test_the_target_index_table_shows_the_five_indices_a_goal_can_state_with_the_goals_values():
    """The RTOG CI and GI a goal measured (1.03, 2.78 in the audit) were missing: only PCI, R50 and HI were shown."""
    case = synthetic_case()
    goals = {"Target": ["CI <= 1.2", "PCI >= 0.5", "GI <= 5", "R50 <= 5", "HI <= 0.2"]}
    evaluation = evaluate_plan(protocol(goals), case, masks_of(case), solve_result(case, scale=0.65), {})
    html = render_html(evaluation.record, case, evaluation, masks_of(case))
    section = html.split('<table id="target-indices"')[1].split("</table>")[0]
    shown = dict(re.findall(r'<tr class="plan-index"><td>(\w+): [^<]*</td><td class="num">([^<]*)</td>', section))
    assert list(shown) == ["CI", "PCI", "GI", "R50", "HI"]
    for goal in evaluation.record.goals:
        assert goal.value is not None
        assert float(shown[goal.metric]) == pytest.approx(goal.value, abs=0.0051), goal.metric


def test_small_volumes_are_shown_with_significant_digits_not_as_zero(converged):
    """A 0.015 cc structure read "0.0 cc" in the DVH table and a 0.02 cc target "Volume 0.0 cc" beside its CI, as a
    missing structure would (audit a4 F4)."""
    case, masks, evaluation, _ = converged
    record = evaluation.record
    structures = [structure.model_copy(update={"volume_cc": 0.015}) if structure.structure == "Organ" else structure
                  for structure in record.structures]
    indices = [record.target_indices[0].model_copy(
        update={"volume_cc": 0.02, "prescription_isodose_cc": 0.0454, "half_isodose_cc": 1.9})]
    html = render_html(record.model_copy(update={"structures": structures, "target_indices": indices}),
                       case, evaluation, masks)
    assert re.search(r"Organ</td><td class=\"num\">0\.0150 cc</td>", html)
    section = html.split('<table id="target-indices"')[1].split("</table>")[0]
    assert "<td>Volume</td><td class=\"num\">0.0200 cc</td>" in section
    assert "<td>Prescription isodose volume</td><td class=\"num\">0.0454 cc</td>" in section
    assert "<td>Half-prescription isodose volume</td><td class=\"num\">1.90 cc</td>" in section
    assert " 0.0 cc" not in html


def test_the_d0_03cc_of_a_target_under_0_03_cc_reads_not_evaluated_with_its_maximum_beside_it(converged):
    """A 0.02 cc target's 'D0.03cc' was its minimum dose, shown as its hot spot, while a goal 'D0.03cc' on it read
    NOT EVALUATED (audit a4 F1): the table gives the goal's reason, and the maximum."""
    case, masks, evaluation, _ = converged
    record = evaluation.record
    target = record.target_indices[0]
    spot = target.hot_spot.model_copy(update={"d0_03cc_gy": None, "max_gy": 10.0})
    indices = [target.model_copy(update={"volume_cc": 0.02, "hot_spot": spot})]
    html = render_html(record.model_copy(update={"target_indices": indices}), case, evaluation, masks)
    section = html.split('<table id="target-indices"')[1].split("</table>")[0]
    assert ('<tr><td>D0.03cc</td><td class="num muted">not evaluated: 0.03 cc is more than the whole structure '
            "(0.02 cc)</td></tr>") in section
    assert '<tr><td>Maximum</td><td class="num">10.00 Gy</td></tr>' in section
    assert "1.00 Gy" not in section
    normal = converged[3].split('<table id="target-indices"')[1].split("</table>")[0]
    assert f'<tr><td>D0.03cc</td><td class="num">{target.hot_spot.d0_03cc_gy:.2f} Gy</td></tr>' in normal


def test_the_slice_figure_is_not_trimmed_again(converged):
    """Trimming ('tight') measured every text of the slice planes once more, to cut what their constrained layout
    already fits to the canvas (audit a5 F3: the report's figures took as long as the solve)."""
    import base64

    from specc.report.figures import to_data_uri

    case, masks, evaluation, _ = converged
    figure = slices_figure(evaluation.record, case, evaluation.dose, masks)
    svg = base64.b64decode(to_data_uri(figure).split(",", 1)[1]).decode()
    width, height = (72 * inches for inches in figure.get_size_inches())
    assert f'width="{width:g}pt" height="{height:g}pt"' in svg  # the canvas as laid out


def _sib_plan():
    """The synthetic target split into a core (PTV_High, 60 Gy) and its shell (PTV_Low, 40 Gy)."""
    from evaluate_fakes import sib_case, sib_protocol_text
    from specc.protocol import parse_protocol_text

    case = sib_case()
    text = sib_protocol_text('["CI <= 1.2"]')
    masks = masks_of(case)
    evaluation = evaluate_plan(parse_protocol_text(text, "protocols/sib.yaml"), case, masks,
                               solve_result(case, scale=0.65), {})
    return case, masks, evaluation


def test_the_index_footnote_names_the_higher_level_targets_a_lower_levels_isodose_leaves_out(converged):
    """audit b4 F3: the footnote said 'both over the whole grid' while a lower level's indices leave out the boost."""
    case, masks, evaluation = _sib_plan()
    html = render_html(evaluation.record, case, evaluation, masks)
    footnote = re.search(r'<p class="muted" id="indices-footnote">(.*?)</p>', html, re.S)
    assert footnote is not None and "PTV_Low's leave out PTV_High" in footnote.group(1)
    assert "PTV_High's leave out" not in footnote.group(1)
    single = re.search(r'<p class="muted" id="indices-footnote">(.*?)</p>', converged[3], re.S)
    assert single is not None and "leave out" not in single.group(1)


def test_a_hot_spot_outside_the_targets_is_named_beside_the_goal_counts_but_counts_as_no_goal(converged):
    """audit b4 F2: a goals-only plan read 'PASS x 3' in the header with 168% outside the targets as its third
    note. The header names it beside the counts, and the counts stay the goals'."""
    case = synthetic_case()
    masks = masks_of(case)
    low = evaluate_plan(protocol({"Target": ["D95% >= 5 Gy"]}, dose="10 Gy"), case, masks, solve_result(case, scale=0.65), {})
    assert low.outside_hot_spot is not None and low.outside_hot_spot.note in low.record.notes
    html = render_html(low.record, case, low, masks)
    summary = re.search(r'<p class="summary" id="goal-summary">(.*?)</p>', html, re.S)
    assert summary is not None and f"{low.outside_hot_spot.headline}: see Notes" in summary.group(1)
    assert low.outside_hot_spot.headline.startswith(f"hot spot outside the targets {low.outside_hot_spot.percent:.0f}% (")
    assert low.record.goal_counts() == {"pass": 1}
    assert converged[2].outside_hot_spot is None and 'id="outside-hot-spot"' not in converged[3]


def test_a_goal_judged_on_part_of_its_organ_says_so_in_its_row():
    """Audit c3 F4: the plexus read from its left side alone read '10.31 Gy PASS' in the goal table, the fact only in
    the Notes; the goal's row now carries it beside its status, as a NOT EVALUATED goal's reason."""
    case = synthetic_case(target_name=TARGET)
    masks = masks_of(case)
    plan_protocol = protocol({TARGET: ["D95% >= 50 Gy"], "Organ": ["Max <= 40 Gy"]}, target=TARGET)
    judged_on = "judged on the case's 'Organ_L' alone: its part 'Organ_R' is not in the case"
    evaluation = evaluate_plan(plan_protocol, case, masks, solve_result(case, scale=0.65), {},
                               partial={"Organ": judged_on})
    parser = GoalRows()
    parser.feed(render_html(evaluation.record, case, evaluation, masks))
    (row,) = [row for row in parser.rows if row["goal-structure"] == "Organ"]
    (goal,) = [goal for goal in evaluation.record.goals if goal.structure == "Organ"]
    assert goal.value is not None and row["goal-status"] == f"{goal.status.upper()}Organ: {judged_on}"


def test_the_header_count_tells_an_allowed_absence_from_a_goal_not_measurable():
    """Audit s18/b1 F8: 'NOT EVALUATED × 2' lumped an organ the protocol lets a case lack (if_contoured) with a goal
    that could not be measured, which alone stops --strict."""
    case = synthetic_case()
    goals = {"Target": ["D95% >= 5 Gy", "D500cc <= 9 Gy"], "Organ": ["Max <= 40 Gy"]}
    masks = masks_of(case)
    evaluation = evaluate_plan(protocol(goals, dose="10 Gy"), case, masks, solve_result(case, scale=0.65), {},
                               absent={"Organ": "not contoured on this case (if_contoured: true)"},
                               allowed_absent={"Organ"})
    html = render_html(evaluation.record, case, evaluation, masks)
    summary = re.sub(r"<[^>]+>", "", re.search(r'<p class="summary" id="goal-summary">(.*?)</p>', html, re.S).group(1))
    assert "NOT EVALUATED × 2 (1 allowed absence, 1 not measurable)" in summary, summary


class HeaderRows(HTMLParser):
    """Per table: its header rows (a row of <th> cells), and how many of them lie outside a <thead>."""

    def __init__(self) -> None:
        super().__init__()
        self.loose: list[str] = []  # the first header cell's text of each header row outside a <thead>
        self.headed = 0
        self._in_thead = False
        self._row_cells: list[str] = []
        self._cell: str | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "thead":
            self._in_thead = True
        elif tag == "tr":
            self._row_cells = []
        elif tag in ("th", "td"):
            self._row_cells.append(tag)
            self._cell = tag
            if tag == "th" and self._row_cells == ["th"] and not self._in_thead:
                self.loose.append("")
            elif tag == "th" and self._row_cells == ["th"]:
                self.headed += 1

    def handle_endtag(self, tag):
        if tag == "thead":
            self._in_thead = False

    def handle_data(self, data):
        if self._cell == "th" and self.loose and self._row_cells == ["th"] and not self._in_thead:
            self.loose[-1] += data


def _approval_html(sources: list[str]) -> str:
    from specc.approval import AcceptedDeviation, Approval
    from specc.report.html import STATUS_LABELS, environment

    approval = Approval(
        decision="approved", reviewer="Dr. A. Example", role="Radiation oncologist", time_utc="2026-11-28T09:15:02+00:00",
        specc_version="0.1.0", protocol={"name": "Pelvis", "version": "1.2.0", "sha256": "a" * 64},
        case={"case_id": "p0", "sha256": "b" * 64}, plan_created="2026-11-28T08:00:00+00:00", dose_source=None,
        goals={"pass": 3, "fail": len(sources)}, reason="discussed at chart rounds", files={"plan.json": "c" * 64},
        accepted_deviations=[AcceptedDeviation(structure="Rectum", goal="D2cc <= 76 Gy", value=78.6, unit="Gy",
                                               status="fail", priority=2, source=source) for source in sources],
    )
    return environment().get_template("approval.html").render(approval=approval, status_labels=STATUS_LABELS,
                                                               css=style_sheet())


def test_every_header_row_of_the_report_and_the_approval_repeats_on_a_page_a_table_runs_onto(converged):
    """A header row outside <thead> is printed once: the optimization log's term table (five pages in a robust plan)
    ran on without its column names (audit s21/p1 F1). Every table with header cells has them in a <thead>."""
    case, masks, evaluation, _ = converged
    record = evaluation.record
    solver = record.solver.model_copy(update={"steps": [step_row(step="1. priority 1", reached="0", status="optimal")]})
    html = render_html(record.model_copy(update={"solver": solver}), case, evaluation, masks)
    for page in (html, _approval_html(["boost.yaml:63"])):
        parser = HeaderRows()
        parser.feed(page)
        assert parser.loose == [] and parser.headed >= 1
    assert "<thead><tr><th>Term</th>" in html and "<thead><tr><th>step</th>" in html


def test_a_protocol_path_may_wrap_at_its_separators_only():
    """`.mono { word-break: break-all }` cut paths and hashes anywhere ("prostate.y / aml:49", "c- / shape"):
    a path now wraps after a separator, a hash only where it must."""
    from specc.report.html import path_breaks

    assert str(path_breaks("/tmp/a <b>/tg119/prostate.yaml:49")) == (
        "/<wbr>tmp/<wbr>a &lt;b&gt;/<wbr>tg119/<wbr>prostate.yaml:49")
    assert "break-all" not in style_sheet()
    weasyprint = pytest.importorskip("weasyprint")

    path = "/tmp/audit/repo/protocols/tg119/prostate.yaml:49"
    page = (f"<html><head><style>{style_sheet()}</style></head><body><table style='width: 40mm'><tr>"
            f"<td class='mono path'>{path_breaks(path)}</td></tr></table></body></html>")
    pdf = weasyprint.HTML(string=page).write_pdf()
    text = PdfReader(io.BytesIO(pdf)).pages[0].extract_text().split("page 1 of 1")[0]  # the style sheet's page footer
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    assert "".join(lines) == path and len(lines) > 1
    assert all(line.endswith("/") for line in lines[:-1]), lines


def _pdf_pages(html: str) -> list[str]:
    weasyprint = pytest.importorskip("weasyprint")
    return [page.extract_text() for page in PdfReader(io.BytesIO(weasyprint.HTML(string=html).write_pdf())).pages]


def test_a_heading_and_its_caption_stay_with_the_first_rows_of_their_table():
    """"Clinical goals" and its caption stood alone at a page's foot, the table on the next (audit s21/p1 F6)."""
    rows = "".join(f"<tr><td>row {n}</td><td>D95% &gt;= 75.6 Gy</td></tr>" for n in range(30))
    for space_mm in range(200, 262, 4):  # the heading at every height near the foot of the first page
        html = (f"<html><head><style>{style_sheet()}</style></head><body><div style='height: {space_mm}mm'></div>"
                "<section><h2>Clinical goals</h2><p class='muted caption'>Measured on the total dose of every voxel.</p>"
                f"<table><thead><tr><th>Structure</th><th>Goal</th></tr></thead><tbody>{rows}</tbody></table>"
                "</section></body></html>")
        (with_heading,) = [page for page in _pdf_pages(html) if "Clinical goals" in page]
        assert "row 0" in with_heading and "Measured on" in with_heading, space_mm


@pytest.fixture(scope="module")
def robust_pdf(converged, tmp_path_factory):
    """The report of a plan checked in six setup-error scenarios whose optimization log runs over several pages (a
    robust plan's term copies), printed: its record, its HTML and the PDF's path."""
    from specc.evaluate.record import RobustGoalRecord, RobustnessRecord, TermRecord
    from specc.report.write import html_to_pdf

    case, masks, evaluation, _ = converged
    record = evaluation.record
    labels = [f"{axis} {sign}5 mm" for axis in "xyz" for sign in "+-"]
    robust = RobustnessRecord(
        setup_error_mm=(5.0, 5.0, 5.0), model="static dose cloud", scenarios_mm=[(5.0, 0.0, 0.0)] * 6,
        scenario_labels=labels, structures=[TARGET],
        goals=[RobustGoalRecord(structure=goal.structure, text=goal.text, unit=goal.unit, nominal=goal.value,
                                scenario_values=[goal.value + shift for shift in (0.3, -0.4, 0.1, 0.2, -0.1, 0.5)],
                                worst=goal.value - 0.4, worst_scenario=1,
                                measured_status=goal.measured_status, status=goal.status)
               for goal in record.goals if goal.structure == TARGET],
    )
    terms = [TermRecord(label=f"quadratic_underdose {TARGET} below 62 Gy ({labels[n % 6]})", kind="quadratic_underdose",
                        source=f"/srv/clinic/protocols/site/prostate-robust.yaml:{40 + n // 6}", hard=False,
                        objective_contribution=0.0125, value=1.221, unit="Gy", satisfied=None,
                        detail="RMS shortfall below 62 Gy", scenario_mm=[5.0, 0.0, 0.0] if n % 6 else None)
             for n in range(72)]
    solver = record.solver.model_copy(update={"terms": terms})
    long_log = record.model_copy(update={"robustness": robust, "solver": solver})
    html = render_html(long_log, case, evaluation, masks)
    pdf = tmp_path_factory.mktemp("robust") / "report.pdf"
    html_to_pdf(html, pdf)
    return long_log, html, pdf


def test_a_table_run_onto_further_pages_repeats_its_column_names_there(robust_pdf):
    """The term table of a robust plan ran over five pages, all but the first without its header (audit s21/p1 F1)."""
    record, _, pdf = robust_pdf
    pages = [page.extract_text() for page in PdfReader(pdf).pages]
    with_terms = [text for text in pages if "prostate-robust.yaml:" in "".join(text.split())]
    assert len(with_terms) >= 2
    for text in with_terms:  # a header cell wraps its words onto lines of their own
        assert "Objectivecontribution" in "".join(text.split()) and "Protocol line" in text, text[:300]


def test_every_page_fits_the_printable_width(robust_pdf):
    """A Robustness table with six scenarios ran 9.5 mm into the right margin, to 2.5 mm from the paper's edge, where
    many printers cut (audit s21/p1 F3): nothing is drawn beyond the page margins (report.css: 12 mm either side)."""
    import pypdfium2 as pdfium  # the test extra's renderer: the pixels a printer gets
    _, _, pdf = robust_pdf
    margin_mm = float(re.search(r"@page \{[^}]*?margin: [\d.]+mm ([\d.]+)mm", str(style_sheet())).group(1))
    document = pdfium.PdfDocument(pdf)
    for number in range(len(document)):
        pixels = np.asarray(document[number].render(scale=3).to_pil().convert("L"))
        inked = np.flatnonzero((pixels < 250).any(axis=0))
        right_mm = (pixels.shape[1] - 1 - inked.max()) / pixels.shape[1] * 210
        left_mm = inked.min() / pixels.shape[1] * 210
        assert min(left_mm, right_mm) > margin_mm - 0.5, (number + 1, left_mm, right_mm)


def test_the_pdf_names_its_author_creation_time_and_protocol_version(robust_pdf):
    """A document system indexes title, author and date: the PDF had no author or date, and two versions of a
    protocol on one case had one title (audit s21/p1 F8). The keywords still hold the plan record alone."""
    record, _, pdf = robust_pdf
    info = PdfReader(pdf).metadata
    assert info["/Title"] == f"Plan report: {record.protocol.name} v{record.protocol.version} on {record.case.case_id}"
    assert info["/Author"] == "specc" and info["/Creator"] == f"specc {record.specc_version}"
    created = datetime.fromisoformat(record.created).astimezone(timezone.utc)
    assert info["/CreationDate"].startswith(created.strftime("D:%Y%m%d%H%M%S"))
    assert info["/Keywords"] == f"specc-plan-record {record_sha256(record)}"


def test_the_approval_pdf_is_titled_with_the_version_and_authored_by_its_reviewer(tmp_path):
    from specc.report.write import html_to_pdf

    html_to_pdf(_approval_html(["boost.yaml:63"]), tmp_path / "approval.pdf")
    info = PdfReader(tmp_path / "approval.pdf").metadata
    assert info["/Title"] == "Approved: Pelvis v1.2.0 on p0" and info["/Author"] == "Dr. A. Example"
    assert info["/CreationDate"].startswith("D:20261128091502")


def test_the_report_templates_are_compiled_once_per_process(monkeypatch: pytest.MonkeyPatch, converged) -> None:
    """Each report built a new jinja2 environment, which compiled report.html and its parts again: 0.06 s of every
    report a cohort or a --watch session writes. The environment is kept, and a report after the first (the
    fixture's) compiles nothing."""
    from jinja2 import Environment

    case, masks, evaluation, _ = converged
    compiled: list[str | None] = []
    compile_source = Environment.compile

    def spy(self: Environment, source: str, name: str | None = None, filename: str | None = None, raw: bool = False,
            defer_init: bool = False) -> object:
        compiled.append(name)
        return compile_source(self, source, name, filename, raw, defer_init)

    monkeypatch.setattr(Environment, "compile", spy)
    render_html(evaluation.record, case, evaluation, masks)
    assert compiled == []
