"""The protocol language: YAML protocols validated into `Protocol` objects.

`load_protocol(path)` reads a protocol file (with its templates) and returns the validated
protocol or raises `ProtocolError` listing every problem with file, line and column.
`load_protocol_or_template(path)` also accepts a site template (`template: true`), checked
on its own, for validating a library of protocol files.
"""

from __future__ import annotations

from specc.protocol.diagnostics import Diagnostic, ProtocolError
from specc.protocol.goals import Goal, Threshold
from specc.protocol.loader import load_protocol, load_protocol_or_template, parse_protocol_text
from specc.protocol.metrics import Metric
from specc.protocol.models import (
    Approval,
    DoseLevel,
    Normalization,
    Optimization,
    Prescription,
    Protocol,
    ProtocolDocument,
    ProtocolSource,
    SiteTemplate,
    SolverOptions,
    StructureSpec,
)
from specc.protocol.structures import StructureExpr, parse_expression
from specc.protocol.units import Dose, Volume

__all__ = [
    "Approval",
    "Diagnostic",
    "Dose",
    "DoseLevel",
    "Goal",
    "Metric",
    "Normalization",
    "Optimization",
    "Prescription",
    "Protocol",
    "ProtocolError",
    "ProtocolDocument",
    "ProtocolSource",
    "SiteTemplate",
    "SolverOptions",
    "StructureExpr",
    "StructureSpec",
    "Threshold",
    "Volume",
    "load_protocol",
    "load_protocol_or_template",
    "parse_expression",
    "parse_protocol_text",
]
