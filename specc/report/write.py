"""Writing report.html and, on request, report.pdf from the same HTML."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from specc.errors import SpeccError
from specc.evaluate import PlanEvaluation, PlanRecord
from specc.report.html import render_html

if TYPE_CHECKING:
    from specc.case import Case


class ReportError(SpeccError):
    """The report could not be written (e.g. WeasyPrint or its system libraries are missing)."""


def html_to_pdf(html: str, path: Path) -> None:
    """The page printed by WeasyPrint (a clear error when it or its system libraries are missing)."""
    try:
        import weasyprint
    except (ImportError, OSError) as error:  # OSError: Pango/HarfBuzz shared libraries not found
        raise ReportError(
            f"cannot write {path}: WeasyPrint is not usable ({error}). Install it with its system libraries "
            "(https://doc.courtbouillon.org/weasyprint/stable/first_steps.html), or leave out --pdf."
        ) from None
    document = weasyprint.HTML(string=html, base_url=str(path.parent))
    try:
        document.write_pdf(path)
    except OSError as error:
        raise ReportError(f"cannot write {path}: {error.strerror or error}") from error


def write_page(out_dir: str | Path, stem: str, html: str, pdf: bool) -> list[Path]:
    """Write `stem`.html (and `stem`.pdf when `pdf`) into `out_dir`; returns the paths written."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ReportError(f"cannot create the output folder {out}: {error.strerror}") from None
    html_path = out / f"{stem}.html"
    try:
        html_path.write_text(html, encoding="utf-8")
    except OSError as error:  # a full disk, a folder without write permission: say which file and why
        raise ReportError(f"cannot write {html_path}: {error.strerror or error}") from error
    written = [html_path]
    if pdf:
        pdf_path = out / f"{stem}.pdf"
        html_to_pdf(html, pdf_path)
        written.append(pdf_path)
    return written


def write_report(
    out_dir: str | Path,
    record: PlanRecord,
    case: Case,
    evaluation: PlanEvaluation,
    masks: Mapping[str, np.ndarray],
    pdf: bool = False,
) -> list[Path]:
    """Write report.html (and report.pdf when `pdf`) into `out_dir`; returns the paths written."""
    return write_page(out_dir, "report", render_html(record, case, evaluation, masks), pdf)
