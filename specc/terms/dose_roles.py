"""What each `Dose` field of a kind is: a dose level, a dose difference, or a tissue parameter.

The protocol's unit-slip rules (`specc.protocol.plausibility`) read every `Dose` field of a term from its model, so
that a kind added later is checked without code of its own there. Most such fields are dose levels (a `dose`, a `min`,
a `max`): a target's term holds them to the target's level from both sides (a quarter to 4 times), any other term
below the highest level. Not every dose is a level, though, and only the kind knows which: a tolerance of a mean
shortfall (0.5 Gy below a 50 Gy target is ordinary) is a dose difference, which no level bounds from below; a tissue's
alpha/beta ratio is written as a dose but is a parameter of the LQ model, no dose a plan gives. The kind says so where
it declares the field, so that the rule stays with the kind and never becomes a list of field names shared by all:

    max_shortfall: Annotated[Dose, DoseRole.DIFFERENCE] = Field(description=...)

A field without a role is a level. The marker is metadata pydantic keeps on the field (`FieldInfo.metadata`):
validation and the JSON schema are as without it.
"""

from __future__ import annotations

from enum import Enum
from typing import get_args

from pydantic import BaseModel

from specc.protocol.units import Dose


class DoseRole(Enum):
    """How the unit-slip rules hold a `Dose` field of a term (`specc.protocol.plausibility`)."""

    LEVEL = "level"  # the default: to its target's level from both sides, off a target below the highest level
    DIFFERENCE = "difference"  # a tolerance or margin in Gy: below the highest level only (cGy as Gy is 100 times)
    PARAMETER = "parameter"  # a tissue parameter (alpha/beta): no dose a plan gives, not checked


def dose_roles(model: type[BaseModel]) -> dict[str, DoseRole]:
    """Each field `model` types `Dose` (or `Dose | None`), with its role: `LEVEL` unless its declaration marks it."""
    roles = {}
    for name, info in model.model_fields.items():
        if Dose not in (info.annotation, *get_args(info.annotation)):
            continue
        marked = [role for role in info.metadata if isinstance(role, DoseRole)]
        roles[name] = marked[0] if marked else DoseRole.LEVEL
    return roles
