"""`specc approve`: a physician's electronic approval of a plan folder, and its verification."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.text import Text

from specc.cli.app import app, console, error_console, fail
from specc.errors import SpeccError


@app.command("approve")
def approve_command(
    plan: Path = typer.Argument(..., help="A folder written by specc plan (or specc check)."),
    reviewer: str | None = typer.Option(None, "--reviewer", help="Who approves: the name recorded and shown."),
    role: str = typer.Option("", "--role", help="The reviewer's role, e.g. 'Radiation oncologist'."),
    accept_deviations: str | None = typer.Option(
        None, "--accept-deviations", help="Why goals that fail or were not measured are accepted (needed when there are any)."
    ),
    pdf: bool = typer.Option(False, "--pdf", help="Also write approval.pdf (WeasyPrint)."),
    case: Path | None = typer.Option(
        None, "--case", help="The plan's case file, when it moved since planning: segments.json's fluence is checked on it."
    ),
    verify: bool = typer.Option(
        False, "--verify", help="Check that the approved files and the approval are unchanged, the plan files are of "
        "one run (plan.json's) and no plan file was added (exit 1 if not)."
    ),
) -> None:
    """Approve a plan: approval.json and approval.html bound to the SHA-256 of the plan's files, which must be of one
    run (refused otherwise; segments.json's fluence is checked on the plan's case, --case where it moved); --verify
    checks them."""
    from specc.approval import approve, verify as verify_approval

    try:
        if verify:
            if reviewer or accept_deviations or role:
                fail("--verify takes no --reviewer, --role or --accept-deviations")
            checked = verify_approval(plan, case)
            approval = checked.approval
            for unchecked in checked.unchecked:  # said first, above a failure too
                error_console.print(Text("warning: not checked: ", style="bold yellow") + Text(unchecked), soft_wrap=True)
            if not checked.intact:
                fail(f"{plan}: the approval ({approval.decision} by {approval.reviewer} at {approval.time_utc}) no longer holds: "
                     + "; ".join(checked.problems))
            console.print(
                f"{plan}: {approval.decision} by {approval.reviewer} at {approval.time_utc}; "
                f"{len(approval.files)} plan files and {', '.join(approval.pages)} unchanged, no plan file added, "
                "the plan files of one run" + (" as far as checked (see the warning)" if checked.unchecked else ""),
                markup=False,
            )
            return
        if not reviewer:
            fail("give the reviewer's name with --reviewer")
        approved = approve(plan, reviewer, role, accept_deviations, pdf, case)
    except SpeccError as error:
        fail(error)
    approval, changed = approved.approval, approved.protocol_changed
    accepted = len(approval.accepted_deviations)
    console.print(
        f"{approval.decision} by {approval.reviewer} at {approval.time_utc}"
        + (f"; {accepted} deviations accepted" if accepted else "")
        + f"; wrote {', '.join(str(path) for path in approved.written)}",
        markup=False,
    )
    if changed is not None and changed.warning:  # after the approval line, the last thing the signer reads
        error_console.print(Text("WARNING: ", style="bold red") + Text(changed.text, style="bold"), soft_wrap=True)
    elif changed is not None:  # a comment or formatting edit since: said, not as a warning (fx-hash's note)
        console.print(Text("note: ") + Text(changed.text), soft_wrap=True)
