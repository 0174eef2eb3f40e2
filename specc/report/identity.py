"""What ties the files of a plan folder to the run that wrote them: the plan record's JSON.

`specc plan` (and `specc check`) write the record as plan.json, and a plan embeds the same
text in result.h5 (dataset `plan_json`); the report carries the SHA-256 of that text, so that
report.html, report.pdf and result.h5 can each be shown to be of the plan.json beside them. An approval binds the
files by hash, and its goal counts and deviation gate come from plan.json: a report or a dose
copied in from another run must be found before a physician signs under the wrong numbers
(`specc.approval`).

The report names the record twice: `<meta name="specc-plan-record">`, what report.html is
read for, and in its keywords, which WeasyPrint copies into report.pdf's document information
(a meta of another name reaches the PDF only with WeasyPrint's `custom_metadata`).
"""

from __future__ import annotations

import hashlib
import re
import zlib
from html.parser import HTMLParser
from pathlib import Path

from specc.evaluate import PlanRecord

# The files of a plan folder (specc plan / specc check write those that apply): what an approval
# binds (`specc.approval`), and what a new plan into the folder replaces (`specc.pipeline.remove_earlier_plan`).
PLAN_JSON, REPORT_HTML, REPORT_PDF, RESULT_H5, SEGMENTS_JSON = (
    "plan.json", "report.html", "report.pdf", "result.h5", "segments.json"
)
PLAN_FOLDER_FILES = (PLAN_JSON, REPORT_HTML, REPORT_PDF, RESULT_H5, SEGMENTS_JSON)
RECORD_META = "specc-plan-record"
# What a staged write (`specc.export.staging`: exports, plan and check folders) names its hidden staging path:
# `.NAME.TOKEN.partial` beside its destination, `.specc-WHAT-TOKEN.partial` inside a folder. One a kill -9 left
# is no plan of any run: readers of plan folders skip it (cohort pages) or refuse to bind it (approvals).
STAGING_SUFFIX = ".partial"


def is_staging_name(name: str) -> bool:
    """Whether a file or folder name is a staged write's (`STAGING_SUFFIX`)."""
    return name.startswith(".") and name.endswith(STAGING_SUFFIX)
_PDF_KEYWORDS = re.compile(rb"/Keywords\s*\(" + RECORD_META.encode() + rb" ([0-9a-f]{64})\)")
# A compressed object stream: where WeasyPrint (pydyf) puts the document information.
_PDF_OBJECT_STREAM = re.compile(rb"<<[^>]*/Type\s*/ObjStm[^>]*>>\s*stream\r?\n")


def record_json(record: PlanRecord) -> str:
    """plan.json's text: the one serialisation result.h5 embeds and the report's digest is of."""
    return record.model_dump_json(indent=2)


def record_sha256(record: PlanRecord) -> str:
    """The SHA-256 of plan.json as written (its UTF-8 bytes), which the report carries."""
    return hashlib.sha256(record_json(record).encode("utf-8")).hexdigest()


class _RecordMeta(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.named: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "meta" and values.get("name") == RECORD_META:
            self.named.append(values.get("content") or "")


def html_record_sha256s(page: Path | bytes) -> list[str]:
    """The record SHA-256s a report page (the file, or its bytes as a caller read them) names: one for a report
    specc wrote, none for one written before reports named their record. Its bytes, for an approval judges the very
    bytes it hashes (`specc.approval.PlanFiles`), not the file read again."""
    parser = _RecordMeta()
    parser.feed(_bytes(page).decode("utf-8", errors="replace"))
    return sorted(set(parser.named))


def pdf_record_sha256s(document: Path | bytes) -> list[str]:
    """The record SHA-256s in a report PDF's keywords (the file, or its bytes as a caller read them, as for
    `html_record_sha256s`), looked for in the document information as written and inside compressed object streams,
    where WeasyPrint writes it."""
    data = _bytes(document)
    found = {match.group(1) for match in _PDF_KEYWORDS.finditer(data)}
    view = memoryview(data)
    for stream in _PDF_OBJECT_STREAM.finditer(data):
        try:
            text = zlib.decompressobj().decompress(view[stream.end():])
        except zlib.error:
            continue
        found.update(match.group(1) for match in _PDF_KEYWORDS.finditer(text))
    return sorted(digest.decode("ascii") for digest in found)


def _bytes(file: Path | bytes) -> bytes:
    return file if isinstance(file, bytes) else file.read_bytes()
