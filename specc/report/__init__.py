"""Report stage: the plan report as self-contained HTML, and PDF through WeasyPrint."""

from __future__ import annotations

from specc.report.html import render_html
from specc.report.write import ReportError, write_report

__all__ = ["ReportError", "render_html", "write_report"]
