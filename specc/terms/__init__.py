"""Optimization kinds: one module per kind (model, cvxpy form, evaluation).

`Term` is the discriminated union of all kinds, used by the protocol models. To add a kind,
write its module and add its class to `KINDS` below.
"""

from __future__ import annotations

from specc.terms.base import BuildContext, BuiltTerm, EvaluationContext, SourceLocation, TermBase, TermResult

__all__ = ["BuildContext", "BuiltTerm", "EvaluationContext", "SourceLocation", "TermBase", "TermResult"]
