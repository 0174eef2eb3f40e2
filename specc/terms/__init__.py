"""Optimization kinds: one module per kind (model, cvxpy form, evaluation).

`Term` is the discriminated union of all kinds, used by the protocol models; `KINDS` maps
each YAML `kind:` name to its class, read from the union. To add a kind, write its module,
import its class here and add it to `Term` and `__all__`: docs/adding-a-kind.md lists the
rest (its hooks, the schema, the shared test lists, the docs' example).
"""

from __future__ import annotations

from typing import Annotated, Union, get_args

from pydantic import Field

from specc.terms.base import (
    LIMIT_TOLERANCE,
    BuildContext,
    BuiltTerm,
    EvaluationContext,
    SourceLocation,
    TermBase,
    TermResult,
)
from specc.terms.dvh import DVH
from specc.terms.fluence_regularization import FluenceRegularization
from specc.terms.geud import GEUD
from specc.terms.limits import HardOrSoftLimit
from specc.terms.linear_overdose import LinearOverdose
from specc.terms.max_dose import MaxDose
from specc.terms.mean_dose import MeanDose
from specc.terms.min_dose import MinDose
from specc.terms.quadratic_overdose import QuadraticOverdose
from specc.terms.quadratic_underdose import QuadraticUnderdose
from specc.terms.smoothness import Smoothness
from specc.terms.uniform_dose import UniformDose

Term = Annotated[
    Union[
        MinDose,
        MaxDose,
        MeanDose,
        QuadraticUnderdose,
        QuadraticOverdose,
        UniformDose,
        LinearOverdose,
        DVH,
        GEUD,
        Smoothness,
        FluenceRegularization,
    ],
    Field(discriminator="kind"),
]

# The kinds in the order of the union above (written once, there, for type checkers).
KINDS: dict[str, type[TermBase]] = {cls.model_fields["kind"].default: cls for cls in get_args(get_args(Term)[0])}

__all__ = [
    "DVH",
    "GEUD",
    "KINDS",
    "LIMIT_TOLERANCE",
    "BuildContext",
    "BuiltTerm",
    "EvaluationContext",
    "FluenceRegularization",
    "HardOrSoftLimit",
    "LinearOverdose",
    "MaxDose",
    "MeanDose",
    "MinDose",
    "QuadraticOverdose",
    "QuadraticUnderdose",
    "Smoothness",
    "SourceLocation",
    "Term",
    "TermBase",
    "TermResult",
    "UniformDose",
]
