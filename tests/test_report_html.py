"""The HTML/PDF report: agreement with plan.json, unconverged labelling, escaping, self-containment."""

from __future__ import annotations

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
from evaluate_fakes import masks_of, protocol, solve_result, synthetic_case

from specc.evaluate import Review, evaluate_plan
from specc.report import ReportError, render_html, write_report
from specc.report.figures import fluence_figure, slices_figure
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


def test_each_printed_page_names_the_case_and_protocol(converged):
    _, _, evaluation, html = converged
    record = evaluation.record
    expected = f"Case {record.case.case_id} · {record.protocol.name} v{record.protocol.version}"
    assert f'<p class="running-title">{escape(expected)}</p>' in html
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
