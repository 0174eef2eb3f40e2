"""`specc validate` and `specc schema`: check protocol files, print the protocol JSON Schema."""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.text import Text

from specc.cli.app import app, console, error_console
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
    """Check protocol files and site templates (template: true); exit 0 when all are valid, 1 otherwise."""
    diagnostics = []
    for file in files:
        try:
            checked = load_protocol_or_template(file, root=root)
        except ProtocolError as error:
            diagnostics += error.diagnostics
            if output is OutputFormat.text:
                for diagnostic in error.diagnostics:
                    error_console.print(Text(str(diagnostic)), soft_wrap=True, highlight=False)
            continue
        if output is OutputFormat.text:
            kind = " (template)" if isinstance(checked, SiteTemplate) else ""
            console.print(Text(f"OK {file}{kind}"), highlight=False)
    if output is OutputFormat.json:
        sys.stdout.write(json.dumps([d.as_dict() for d in diagnostics], indent=2) + "\n")
    raise typer.Exit(1 if diagnostics else 0)


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
