"""The report of a step-and-shoot plan: the fluence optimization and the segment-weight fit, each whole under its own name.

plan.json's `solver` of such a plan is the segment-weight fit and `delivery.fluence_solver` the fluence optimization.
The report showed the first as the optimization log (audit b4 F4: a 1.05 s 'Solve time' beside the terminal's 24.55 s
solve, and the fall-back note pointing at the weight fit's message)."""

from __future__ import annotations

from html import unescape
from html.parser import HTMLParser
from pathlib import Path

import pytest
from markupsafe import escape

from evaluate_fakes import protocol, synthetic_case
from specc.evaluate import PlanRecord, SolverRecord
from specc.pipeline import plan

TERMS = [
    "{kind: quadratic_underdose, structure: Target, dose: 60 Gy, weight: 10}",
    "{kind: quadratic_overdose, structure: Target, dose: 61 Gy, weight: 10}",
    "{kind: quadratic_overdose, structure: Organ, dose: 10 Gy, weight: 1}",
    "{kind: smoothness, weight: 0.01}",
]
GOALS = {"Target": ["D95% >= 57 Gy", "D5% <= 64 Gy"], "Organ": ["Mean <= 30 Gy"]}
NORMALIZED = "{structure: Target, metric: D95%, percent: 100}"


class Tables(HTMLParser):
    """The rows (cell texts) of every table, by the table's id, and the header cells of every table."""

    def __init__(self) -> None:
        super().__init__()
        self.by_id: dict[str, list[list[str]]] = {}
        self.headers: list[str] = []
        self._rows: list[list[str]] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self._rows = self.by_id.setdefault(dict(attrs).get("id") or f"#{len(self.by_id)}", [])
        elif tag == "tr" and self._rows is not None:
            self._rows.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self._rows:
            text = " ".join("".join(self._cell).split())
            self._rows[-1].append(text)
            if tag == "th":
                self.headers.append(text)
            self._cell = None
        elif tag == "table":
            self._rows = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def _section(html: str, name: str) -> Tables:
    start = html.index(f'<section id="{name}"')
    tables = Tables()
    tables.feed(html[start: html.index("</section>", start)])
    return tables


def _summary(tables: Tables, table_id: str) -> dict[str, str]:
    return {row[0]: row[1] for row in tables.by_id[table_id]}


def _shows(summary: dict[str, str], solve: SolverRecord) -> None:
    """The summary table is of `solve`: its solver, message, iterations and solve time."""
    assert summary["Solver"] == solve.solver
    assert summary["Message"].startswith(" ".join(solve.message.split()))
    assert summary["Iterations"] == str(solve.iterations)
    assert summary["Solve time"] == f"{solve.solve_time_s:.2f} s"


def _planned(tmp_path: Path, delivery: str, normalization: str = "") -> tuple[PlanRecord, str]:
    outcome = plan(protocol(GOALS, terms=TERMS, delivery=delivery, normalization=normalization), synthetic_case(),
                   tmp_path)
    assert outcome.succeeded
    return outcome.record, (tmp_path / "report.html").read_text()


@pytest.mark.parametrize("normalization", ["", NORMALIZED])
def test_the_optimization_log_is_the_fluences_and_the_delivery_section_has_the_weight_fit(tmp_path, normalization):
    record, html = _planned(tmp_path, "{technique: step_and_shoot, intensity_levels: 4}", normalization)
    fluence, weights = record.delivery.fluence_solver, record.solver
    assert weights.message.startswith("segment weights (") and fluence.message != weights.message

    log = _section(html, "optimization")
    _shows(_summary(log, "solver"), fluence)
    assert "On the optimized fluence's dose" in log.headers and "On the final dose" not in log.headers
    assert str(escape(weights.message)) not in html[html.index('<section id="optimization"'):]
    # its term rows: the fluence's contributions (smoothness included, which the weight fit leaves out)
    (terms,) = [rows for rows in log.by_id.values() if rows[0][0] == "Term"]
    assert [row[3] for row in terms[1:]] == [f"{term.objective_contribution:.6f}" for term in fluence.terms]

    delivery = _section(html, "delivery")
    weight_fit = _summary(delivery, "segment-weight-solver")
    _shows(weight_fit, weights)
    assert "Segment-weight fit" in html and "On the delivered dose" in delivery.headers
    (terms,) = [rows for rows in delivery.by_id.values() if rows[0][0] == "Term"]
    assert [row[0] for row in terms[1:]] == [term.label for term in weights.terms]
    assert terms[1][3] == f"{weights.terms[0].objective_contribution:.6f}"
    if normalization:
        factor = f"{record.normalization.factor:.4f}"
        assert weight_fit["Message"].endswith(f"(of the segment weights, before normalization by {factor})")
        assert _summary(log, "solver")["Message"].endswith("(of the optimized fluence, before normalization)")
        assert "normalized by the protocol's rule with its own factor" in " ".join(unescape(html).split())


def test_segments_kept_as_sequenced_show_the_terms_on_the_delivered_dose_and_no_weight_fit(tmp_path):
    record, html = _planned(tmp_path, "{technique: step_and_shoot, intensity_levels: 4, segment_weights: as_sequenced}")
    log = _section(html, "optimization")
    _shows(_summary(log, "solver"), record.delivery.fluence_solver)
    delivery = _section(html, "delivery")
    assert "segment-weight-solver" not in delivery.by_id and "Segment weights: as sequenced" in html
    (terms,) = [rows for rows in delivery.by_id.values() if rows[0][0] == "Term"]
    assert terms[0][4] == "On the delivered dose"
    assert [row[4].split()[0] for row in terms[1:]] == [f"{term.value:.3f}" for term in record.solver.terms]


def test_a_plan_without_segments_keeps_its_one_solve_in_the_optimization_log(tmp_path):
    record, html = _planned(tmp_path, "")
    log = _section(html, "optimization")
    _shows(_summary(log, "solver"), record.solver)
    assert "On the final dose" in log.headers and "Segment-weight fit" not in html
