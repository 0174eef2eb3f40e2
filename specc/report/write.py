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


def html_to_pdf(html: str, path: Path, named: Path | None = None) -> None:
    """The page printed by WeasyPrint (a clear error when it or its system libraries are missing). `named`: the
    file the errors name, where it differs from `path` (a staged plan's: where the file goes once whole)."""
    named = path if named is None else named
    try:
        import weasyprint
    except (ImportError, OSError) as error:  # OSError: Pango/HarfBuzz shared libraries not found
        raise ReportError(
            f"cannot write {named}: WeasyPrint is not usable ({error}). Install it with its system libraries "
            "(https://doc.courtbouillon.org/weasyprint/stable/first_steps.html), or leave out --pdf."
        ) from None
    document = weasyprint.HTML(string=html, base_url=str(path.parent))
    try:
        document.write_pdf(path)
    except OSError as error:
        raise ReportError(f"cannot write {named}: {error.strerror or error}") from error


def write_page(out_dir: str | Path, stem: str, html: str, pdf: bool, named_in: str | Path | None = None) -> list[Path]:
    """Write `stem`.html (and `stem`.pdf when `pdf`) into `out_dir`; returns the paths written. `named_in`: the
    folder the errors name, where it differs from `out_dir` (a plan staged beside its folder, `specc.pipeline`)."""
    out = Path(out_dir)
    shown = out if named_in is None else Path(named_in)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ReportError(f"cannot create the output folder {out}: {error.strerror}") from None
    html_path = out / f"{stem}.html"
    try:
        html_path.write_text(html, encoding="utf-8")
    except OSError as error:  # a full disk, a folder without write permission: say which file and why
        raise ReportError(f"cannot write {shown / html_path.name}: {error.strerror or error}") from error
    written = [html_path]
    if pdf:
        pdf_path = out / f"{stem}.pdf"
        html_to_pdf(html, pdf_path, shown / pdf_path.name)
        written.append(pdf_path)
    return written


def write_report(
    out_dir: str | Path,
    record: PlanRecord,
    case: Case,
    evaluation: PlanEvaluation,
    masks: Mapping[str, np.ndarray],
    pdf: bool = False,
    named_in: str | Path | None = None,
) -> list[Path]:
    """Write report.html (and report.pdf when `pdf`) into `out_dir`; returns the paths written. `named_in`: the
    folder errors name (`write_page`)."""
    return write_page(out_dir, "report", render_html(record, case, evaluation, masks), pdf, named_in)
