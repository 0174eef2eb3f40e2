"""specc: a declarative plan-specification compiler for IMRT.

The public library API is re-exported here lazily, so that `import specc` stays cheap
(cvxpy and matplotlib are only imported by the stages that need them).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "load_protocol": ("specc.protocol", "load_protocol"),
    "Protocol": ("specc.protocol", "Protocol"),
    "revise_protocol": ("specc.protocol", "revise_protocol"),
    "Case": ("specc.case", "Case"),
    "plan": ("specc.pipeline", "plan"),
    "check_export": ("specc.check", "check_export"),
    "check_dose": ("specc.check", "check_dose"),
    "check_cohort": ("specc.check", "check_cohort"),
    "read_prior_dose": ("specc.composite", "read_prior_dose"),
    "SpeccError": ("specc.errors", "SpeccError"),
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    try:
        module_name, attribute = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'specc' has no attribute {name!r}") from None
    return getattr(import_module(module_name), attribute)
