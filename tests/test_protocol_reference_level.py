"""What "% of prescription" refers to: a target with no dose level, where the levels differ, is refused."""

from __future__ import annotations

import pytest

from specc.protocol import ProtocolError, parse_protocol_text

# 70 / 63 Gy in 35 fractions; PTV_56 is a target whose level line is missing (its goals from line 14).
SIB = (
    "specc: 1\nname: t\nsite: head-neck\nversion: 1.0.0\n"
    "structures:\n  PTV_70: {role: target}\n  PTV_63: {role: target}\n  PTV_56: {role: ROLE}\n"
    "prescription:\n  fractions: 35\n  levels: [{target: PTV_70, dose: 70 Gy}, {target: PTV_63, dose: LEVEL}]\n"
    'goals:\n  PTV_70: ["D95% >= 95%"]\n  PTV_56: [GOALS]\n'
)


def _sib(goals: str, role: str = "target", level: str = "63 Gy") -> str:
    return SIB.replace("GOALS", goals).replace("ROLE", role).replace("LEVEL", level)


def test_a_targets_percent_goals_without_its_level_are_refused_where_the_levels_differ() -> None:
    """A forgotten 56 Gy level line had the elective PTV's "D95% >= 100%" planned as a hard 70 Gy (audit s19/a4
    F1): each goal that needs the reference is now refused at its line, naming the level it would take."""
    with pytest.raises(ProtocolError) as raised:
        parse_protocol_text(_sib('"D95% >= 100%", "V95%[%] >= 98", "Max <= 75 Gy"'), "p.yaml")
    told = ("PTV_56 is a target (role: target) with no dose level, so its % would refer to the highest, PTV_70's "
            "70 Gy, of several (PTV_70 70 Gy, PTV_63 63 Gy): give PTV_56 its dose level (prescription.levels: "
            "{target: PTV_56, dose: ...}), or state the goal in Gy")
    assert [(d.line, d.path, d.message) for d in raised.value.diagnostics] == [
        (14, "goals.PTV_56[0]", f'"D95% >= 100%": {told}'),
        (14, "goals.PTV_56[1]", f'"V95%[%] >= 98": {told}'),
    ]


@pytest.mark.parametrize(("goals", "role", "level"), [
    ('"D95% >= 53.2 Gy"', "target", "63 Gy"),  # in Gy: no reference needed
    ('"D95% >= 100%"', "target", "70 Gy"),  # levels of one dose: the reference is that dose (a GTV of the boost)
    ('"V100%[%] <= 50"', "other", "63 Gy"),  # not a target: the highest level, the "Bladder V100%" convention
])
def test_an_unambiguous_reference_is_taken(goals: str, role: str, level: str) -> None:
    protocol = parse_protocol_text(_sib(goals, role, level), "p.yaml")
    assert protocol.reference_dose("PTV_56").gy == 70


def test_the_ctv_or_gtv_of_a_single_level_states_its_coverage_in_percent() -> None:
    single = _sib('"D99% >= 100%"').replace(", {target: PTV_63, dose: 63 Gy}", "")
    assert parse_protocol_text(single, "p.yaml").goals[-1].threshold_value == 70
