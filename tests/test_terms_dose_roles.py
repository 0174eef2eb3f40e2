"""A kind says which of its `Dose` fields are levels: the unit-slip rules read it from the field's declaration.

Audit s21/k1 F1: every `Dose` field of a target's term was held to the target's level (a quarter to 4 times) unless
its name was in a list shared by every kind, so a kind with a tolerance (a mean shortfall of 0.5 Gy below 50 Gy) was
refused by `specc validate` until that list was edited.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from specc.protocol import parse_protocol_text
from specc.protocol.plausibility import plausible_doses
from specc.protocol.units import Dose
from specc.terms import MeanDose, TermBase
from specc.terms.dose_roles import DoseRole, dose_roles

PROTOCOL = """specc: 1
name: t
site: pelvis
version: 1.0.0
structures:
  PTV: {role: target}
  Rectum: {role: oar}
prescription:
  fractions: 25
  levels: [{target: PTV, dose: 50 Gy}]
optimization:
  terms:
    - {kind: quadratic_underdose, structure: PTV, dose: 50 Gy, weight: 1}
"""
TERM_SLIP = "a dose in the wrong unit? ({}; a term's doses are totals over the course)"


class _MeanShortfall(TermBase):
    """A kind as a later author would write it: a dose level and a tolerance on the mean shortfall below it."""

    kind: Literal["mean_shortfall"] = "mean_shortfall"
    structure: str
    dose: Dose = Field(description="Total dose below which the shortfall is measured.")
    max_shortfall: Annotated[Dose, DoseRole.DIFFERENCE] = Field(description="Largest mean shortfall (total).")

    def label(self) -> str:
        return f"mean_shortfall {self.structure} below {self.dose} <= {self.max_shortfall}"


def _issues(*terms: TermBase) -> list[tuple[str, str]]:
    """The unit-slip issues of the protocol above with `terms` in place of its own, as (field path, message)."""
    protocol = parse_protocol_text(PROTOCOL, "p.yaml")
    assert protocol.optimization is not None
    optimization = protocol.optimization.model_copy(update={"terms": list(terms)})
    issues = plausible_doses(protocol.model_copy(update={"optimization": optimization}))
    return [(".".join(str(part) for part in issue.loc), issue.message) for issue in issues]


def test_a_dose_difference_is_no_level_but_a_level_beside_it_still_is() -> None:
    assert _issues(_MeanShortfall(structure="PTV", dose="50 Gy", max_shortfall="0.5 Gy")) == []
    assert _issues(_MeanShortfall(structure="PTV", dose="0.5 Gy", max_shortfall="0.5 Gy")) == [(
        "optimization.terms.0.dose",
        '"mean_shortfall PTV below 0.5 Gy <= 0.5 Gy": its dose (0.5 Gy) is 1% of PTV\'s dose level (50 Gy): '
        + TERM_SLIP.format("Gy written as cGy, or a dose per fraction"),
    )]


def test_a_dose_difference_in_cgy_as_gy_is_still_refused() -> None:
    """A difference is held below the highest level, as an organ's limit is: 50 Gy written for 50 cGy."""
    assert _issues(_MeanShortfall(structure="PTV", dose="50 Gy", max_shortfall="500 Gy")) == [(
        "optimization.terms.0.max_shortfall",
        '"mean_shortfall PTV below 50 Gy <= 500 Gy": its max_shortfall (500 Gy) is 10 times the highest dose level '
        "(PTV's 50 Gy): " + TERM_SLIP.format("cGy written as Gy"),
    )]


def test_a_tissue_parameter_is_not_checked() -> None:
    mean = MeanDose(structure="Rectum", max="40 Gy", quantity="EQD2", alpha_beta="3000 Gy")
    assert _issues(mean) == []
    assert dose_roles(MeanDose) == {"max": DoseRole.LEVEL, "min": DoseRole.LEVEL, "alpha_beta": DoseRole.PARAMETER}

