"""What "% of prescription" refers to: a target with no dose level, where the levels differ, is refused unless
its `dose_level_of` says which level its % means."""

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
            "70 Gy, of several (PTV_70 70 Gy, PTV_63 63 Gy): say which level its % refers to "
            "(structures.PTV_56.dose_level_of: PTV_70 or PTV_63), or state the goal in Gy; a target prescribed a dose "
            "of its own needs its dose level (prescription.levels: {target: PTV_56, dose: ...}), which also makes it "
            "a prescription: an RT Plan dose reference, a target-index row and, where the optimization is derived "
            "from the goals, its own coverage, hot-spot and fall-off terms")
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


def test_dose_level_of_says_which_level_a_targets_percent_refers_to() -> None:
    """"CTV_70 D98% >= 95%" in a 70 / 63 Gy SIB was refused, and the one fix offered, a level of its own, also made
    the CTV a second prescription (review s19/r1 F3): `dose_level_of` names the level and adds nothing else."""
    text = _sib('"D98% >= 95% (variation 90%)", "V95%[%] >= 99"').replace(
        "PTV_56: {role: target}", "PTV_56: {role: target, dose_level_of: PTV_63}")
    protocol = parse_protocol_text(text, "p.yaml")
    assert [level.target for level in protocol.prescription.levels] == ["PTV_70", "PTV_63"]  # no new prescription
    assert protocol.reference_dose("PTV_56").gy == 63 and protocol.reference_dose("PTV_56", "this").gy == 63
    assert protocol.reference_level("PTV_56").target == "PTV_63"
    coverage, volume = protocol.goals[-2:]
    assert (coverage.threshold_value, coverage.variation_value, volume.metric_dose_gy) == (59.85, 56.7, 59.85)
    other = parse_protocol_text(text.replace("dose_level_of: PTV_63", "dose_level_of: PTV_70"), "p.yaml")
    assert other.goals[-2].threshold_value == 66.5  # 95% of 70 Gy
    organ = parse_protocol_text(_sib('"V100%[%] <= 50"', "oar").replace(
        "PTV_56: {role: oar}", "PTV_56: {role: oar, dose_level_of: PTV_63}"), "p.yaml")
    assert organ.goals[-1].metric_dose_gy == 63  # an organ may name one too (the highest, left out)


@pytest.mark.parametrize(("written", "message"), [
    ("PTV_6", 'undefined structure "PTV_6" (did you mean "PTV_63"?)'),
    ("PTV_56", '"PTV_56" has no dose level, so it gives PTV_56\'s % no reference: name a structure with one '
               "(PTV_70, PTV_63)"),
])
def test_dose_level_of_must_name_a_structure_with_a_level(written: str, message: str) -> None:
    text = _sib('"D98% >= 95%"').replace("PTV_56: {role: target}", f"PTV_56: {{role: target, dose_level_of: {written}}}")
    with pytest.raises(ProtocolError) as raised:
        parse_protocol_text(text, "p.yaml")
    assert [(d.line, d.column, d.path, d.message) for d in raised.value.diagnostics] == [
        (8, 41, "structures.PTV_56.dose_level_of", message)]


def test_dose_level_of_is_refused_on_a_structure_with_its_own_level() -> None:
    text = _sib('"V100%[%] <= 50"', "oar").replace("PTV_63: {role: target}",
                                                "PTV_63: {role: target, dose_level_of: PTV_70}")
    with pytest.raises(ProtocolError) as raised:
        parse_protocol_text(text, "p.yaml")
    assert [(d.line, d.path, d.message) for d in raised.value.diagnostics] == [
        (7, "structures.PTV_63.dose_level_of", "PTV_63 has its own dose level (63 Gy, prescription.levels[1]), which "
                                               "its % of the prescription refers to: leave out dose_level_of")]


def test_the_stated_level_is_the_reference_level_short_of_the_highest() -> None:
    """One rule for the level a structure's % refers to (`Prescription.stated_level`): its own, else its
    `dose_level_of`'s; the reference level falls back to the highest only where none is stated, and the protocol's
    stated level is the prescription's for the structure's `dose_level_of`."""
    text = _sib('"D98% >= 95%"').replace("PTV_56: {role: target}", "PTV_56: {role: target, dose_level_of: PTV_63}")
    protocol = parse_protocol_text(text, "p.yaml")
    prescription = protocol.prescription
    assert prescription.stated_level("PTV_63").target == "PTV_63"
    assert prescription.stated_level("PTV_56", "PTV_63").target == "PTV_63"
    assert prescription.stated_level("PTV_56") is None and prescription.stated_level("Bladder", "Rectum") is None
    assert prescription.reference_level("PTV_56").target == "PTV_70"  # none stated: the highest
    assert [protocol.stated_level(name).target for name in ("PTV_70", "PTV_56")] == ["PTV_70", "PTV_63"]
    assert protocol.stated_level("Bladder") is None
