"""The protocol language: YAML protocols validated into `Protocol` objects.

`load_protocol(path)` reads a protocol file (with its templates) and returns the validated
protocol or raises `ProtocolError` listing every problem with file, line and column.
"""

from __future__ import annotations

from specc.protocol.diagnostics import Diagnostic, ProtocolError
from specc.protocol.goals import Goal, Threshold
from specc.protocol.loader import load_protocol, parse_protocol_text
from specc.protocol.metrics import Metric
from specc.protocol.models import (
    Approval,
    DoseLevel,
    Normalization,
    Optimization,
    Prescription,
    Protocol,
    ProtocolSource,
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
    "ProtocolSource",
    "SolverOptions",
    "StructureExpr",
    "StructureSpec",
    "Threshold",
    "Volume",
    "load_protocol",
    "parse_expression",
    "parse_protocol_text",
]
