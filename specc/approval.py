"""A physician's approval of a plan, recorded beside it and bound to the files approved.

The report leaves room to sign on paper; many clinics sign electronically. `approve` writes
approval.json and approval.html into the plan folder: who approved, when, in what role, which
goals were accepted although they failed or could not be measured (and why), and the SHA-256
of every file of the plan as it was reviewed. `verify` recomputes those hashes, so that a
report, a dose or segments changed after approval is found, not trusted; a plan file that
appeared since (a report.pdf or segments.json copied in from another plan) is found too, for
an exporter would take it for this plan's.

The approval binds itself as well: approval.json records the SHA-256 of approval.html (and
approval.pdf), the page a person reads and may print, and the SHA-256 of its own content, so a
reviewer's name or a goal count edited in either shows; its goal counts, protocol and case are
checked against plan.json. These are hashes, not signatures: they find an edit, not a forger
who recomputes them.

The files bound must be of one run, for the approval's goal counts and its deviation gate come
from plan.json: result.h5 must embed plan.json's record, report.html and report.pdf must name
its SHA-256 (`specc.report.identity`), segments.json must be of result.h5's plan, its segments
delivering result.h5's fluence (checked on the plan's case, as every export checks it: weight moved
between a beam's segments keeps their count and summed weight). A report or a dose copied in from
another plan is refused at approval, and found by `verify` after it. Without the plan's case the
segments' fluence cannot be checked: `approve` then refuses (give the case), `verify` says so.

What cannot be approved: a plan whose solver did not converge (never a usable plan), and a
plan with failed or unmeasured goals unless the reviewer writes why they are accepted. A plan
folder is approved once: a changed plan is a new plan, planned into a new folder.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from pydantic import BaseModel, ValidationError

from specc import __version__
from specc.errors import CaseError, SpeccError, validation_text
from specc.evaluate import PlanRecord
from specc.export import read_result
from specc.export.result_file import PlanResult, ResultError
from specc.export.segments import read_segments
from specc.hashing import file_sha256
from specc.protocol import ProtocolError, load_protocol
from specc.protocol.models import SAME_CONTENT
from specc.report.compare import FORMATTING_ONLY, NOT_TOLD, CompareError, Notice, content_difference, read_plan_file
from specc.report.html import STATUS_LABELS, environment, style_sheet
from specc.report.identity import (
    PLAN_FOLDER_FILES, PLAN_JSON, RECORD_META, REPORT_HTML, REPORT_PDF, RESULT_H5, SEGMENTS_JSON, html_record_sha256s,
    is_staging_name, pdf_record_sha256s,
)
from specc.report.write import write_page

APPROVAL_JSON = "approval.json"
# The approval's own pages, bound by approval.json beside the plan's files.
APPROVAL_PAGES = ("approval.html", "approval.pdf")
_DEVIATING = ("fail", "not_evaluated")
# Fields of approval.json (its own, or a deviation's) added after the first approvals, by the default an approval
# written before reads them as: left out of `Approval.content_sha256` while they hold it.
_ADDED_LATER: dict[str, object] = {"priority": None, "source": None, "warnings": [], "outside_hot_spot": None}


class ApprovalError(SpeccError):
    """The plan cannot be approved, or an approval does not hold."""


class AcceptedDeviation(BaseModel):
    structure: str
    goal: str
    value: float | None
    unit: str
    status: str
    scenario: str = ""  # a setup-error scenario's label, for a goal that fails only there
    # What was accepted at which priority, and where the protocol states it (audit s18/b1 F7: a must-goal read as
    # any other); None in approvals written before 2026-11-28 (`_ADDED_LATER`).
    priority: int | None = None
    source: str | None = None  # protocol file:line


class Approval(BaseModel):
    format: str = "specc-approval"
    version: int = 2  # 1: neither its own content nor approval.html bound (cannot be verified)
    decision: str  # "approved" (a plan specc made) or "reviewed" (a plan check of another system's dose)
    reviewer: str
    role: str
    time_utc: str  # ISO 8601
    specc_version: str
    protocol: dict[str, str]  # name, version, sha256
    case: dict[str, str]  # case_id, sha256
    plan_created: str
    dose_source: str | None  # a checked external dose: its file and SHA-256
    goals: dict[str, int]  # status -> count, as reported
    accepted_deviations: list[AcceptedDeviation]
    reason: str | None  # why the deviations are accepted
    files: dict[str, str]  # file name -> SHA-256 at approval
    pages: dict[str, str] = {}  # approval.html (approval.pdf) -> SHA-256 as written
    # What the plan's record warned of (`PlanRecord.warnings`) and its hot spot outside the targets, shown on the
    # approval page above the deviations: the sign-off keeps what the signer was told first (audit s18/b1 F7).
    warnings: list[str] = []
    outside_hot_spot: str | None = None
    sha256: str = ""  # of every other field (`content_sha256`): an edit to approval.json shows

    def content_sha256(self) -> str:
        """The SHA-256 of the approval's content, all fields but `sha256`, as canonical JSON. A field added since
        approvals were first written is left out where it holds its default (`_ADDED_LATER`), so that an earlier
        approval.json, read with the default, hashes as it was written and still verifies."""
        content = self.model_dump(mode="json", exclude={"sha256"})
        for entry in (content, *content["accepted_deviations"]):
            for key, default in _ADDED_LATER.items():
                if key in entry and entry[key] == default:
                    del entry[key]
        text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class Verification:
    approval: Approval
    changed: list[str]  # approved files (and approval pages) whose content differs now
    missing: list[str]  # approved files no longer there
    appeared: list[str]  # plan files (or approval pages) there now that were not approved
    # Every other break, one phrase each: approval.json edited or saying other than plan.json, plan.json no plan record
    # (or unreadable), a bound file unreadable, a plan file not of plan.json's run (`of_one_run`).
    disagreements: list[str]
    # What could not be checked, and why (segments.json's fluence without the plan's case; whether the files are of one
    # run, without a plan record or a file to read): not a break of the approval, which bound the files' SHA-256, but
    # not vouched for by this verification either.
    unchecked: list[str] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not (self.changed or self.missing or self.appeared or self.disagreements)

    @property
    def problems(self) -> list[str]:
        """Everything that breaks the approval, one phrase each."""
        return ([f"{name} changed" for name in self.changed] + [f"{name} missing" for name in self.missing]
                + [f"{name} appeared" for name in self.appeared] + self.disagreements)


@dataclass(frozen=True)
class Approved:
    """What `approve` did: the approval, the files written, and why the plan may not be of its protocol files as
    they are now (`protocol_changed_since`; None where they hold its bytes or cannot be read): what the signer reads
    last, judged on the plan record the approval was made from, not on plan.json read again."""

    approval: Approval
    written: list[Path]
    protocol_changed: Notice | None


def approve(
    folder: str | Path, reviewer: str, role: str, reason: str | None = None, pdf: bool = False,
    case: str | Path | None = None,
) -> Approved:
    """Approve the plan in `folder` (see module docstring). `case`: the plan's case where it is no longer at the path
    result.h5 records (needed to check segments.json's fluence)."""
    folder = Path(folder)
    # Read once: the record judged here, the one the other files are checked against and the bytes bound are one.
    record, plan_sha256 = read_plan_file(folder / PLAN_JSON)
    existing = folder / APPROVAL_JSON
    if existing.exists():
        earlier = _read_approval(existing)
        raise ApprovalError(
            f"{folder}: already {earlier.decision} by {earlier.reviewer} at {earlier.time_utc}; a changed plan is a "
            "new plan: plan it into a new folder"
        )
    if not reviewer.strip():
        raise ApprovalError("the reviewer's name is empty")
    leftovers = sorted(path.name for path in folder.iterdir() if path.is_dir() and is_staging_name(path.name))
    if leftovers:  # staged inside the folder (a mount point) by a run killed outright: docs/report.md
        raise ApprovalError(
            f"{folder}: holds {', '.join(leftovers)}, left by a run killed while it wrote its files (not this plan's; "
            "it may hold another run's whole plan): remove it, then approve"
        )
    # Each read once, as plan.json: what `of_one_run` judges and what is bound are the same bytes, not a file swapped
    # in (and back) meanwhile. Hashed again on disk before anything is written (`_moved_since`).
    files = PlanFiles.read(folder, PLAN_FOLDER_FILES)
    if files.unreadable:
        raise ApprovalError("; ".join(files.unreadable.values()))
    run = of_one_run(files, record, plan_sha256, case)
    if run.foreign:
        raise ApprovalError(
            f"{folder}: its files are not of one run: {'; '.join(run.foreign)}; approve a plan folder as specc wrote "
            "it (plan it again into a new folder)"
        )
    if run.unchecked:
        raise ApprovalError(f"{folder}: {'; '.join(run.unchecked)}")
    if not record.converged:
        raise ApprovalError(
            f"{folder}: NOT CONVERGED ({record.why_not_converged()}): a plan that did not converge cannot be approved"
        )
    deviations = _deviations(record)
    if deviations and not (reason and reason.strip()):
        listed = "; ".join(f"{d.structure} {d.goal}: {STATUS_LABELS.get(d.status, d.status)}"
                           + (f" ({d.scenario})" if d.scenario else "") for d in deviations)
        raise ApprovalError(
            f"{folder}: {len(deviations)} goals are not met or not measured ({listed}); "
            "to approve the plan as it is, say why with --accept-deviations"
        )
    source = record.dose_source
    approval = Approval(
        decision="reviewed" if source is not None else "approved",
        reviewer=reviewer.strip(),
        role=role.strip(),
        time_utc=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        specc_version=__version__,
        protocol={"name": record.protocol.name, "version": record.protocol.version, "sha256": record.protocol.sha256},
        case={"case_id": record.case.case_id, "sha256": record.case.sha256},
        plan_created=record.created,
        dose_source=f"{source.file} (sha256 {source.sha256})" if source is not None else None,
        goals=record.goal_counts(),
        accepted_deviations=deviations,
        reason=reason.strip() if deviations and reason else None,
        files={PLAN_JSON: plan_sha256, **files.sha256s},
        warnings=list(record.warnings),
        outside_hot_spot=record.outside_hot_spot,
    )
    css = style_sheet()
    html = environment().get_template("approval.html").render(approval=approval, status_labels=STATUS_LABELS, css=css)
    moved = _moved_since(files, plan_sha256)
    if moved:
        raise ApprovalError(f"{'; '.join(moved)} while the plan was being approved: approve again")
    pages = write_page(folder, "approval", html, pdf)
    approval = approval.model_copy(update={"pages": {page.name: file_sha256(page) for page in pages}})
    approval = approval.model_copy(update={"sha256": approval.content_sha256()})
    # Written last: approval.json is what makes the folder approved, and it binds the pages.
    existing.write_text(approval.model_dump_json(indent=2), encoding="utf-8")
    return Approved(approval, [existing, *pages], protocol_changed_since(record))


def _moved_since(files: PlanFiles, plan_sha256: str) -> list[str]:
    """Each plan file in the folder whose bytes on disk now are not those read (`files`; plan.json's, those
    `read_plan_file` read, SHA-256 `plan_sha256`), one phrase each: '<path> changed', 'appeared', 'was removed' or
    'became unreadable'. An approval binds what was read and judged: written over a folder that differs from it, it
    would fail `verify` at once, and approve would then refuse the folder as approved, leaving approval.json to be
    deleted by hand. Changed after this, a file no longer has the SHA-256 bound, which `verify` finds."""
    read = {PLAN_JSON: plan_sha256, **files.sha256s}
    moved = []
    for name in PLAN_FOLDER_FILES:
        path = files.folder / name
        try:
            now = file_sha256(path) if path.is_file() else None
        except FileNotFoundError:  # removed since it was listed
            now = None
        except OSError as error:  # permissions, I/O
            moved.append(f"{path} became unreadable ({error.strerror})")
            continue
        if now != read.get(name):
            moved.append(f"{path} " + ("appeared" if name not in read else "was removed" if now is None else "changed"))
    return moved


def protocol_sha256_now(record: PlanRecord) -> str | None:
    """The SHA-256 the protocol files a plan names hold now, by the plan record's rule (their bytes in the
    order read), or None where one of them cannot be read: moved, deleted, another machine's path, or a protocol
    built or changed in memory (whose `files` names no file). Relative paths are read from the working folder, as
    `specc plan` recorded them from its own."""
    digest = hashlib.sha256()
    for name in record.protocol.files:
        try:
            digest.update(Path(name).read_bytes())
        except OSError:  # not there to compare with: nothing to say of it
            return None
    return digest.hexdigest()


def protocol_changed_since(record: PlanRecord) -> Notice | None:
    """Why the plan may not be of the protocol as it is now: its files still at their recorded paths, holding
    other bytes than it was planned from (a plan of an earlier save of a protocol being tuned, under the same
    name and version as every save); None where they hold the plan's bytes or cannot be read. Said, never
    refused: a protocol may move on, rightly, after its plan. Other bytes are judged as `specc compare` judges two
    plans (`content_difference`, `protocol_difference`'s rule), by the plan's content fingerprint and the one the
    files give now (`ProtocolSource.fingerprint`): a comment or formatting edit, which `specc diff` says needs no new
    version, is a note (`Notice.warning` False), not other content; a plan.json without the fingerprint cannot tell
    them apart; files that no longer load as a protocol hold other content whatever the plan recorded."""
    now = protocol_sha256_now(record)
    protocol = record.protocol
    if now is None or now == protocol.sha256:  # nothing to compare with, or the plan's bytes: no protocol to load
        return None
    files = f"the protocol files this plan names ({', '.join(protocol.files)})"
    hashes = f"(SHA-256 {now[:12]}) than the plan was made from ({protocol.sha256[:12]})"
    check = ("the approval is of the plan's version, not of the files as they are now: check that it is the version "
             "meant")
    try:
        loaded = load_protocol(protocol.files[0])
    except ProtocolError as error:
        first = str(error.diagnostics[0]) if error.diagnostics else str(error)
        return Notice(f"{files} hold other content now {hashes}, and no longer load as a protocol ({first}): {check}")
    content = loaded.source.content_sha256 if loaded.source is not None else None
    difference = content_difference([protocol.content_sha256, content])  # the bytes differ: judged by the content
    if difference == NOT_TOLD:
        return Notice(
            f"{files} differ now (SHA-256 {now[:12]}) from those the plan was made from ({protocol.sha256[:12]}), "
            f"named {protocol.name} v{protocol.version}: a plan written before specc recorded the content "
            f"fingerprint cannot tell a comment from a clinical change: {check}", difference.warning)
    if difference == FORMATTING_ONLY:
        return Notice(
            f"{files} differ in {SAME_CONTENT} (same content, content SHA-256 {content[:12]}; "
            f"their bytes' SHA-256 {now[:12]} now, {protocol.sha256[:12]} planned): the plan is of the protocol as "
            "it states now", difference.warning)
    named = (f"both named {protocol.name} v{protocol.version}"
             if (loaded.name, str(loaded.version)) == (protocol.name, protocol.version)
             else f"now named {loaded.name} v{loaded.version}, the plan's {protocol.name} v{protocol.version}")
    return Notice(f"{files} hold other content now {hashes}, {named}: {check}", difference.warning)


def verify(folder: str | Path, case: str | Path | None = None) -> Verification:
    """Whether the approval in `folder` still holds: its files and pages as approved, no plan file
    added, approval.json unedited and in agreement with plan.json, the plan files of one run (`case`, as for
    `approve`: the plan's case where it has moved; without it, what could not be checked is said)."""
    folder = Path(folder)
    path = folder / APPROVAL_JSON
    if not path.exists():
        raise ApprovalError(f"{folder}: no {APPROVAL_JSON}: the plan has not been approved")
    approval = _read_approval(path)
    # plan.json read once, as `approve` reads it: its hash, its record and the run the other files are checked against
    # are of the same bytes.
    plan, unread = None, []
    plan_there = (folder / PLAN_JSON).is_file()
    if plan_there:
        try:
            plan = read_plan_file(folder / PLAN_JSON)
        except CompareError as error:  # edited into what is no plan record (or of a format this specc does not read)
            unread = [str(error)]
    bound = {**approval.files, **approval.pages}
    # Each read once: the bytes hashed are those `of_one_run` judges, of every plan file there, bound or appeared.
    # What is missing or appeared is of that read too, not of a look again, which may find the folder otherwise.
    files = PlanFiles.read(folder, dict.fromkeys((*bound, *PLAN_FOLDER_FILES, *APPROVAL_PAGES)))
    unreadable = files.unreadable
    sha256_now = files.sha256s | ({PLAN_JSON: plan[1]} if plan is not None else {})
    there = {*files.contents, *unreadable, *([PLAN_JSON] if plan_there else [])}
    missing = [name for name in bound if name not in there]
    # A plan.json whose read failed has no SHA-256 now (not read again, its error is said): it counts as changed.
    changed = [name for name in bound if name not in missing and name not in unreadable
               and sha256_now.get(name) != bound[name]]
    appeared = [name for name in (*PLAN_FOLDER_FILES, *APPROVAL_PAGES) if name not in bound and name in there]
    disagreements = _self_disagreements(approval) + unread + list(unreadable.values())
    unchecked = []
    if plan is None:
        unchecked = [f"whether the plan files are of one run: {PLAN_JSON}, which they are checked against, is "
                     + ("no plan record this specc reads" if unread else "not there")]
    else:
        record, plan_sha256 = plan
        if PLAN_JSON in approval.files and PLAN_JSON not in changed:
            disagreements += _plan_disagreements(approval, record)
        if unreadable:  # of_one_run would judge them too
            unchecked = [f"whether the plan files are of one run: {', '.join(unreadable)} cannot be read"]
        else:
            run = of_one_run(files, record, plan_sha256, case)
            disagreements += run.foreign
            unchecked = run.unchecked
    return Verification(approval, changed, missing, appeared, disagreements, unchecked)


@dataclass(frozen=True)
class PlanFiles:
    """A plan folder's files (and, for `verify`, its approval pages), each read once into memory (kilobytes to a few
    megabytes): the bytes `of_one_run` judges are the bytes whose SHA-256 an approval binds or `verify` compares,
    never the file read again, which may be another by then (swapped in, and back). plan.json is not among them: the
    caller reads it once, for its record (`read_plan_file`), and judges and binds that read."""

    folder: Path
    contents: dict[str, bytes]  # file name -> its bytes, of each name that was a file
    unreadable: dict[str, str]  # file name -> why it could not be read, naming the file

    @classmethod
    def read(cls, folder: Path, names: Iterable[str]) -> PlanFiles:
        """Those of `names` (but plan.json) that are files in `folder`."""
        contents: dict[str, bytes] = {}
        unreadable: dict[str, str] = {}
        for name in names:
            path = folder / name
            if name != PLAN_JSON and path.is_file():
                try:
                    contents[name] = path.read_bytes()
                except OSError as error:  # permissions, I/O, removed since it was listed: said, naming the file
                    unreadable[name] = f"{path}: cannot be read ({error.strerror})"
        return cls(folder, contents, unreadable)

    @cached_property
    def sha256s(self) -> dict[str, str]:
        """The SHA-256 of each file read, by name: bound, then compared with the files on disk again, hashed once."""
        return {name: hashlib.sha256(data).hexdigest() for name, data in self.contents.items()}


@dataclass
class OneRun:
    """Whether a plan folder's files are of one run (`of_one_run`)."""

    foreign: list[str]  # each plan file not of plan.json's run, with what differs
    unchecked: list[str]  # what could not be checked, and why (segments.json's fluence without the plan's case)


def of_one_run(files: PlanFiles, record: PlanRecord, plan_sha256: str, case: str | Path | None = None) -> OneRun:
    """Which plan files read (`files`) are not of the run whose record plan.json holds (`OneRun.foreign`), each with
    what differs: the record report.html (report.pdf) names, result.h5's embedded record, segments.json's plan (its
    segments per beam and their summed weight). `record` and `plan_sha256` are plan.json's record and the SHA-256 of
    its bytes as the caller read them (`read_plan_file`), not read here again: the files are checked against the very
    plan the caller judges and binds, even where plan.json is replaced meanwhile. The other files too are judged by
    the bytes the caller read and hashes, none read here. segments.json's fluence is checked on the plan's case too
    (`PlanResult.load_case`: `case`, else the path result.h5 records), as every export checks it; where the case
    cannot be loaded, `OneRun.unchecked` says so."""
    out = []
    contents = files.contents
    for name, named in ((REPORT_HTML, html_record_sha256s), (REPORT_PDF, pdf_record_sha256s)):
        if name in contents:
            problem = _report_mismatch(name, named(contents[name]), plan_sha256)
            if problem is not None:
                out.append(problem)
    if RESULT_H5 not in contents:
        return OneRun(out, [])
    try:
        result = read_result(files.folder / RESULT_H5, contents[RESULT_H5])
    except ResultError as error:
        return OneRun([*out, str(error)], [])
    problem = _result_mismatch(result, record, plan_sha256)
    if problem is not None:
        return OneRun([*out, problem], [])
    if SEGMENTS_JSON not in contents:
        return OneRun(out, [])
    plan_case, unchecked = None, []
    if not out:  # a folder already shown to mix runs needs no case to say so
        try:
            plan_case = result.load_case(case)
        except (ResultError, CaseError) as error:
            unchecked = [
                f"{SEGMENTS_JSON}'s fluence (the beamlet weights its segments deliver) cannot be checked against "
                f"{RESULT_H5}'s without the plan's case ({error}); weight moved between a beam's segments keeps "
                "their count and summed weight, which alone are checked: give the plan's case with --case"
            ]
    try:
        segments = files.folder / SEGMENTS_JSON
        result.check_segments(read_segments(segments, contents[SEGMENTS_JSON]), segments, plan_case)
    except ResultError as error:
        return OneRun([*out, str(error)], [])
    return OneRun(out, unchecked)


def _report_mismatch(name: str, named: list[str], digest: str) -> str | None:
    """Whether the report `name`, naming the records `named`, was rendered from plan.json (SHA-256 `digest`)."""
    if named == [digest]:
        return None
    if not named:
        return (f"{name} names no plan record (no {RECORD_META} SHA-256: not a specc report, or one written before "
                "reports named their record), so it cannot be shown to be plan.json's report")
    said = ", ".join(other[:12] for other in named)
    return f"{name} was rendered from another plan record (SHA-256 {said}) than plan.json ({digest[:12]})"


def _result_mismatch(result: PlanResult, record: PlanRecord, plan_sha256: str) -> str | None:
    """Whether result.h5 embeds plan.json's record (`record`, its bytes' SHA-256 `plan_sha256`) byte for byte; else
    what differs. plan.json is UTF-8 (`read_plan_file` reads no other), so the embedded text is plan.json's exactly
    where its UTF-8 has plan.json's SHA-256; a lone surrogate, which no UTF-8 file holds, is encoded to differ, not
    to fail."""
    name = result.path.name
    if result.record_json is None:
        return f"{name} holds no plan record (dataset plan_json), so it cannot be shown to be plan.json's dose"
    if hashlib.sha256(result.record_json.encode("utf-8", errors="surrogatepass")).hexdigest() == plan_sha256:
        return None
    try:
        embedded = PlanRecord.model_validate_json(result.record_json)
    except ValidationError:
        return f"{name} holds another plan record than plan.json ({name}'s is not a plan record this specc reads)"
    return f"{name} is another run's dose: {_record_difference(name, embedded, record)}"


def _record_difference(name: str, embedded: PlanRecord, planned: PlanRecord) -> str:
    """How the record embedded in file `name` and plan.json's tell their runs apart: creation time, protocol, case."""
    def said(record: PlanRecord) -> dict[str, str]:
        protocol, case = record.protocol, record.case
        return {
            "creation time": record.created,
            "protocol": f"{protocol.name} v{protocol.version} SHA-256 {protocol.sha256[:12]}",
            "case": f"{case.case_id} SHA-256 {case.sha256[:12]}",
        }

    in_file, in_plan = said(embedded), said(planned)
    differs = [f"{what} ({name} {in_file[what]}, plan.json {in_plan[what]})" for what in in_file
               if in_file[what] != in_plan[what]]
    if not differs:
        return "its plan record has plan.json's creation time, protocol and case but other content"
    return "its plan record and plan.json differ in " + ", ".join(differs)


def _self_disagreements(approval: Approval) -> list[str]:
    """approval.json edited after it was written, or from a format that does not bind it."""
    if not approval.sha256 or not approval.pages:
        return [f"{APPROVAL_JSON} (format version {approval.version}) binds neither its own content nor approval.html, "
                "so neither can be verified"]
    if approval.content_sha256() != approval.sha256:
        return [f"{APPROVAL_JSON} edited since approval (its content no longer has the SHA-256 it recorded)"]
    return []


def _plan_disagreements(approval: Approval, record: PlanRecord) -> list[str]:
    """Where approval.json says other than the plan.json it approved."""
    said = {
        "goal counts": (approval.goals, record.goal_counts()),
        "protocol": (approval.protocol, {"name": record.protocol.name, "version": record.protocol.version,
                                         "sha256": record.protocol.sha256}),
        "case": (approval.case, {"case_id": record.case.case_id, "sha256": record.case.sha256}),
        "plan creation time": (approval.plan_created, record.created),
    }
    return [f"{APPROVAL_JSON} says {what} {_said(ours)} but plan.json {_said(theirs)}"
            for what, (ours, theirs) in said.items() if ours != theirs]


def _said(value: dict[str, object] | str) -> str:
    return "(" + ", ".join(f"{key} {item}" for key, item in value.items()) + ")" if isinstance(value, dict) else value


def _read_approval(path: Path) -> Approval:
    try:
        return Approval.model_validate_json(path.read_text(encoding="utf-8"))
    except ValidationError as error:  # unparsable JSON included
        raise ApprovalError(f"{path}: not a specc approval ({validation_text(error, 'the file')})") from None


def _deviations(record: PlanRecord) -> list[AcceptedDeviation]:
    """Goals failed or not measured, nominally or in a setup-error scenario (its worst), but for a goal on an organ
    the protocol allows the case to lack and this case does not contour (`absence_allowed`): the protocol's own
    allowance, which --strict lets pass, is nothing for a reviewer to accept (it asked --accept-deviations and listed
    the goal as a must-goal NOT EVALUATED: review s18 R2)."""
    found = [
        AcceptedDeviation(structure=g.structure, goal=g.text, value=g.value, unit=g.unit, status=g.status,
                          priority=g.priority, source=g.source)
        for g in record.goals
        if g.status in _DEVIATING and not g.absence_allowed
    ]
    robustness = record.robustness
    if robustness is not None:
        nominal = {(d.structure, d.goal) for d in found}
        for goal in robustness.goals:
            judged = record.goal_named(goal.structure, goal.text)
            if goal.status in _DEVIATING and (goal.structure, goal.text) not in nominal and not judged.absence_allowed:
                labels = robustness.scenario_labels
                scenario = labels[goal.worst_scenario] if goal.worst_scenario is not None and labels else "a setup-error scenario"
                found.append(AcceptedDeviation(
                    structure=goal.structure, goal=goal.text, value=goal.worst, unit=goal.unit, status=goal.status,
                    scenario=f"under setup errors, worst: {scenario}", priority=judged.priority, source=judged.source,
                ))
    return found
