"""The protocol language: YAML protocols validated into `Protocol` objects.

`load_protocol(path)` reads a protocol file (with its templates) and returns the validated
protocol or raises `ProtocolError` listing every problem with file, line and column.
`load_protocol_or_template(path)` also accepts a site template (`template: true`), checked
on its own, for validating a library of protocol files. `revise_protocol(protocol, **changes)`
is a protocol changed in Python, validated again as a file is.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

# Resolved on first use: `specc.terms` (below the stages) imports `specc.protocol.units`,
# and the protocol models import `specc.terms`; eager imports here would make the order in
# which a user imports the two matter.
_EXPORTS = {
    "Approval": "models",
    "Area": "units",
    "Delivery": "models",
    "Diagnostic": "diagnostics",
    "Dose": "units",
    "Length": "units",
    "DoseLevel": "models",
    "Goal": "goals",
    "Metric": "metrics",
    "Normalization": "models",
    "Optimization": "models",
    "Prescription": "models",
    "Protocol": "models",
    "Robustness": "models",
    "ProtocolError": "diagnostics",
    "ProtocolDocument": "models",
    "ProtocolSource": "models",
    "SiteTemplate": "models",
    "SolverOptions": "models",
    "StructureExpr": "structures",
    "StructureSpec": "models",
    "Threshold": "goals",
    "Volume": "units",
    "load_protocol": "loader",
    "load_protocol_or_template": "loader",
    "parse_expression": "structures",
    "parse_protocol_text": "loader",
    "revise_protocol": "loader",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    try:
        module = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'specc.protocol' has no attribute {name!r}") from None
    return getattr(import_module(f"specc.protocol.{module}"), name)
