"""The PDFs specc writes, read back as text (pypdf): the paper a physician signs must carry what the HTML carries.

WeasyPrint draws each page from the HTML, and a print rule (a running header, a page break, a hidden element) can
lose on paper what the browser shows; these tests read every page of report.pdf, cohort.pdf and a cohort
comparison's compare.pdf, of a converged plan and of one whose solver stopped at its iteration limit (the 10 mm
TG-119 C-shape, 5 beams), and compare them with the HTML written beside them."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from functools import cache
from html.parser import HTMLParser
from pathlib import Path

import pytest
from pypdf import PageObject, PdfReader
from typer.testing import CliRunner

import specc.cli.plan  # noqa: F401  (registers the commands)
from specc.case.phantoms import build_phantom
from specc.cli.app import app
from specc.protocol import load_protocol
from specc.report.cohort_page import write_cohort_page
from specc.report.html import style_sheet

PROTOCOL = Path(__file__).parent.parent / "protocols" / "tg119" / "c-shape.yaml"
RUNS = ("converged", "starved")
NOT_APPROVED = "NOT APPROVED in this report: see approval.html beside it"
POINTS_PER_MM = 72 / 25.4
# The page margins of every page specc prints (report.css): the running headers and footers are drawn in them.
PAGE_MARGINS = re.search(r"@page \{[^}]*?margin: ([\d.]+)mm [\d.]+mm ([\d.]+)mm", style_sheet())
TOP_MM, BOTTOM_MM = map(float, PAGE_MARGINS.groups())
runner = CliRunner()


class ElementText(HTMLParser):
    """The text of each `tag` element whose attribute `name` holds `value` (a class among its classes, or the id)."""

    def __init__(self, tag: str, name: str, value: str) -> None:
        super().__init__()
        self.tag, self.name, self.value = tag, name, value
        self.texts: list[str] = []
        self._depth = 0  # open `tag` elements inside the matched one, itself included

    def handle_starttag(self, tag, attrs):
        if tag != self.tag:
            return
        if self._depth:
            self._depth += 1
        elif self.value in (dict(attrs).get(self.name) or "").split():
            self.texts.append("")
            self._depth = 1

    def handle_endtag(self, tag):
        if tag == self.tag and self._depth:
            self._depth -= 1

    def handle_data(self, data):
        if self._depth:
            self.texts[-1] += data


def element_texts(html_path: Path, tag: str, name: str, value: str) -> list[str]:
    parser = ElementText(tag, name, value)
    parser.feed(html_path.read_text(encoding="utf-8"))
    return parser.texts


@dataclass(frozen=True)
class Page:
    """A printed page's text as a reader copying it gets it, and the text drawn in its top and bottom margins (what
    the page's running header and footer say; the body's text cannot stand in for them)."""

    text: str
    top: str
    bottom: str


def _read(page: PageObject) -> Page:
    top_edge = float(page.mediabox.top) - TOP_MM * POINTS_PER_MM
    bottom_edge = float(page.mediabox.bottom) + BOTTOM_MM * POINTS_PER_MM
    top: list[str] = []
    bottom: list[str] = []

    def place(text, cm, tm, font, size) -> None:
        baseline = tm[4] * cm[1] + tm[5] * cm[3] + cm[5]  # in points from the page's foot
        if baseline > top_edge:
            top.append(text)
        elif baseline < bottom_edge:
            bottom.append(text)

    text = page.extract_text(visitor_text=place)
    return Page(text, " ".join(top), " ".join(bottom))


@cache
def pages(pdf: Path) -> list[Page]:
    """Each page of `pdf` (read once: the figures take seconds)."""
    return [_read(page) for page in PdfReader(pdf).pages]


def squeezed(text: str) -> str:
    """`text` without whitespace: a table cell wraps its words (and a file path anywhere) onto lines of its own."""
    return "".join(text.split())


def says(drawn: str, text: str) -> bool:
    """Whether `drawn` holds `text`, however its lines wrap (a margin box shared by a header and a NOT CONVERGED
    line is narrow)."""
    return squeezed(text) in squeezed(drawn)


def on_one_page(text: str, document: list[Page]) -> bool:
    return any(says(page.text, text) for page in document)


def _invoke(*args: str) -> None:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> dict[str, Path]:
    """Per run: the `specc plan --pdf` folder and a `specc cohort` folder with cohort.pdf (written as `specc cohort
    --pdf` writes it, without its case's report.pdf again: each takes seconds); and the `specc compare --pdf` of the
    two cohorts. The starved protocol stops its solver after 20 iterations (NOT CONVERGED)."""
    folder = tmp_path_factory.mktemp("pdf")
    case = folder / "c-shape.h5"
    build_phantom("c-shape", beams=5, grid_mm=10.0).save(case)
    starved = folder / "c-shape-starved.yaml"
    stop = "optimization:\n  solver: {max_iterations: 20}\n"
    starved.write_text(PROTOCOL.read_text().replace("optimization:\n", stop, 1))
    folders = {}
    for name, protocol in zip(RUNS, (PROTOCOL, starved)):
        folders[name] = folder / name
        _invoke("plan", str(protocol), "--case", str(case), "--out", str(folders[name]), "--pdf", "-q")
        folders[f"cohort-{name}"] = folder / f"cohort-{name}"
        _invoke("cohort", str(protocol), str(case), "--out", str(folders[f"cohort-{name}"]), "-q")
        write_cohort_page(folders[f"cohort-{name}"] / "cohort.csv", load_protocol(protocol), pdf=True)
    assert json.loads((folders["starved"] / "plan.json").read_text())["converged"] is False
    folders["compare"] = folder / "compare"
    _invoke("compare", str(folders["cohort-converged"]), str(folders["cohort-starved"]),
            "--out", str(folders["compare"]), "--pdf")
    return folders


@pytest.mark.parametrize("run", RUNS)
def test_every_page_of_a_plan_report_names_its_plan_and_says_it_is_not_approved(written, run) -> None:
    """The case and protocol version at the top of every page (a loose page is still of one plan), the plan.json
    it was rendered from in the document information, "NOT APPROVED" at the bottom, and on every page of a plan
    whose solver did not converge, NOT CONVERGED."""
    folder = written[run]
    record = json.loads((folder / "plan.json").read_text())
    digest = hashlib.sha256((folder / "plan.json").read_bytes()).hexdigest()
    assert PdfReader(folder / "report.pdf").metadata["/Keywords"] == f"specc-plan-record {digest}"
    document = pages(folder / "report.pdf")
    assert len(document) >= 2  # the goals on the first page, the DVH section from the second
    (identity,) = element_texts(folder / "report.html", "p", "class", "running-title")
    named = record["case"]["case_id"], record["protocol"]["name"], record["protocol"]["version"]
    assert identity.startswith("Case {} · {} v{}".format(*named)), identity
    for number, page in enumerate(document, start=1):
        assert says(page.top, identity), (number, page)
        assert says(page.bottom, NOT_APPROVED), (number, page)
        assert says(page.bottom, f"page {number} of {len(document)}"), (number, page)
        assert says(page.top, "NOT CONVERGED: not a usable plan") is (run == "starved"), (number, page)
    assert ("NOT CONVERGED" in "".join(page.text for page in document)) is (run == "starved")


@pytest.mark.parametrize("run", RUNS)
def test_every_goal_row_of_the_html_is_in_the_pdf_with_its_value_and_verdict(written, run) -> None:
    folder = written[run]
    record = json.loads((folder / "plan.json").read_text())
    rows = element_texts(folder / "report.html", "tr", "class", "goal")
    assert len(rows) == len(record["goals"]) == 3
    document = pages(folder / "report.pdf")
    for row, goal in zip(rows, record["goals"]):
        verdict = "NOT CONVERGED" if run == "starved" else goal["status"].replace("_", " ").upper()
        # the row as the HTML has it: priority, structure, goal, variation, measured value, status, protocol line
        shown = re.findall(rf"([\d.]+) {re.escape(goal['unit'])}\s+{verdict}", " ".join(row.split()))
        assert len(shown) == 1 and float(shown[0]) == pytest.approx(goal["value"], abs=0.005), row
        assert on_one_page(row, document), (row, document[0].text)


@pytest.mark.parametrize("run", RUNS)
def test_the_review_block_for_signing_is_whole_on_one_page(written, run) -> None:
    folder = written[run]
    (block,) = element_texts(folder / "report.html", "section", "id", "review")
    assert all(line in block for line in ("NOT APPROVED in this report", "Reviewer:", "Date:", "Signature:"))
    assert on_one_page(block, pages(folder / "report.pdf")), block


@pytest.mark.parametrize("run", RUNS)
def test_every_page_of_the_cohort_page_names_the_cohort_and_its_unconverged_cases(written, run) -> None:
    folder = written[f"cohort-{run}"]
    (identity,) = element_texts(folder / "cohort.html", "p", "class", "running-title")
    # two runs over one cohort are told apart on every page by when the page was written
    assert re.fullmatch(r"Cohort: TG-119 C-shape v1\.1\.1 · 1 case · written \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC",
                        identity), identity
    info = PdfReader(folder / "cohort.pdf").metadata
    assert info["/Author"] == "specc" and info["/Creator"].startswith("specc ")
    assert info["/CreationDate"].startswith("D:" + re.sub(r"\D", "", identity.split("written ")[1]))
    document = pages(folder / "cohort.pdf")
    for number, page in enumerate(document, start=1):
        assert says(page.top, identity), (number, page)
        assert says(page.top, "NOT CONVERGED: c-shape") is (run == "starved"), (number, page)
    rows = element_texts(folder / "cohort.html", "tr", "class", "cohort-goal")
    rows += element_texts(folder / "cohort.html", "tr", "class", "cohort-case")
    assert len(rows) == 3 + 1  # the protocol's three goals; the one case
    for row in rows:
        assert on_one_page(row, document), (row, [page.text for page in document])


def test_every_page_of_a_cohort_comparison_names_the_unconverged_cohort_case(written) -> None:
    folder = written["compare"]
    (identity,) = element_texts(folder / "compare.html", "p", "class", "running-title")
    assert re.fullmatch(r"Cohort comparison · cohort-converged vs cohort-starved · compared \d{4}-\d\d-\d\d "
                        r"\d\d:\d\d:\d\d UTC", identity), identity
    document = pages(folder / "compare.pdf")
    for number, page in enumerate(document, start=1):
        assert says(page.top, identity), (number, page)
        assert says(page.top, "NOT CONVERGED: cohort-starved: c-shape"), (number, page)
