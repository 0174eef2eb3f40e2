"""`specc validate` and `specc schema`: check protocol files, print the protocol JSON Schema."""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.text import Text

from specc.cli.app import app, console, error_console, fail
from specc.protocol import ProtocolError, SiteTemplate, load_protocol_or_template
from specc.protocol.schema import protocol_json_schema_text


class OutputFormat(str, Enum):
    text = "text"
    json = "json"


@app.command()
def validate(
    files: Annotated[list[Path], typer.Argument(help="Protocol files to check.", show_default=False)],
    output: Annotated[
        OutputFormat, typer.Option("--format", help="text: OK or errors per file; json: a list of diagnostics.")
    ] = OutputFormat.text,
    root: Annotated[
        Optional[Path],
        typer.Option(help="Folder templates must stay inside (default: each protocol's own folder)."),
    ] = None,
) -> None:
    """Check protocol files and site templates (template: true); exit 0 when all are valid, 1 otherwise.

    A valid file may still get warnings (a goal that asks less than the template goal it replaces) and notes
    (what planning from the goals alone would refuse; a limit read on each case): printed under its OK, and in
    the json list with "severity": "warning" or "note"; they leave the exit status alone."""
    reported: list[dict[str, str | int | None]] = []
    invalid = False
    for file in files:
        try:
            checked = load_protocol_or_template(file, root=root)
        except ProtocolError as error:
            invalid = True
            reported += [{**diagnostic.as_dict(), "severity": "error"} for diagnostic in error.diagnostics]
            if output is OutputFormat.text:
                for diagnostic in error.diagnostics:
                    error_console.print(Text(str(diagnostic)), soft_wrap=True, highlight=False)
            continue
        warnings = checked.template_warnings  # a property that builds its Diagnostics on each read
        reported += [{**warning.as_dict(), "severity": "warning"} for warning in warnings]
        # Notes on a valid protocol: what `specc plan` would refuse when it derives the program from the goals
        # alone, and each limit by a structure's volume (no number in the file, one on each case).
        refusals = [] if isinstance(checked, SiteTemplate) else checked.derivation_refusals
        per_case = [] if isinstance(checked, SiteTemplate) else checked.per_case_goals()
        notes = [("specc plan would refuse ", refusal) for refusal in refusals] + [("", goal) for goal in per_case]
        reported += [{**note.as_dict(), "message": said + note.message, "severity": "note"} for said, note in notes]
        if output is OutputFormat.text:
            kind = " (template)" if isinstance(checked, SiteTemplate) else ""
            console.print(Text(f"OK {file}{kind}"), highlight=False)
            for warning in warnings:
                console.print(Text(f"  warning: {warning}"), soft_wrap=True, highlight=False)
            for said, note in notes:
                console.print(Text(f"  note: {said}{note}"), soft_wrap=True, highlight=False)
    if output is OutputFormat.json:
        sys.stdout.write(json.dumps(reported, indent=2) + "\n")
    raise typer.Exit(1 if invalid else 0)


@app.command()
def schema(
    out: Annotated[Optional[Path], typer.Option(help="Write the schema to this file instead of printing it.")] = None,
) -> None:
    """Print the JSON Schema of protocol files (for editors and the yaml-language-server)."""
    text = protocol_json_schema_text()
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text, encoding="utf-8")
        console.print(Text(f"wrote {out}"), highlight=False)


@app.command("diff")
def diff_command(
    old: Annotated[Path, typer.Argument(help="The earlier protocol file (or, with --rev, the protocol file).")],
    new: Annotated[Optional[Path], typer.Argument(help="The later protocol file (default: OLD as it is now).")] = None,
    rev: Annotated[
        Optional[str], typer.Option("--rev", help="Read OLD as this git revision holds it (templates too), e.g. HEAD~1.")
    ] = None,
    root: Annotated[Optional[Path], typer.Option(help="Folder templates must stay inside.")] = None,
) -> None:
    """What changed between two versions of a protocol (or site template), after templates; exit 1 if it changed
    but its version did not."""
    from contextlib import nullcontext

    from specc.errors import SpeccError
    from specc.protocol.diff import diff_protocols
    from specc.protocol.diff_origins import chain_text
    from specc.protocol.revision import protocol_at_revision

    if new is None and rev is None:
        fail("give two protocol files, or one with --rev REVISION to compare it with that revision")
    try:
        later = load_protocol_or_template(new if new is not None else old, root=root)
        reading = (
            protocol_at_revision(old, rev, root) if rev is not None else nullcontext(load_protocol_or_template(old, root=root))
        )
        with reading as earlier:
            found = diff_protocols(earlier, later)
    except ProtocolError as error:
        for diagnostic in error.diagnostics:
            error_console.print(Text(str(diagnostic)), soft_wrap=True, highlight=False)
        raise typer.Exit(1) from None
    except SpeccError as error:
        fail(error)
    before = f"{old} at {rev}" if rev is not None else str(old)
    after = str(new if new is not None else old)
    # Every line whole (soft_wrap), on a terminal and in a CI log alike: rich wraps at 80 columns off a terminal,
    # which split a header mid-way, before or after its hash by the length of the name (audit s20/t1 F4).
    lines = [f"{shown}: {protocol.name} v{protocol.version} (sha256 {protocol.source.sha256[:12]})"
             + (f", extends {chain_text(templates)}" if templates else "")
             for shown, protocol, templates in ((before, earlier, found.old_templates),
                                                (after, later, found.new_templates))]
    if not found.changes:
        lines.append("no difference in what the protocols state (formatting, order and units aside)")
    else:
        cosmetic = sum(change.cosmetic for change in found.changes)
        lines += [change.line() for change in found.changes]
        lines.append(f"{len(found.changes)} changes ({cosmetic} cosmetic: colours, description, references, authors)")
    for line in lines:
        console.print(Text(line), soft_wrap=True, highlight=False)
    if found.version_problem is not None:
        fail(f"{found.version_problem}: give the new version a greater number")
