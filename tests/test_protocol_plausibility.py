"""Unit slips in the doses goals state: every unit is valid, a dose far above every dose level is not."""

from __future__ import annotations

from pathlib import Path

import pytest

from specc.protocol import ProtocolError, load_protocol_or_template, parse_protocol_text
from specc.protocol.models import Robustness
from specc.protocol.units import Angle, Length

HEAD = (
    "specc: 1\nname: t\nsite: prostate\nversion: 1.0.0\n"
    "structures:\n  PTV: {role: target}\n  Rectum: {role: oar, alpha_beta: 3 Gy}\n"
    "prescription:\n  fractions: 39\n  levels: [{target: PTV, dose: 78 Gy}]\n"
    'goals:\n  PTV: ["D95% >= 74.1 Gy"]\n  Rectum:\n'
)  # Rectum's goals from line 14
TERMS = "optimization:\n  terms:\n    - {kind: quadratic_underdose, structure: PTV, dose: 78 Gy, weight: 1}\n"
SLIP = "a dose in the wrong unit? (cGy written as Gy; goals are totals over the course)"


def _protocol(goals: list[str], head: str = HEAD, tail: str = "") -> str:
    return head + "".join(f'    - "{goal}"\n' for goal in goals) + tail


def _diagnostics(text: str) -> list[tuple[int | None, str]]:
    with pytest.raises(ProtocolError) as raised:
        parse_protocol_text(text, "p.yaml")
    return [(d.line, d.message) for d in raised.value.diagnostics]


def test_an_organ_dose_written_in_cgy_as_gy_is_refused_at_its_line() -> None:
    """Rectum "Max <= 7500 Gy" held nothing and always passed: only a target's own goals were checked."""
    found = _diagnostics(_protocol(["Max <= 7500 Gy", "V7000Gy[%] <= 20", "Max <= 45 Gy (variation 4800 Gy)"]))
    assert found == [
        (14, f'"Max <= 7500 Gy" is 96.2 times the highest dose level (PTV\'s 78 Gy): {SLIP}'),
        (15, f'"V7000Gy[%] <= 20": the dose of V7000Gy[%] (7000 Gy) is 89.7 times the highest dose level '
             f"(PTV's 78 Gy): {SLIP}"),
        (16, f'"Max <= 45 Gy (variation 4800 Gy)": its variation (4800 Gy) is 61.5 times the highest dose level '
             f"(PTV's 78 Gy): {SLIP}"),
    ]
    parse_protocol_text(_protocol(["Max <= 7500 cGy", "V7000cGy[%] <= 20", "Max <= 45 Gy (variation 48 Gy)"]), "p.yaml")
    # a target's V metric too (its threshold is held to its own level by the older rule)
    target_slip = _protocol(["Max <= 75 Gy"], HEAD.replace('"D95% >= 74.1 Gy"', '"V7410Gy[%] >= 95"'))
    assert [line for line, _ in _diagnostics(target_slip)] == [12]


def test_an_isoeffective_goal_is_compared_in_its_own_quantity() -> None:
    """150 Gy BED is an ordinary rectal limit for 36.25 Gy in 5 fractions, 4.1 times the physical level but
    1.2 times its BED; 7000 Gy EQD2 is a slip."""
    sbrt = HEAD.replace("fractions: 39", "fractions: 5").replace("78 Gy", "36.25 Gy").replace("74.1 Gy", "34.4 Gy")
    parse_protocol_text(_protocol(["Max <= 150 Gy (BED)", "V70Gy[%] <= 5 (EQD2)"], sbrt), "p.yaml")
    assert _diagnostics(_protocol(["Max <= 7000 Gy (EQD2)"], sbrt)) == [(14, (
        '"Max <= 7000 Gy (EQD2)" is 94.2 times the highest dose level (74.31 Gy EQD2: PTV\'s 36.25 Gy in 5 fractions, '
        f"alpha/beta 3 Gy): {SLIP}"
    ))]


def test_with_a_prior_course_goals_are_compared_with_the_composite_levels_or_this_courses_share() -> None:
    """46 Gy in 23 fractions before, 32 Gy in 16 now: the level is 78 Gy composite, 32 Gy from this course."""
    boost = HEAD.replace("fractions: 39", "fractions: 16").replace(
        "78 Gy}]\n", "78 Gy}]\n  prior: {description: pelvis, dose: 46 Gy, fractions: 23}\n"
    )  # Rectum's goals from line 15
    parse_protocol_text(_protocol(["Max <= 300 Gy", "Max <= 120 Gy (this course)", "Max <= 300 Gy (EQD2)"],
                                  boost, TERMS), "p.yaml")
    found = _diagnostics(_protocol(["Max <= 7500 Gy", "Max <= 140 Gy (this course)", "Max <= 7000 Gy (EQD2)"],
                                   boost, TERMS))
    assert [line for line, _ in found] == [15, 16, 17]
    assert "96.2 times the highest dose level (PTV's 78 Gy)" in found[0][1]
    assert "4.38 times the highest dose level (PTV's 32 Gy from this course)" in found[1][1]
    assert ("the highest dose level (78 Gy EQD2: PTV's 78 Gy: 46 Gy in 23 fractions then 32 Gy in 16 fractions, "
            "alpha/beta 3 Gy)") in found[2][1]


def test_a_level_that_is_itself_a_slip_is_the_one_reported() -> None:
    """Against 2 Gy written for a course of 39 fractions every organ limit would look 20 times too high."""
    text = _protocol(["Max <= 75 Gy"], HEAD.replace("dose: 78 Gy", "dose: 2 Gy").replace("74.1 Gy", "1.9 Gy"))
    assert [line for line, _ in _diagnostics(text)] == [10]


MARGINS = (
    "specc: 1\nname: t\nsite: prostate\nversion: 1.0.0\n"
    "structures:\n  Prostate: {role: other}\n  Body: {role: other}\n  Rectum: {role: oar}\n"
    "  PTV: {role: target, expression: 'crop(expand(Prostate, MARGIN), Body)'}\n"  # line 9
    "  Shell: {role: other, expression: 'crop(ring(PTV, 20mm, 150mm), Body)'}\n"  # a ring may reach far
    "  Skin: {role: other, expression: 'Body - shrink(Body, 5mm)'}\n"
    "prescription:\n  fractions: 39\n  levels: [{target: PTV, dose: 78 Gy}]\n"
    'goals:\n  PTV: ["D95% >= 74.1 Gy"]\n'
)


@pytest.mark.parametrize(("margin", "message"), [
    ("6cm", '`expand(Prostate, 60mm)`: its margin "6cm" (60 mm) is beyond any CTV-to-PTV, GTV-to-CTV or PRV margin (50 '
            'mm at most here): "6cm" written for "6mm" (mm written as cm), or a typo? If the region within 60 mm of '
            "Prostate is meant, it is Prostate | ring(Prostate, 0mm, 60mm)"),
    ("5.5cm", '`expand(Prostate, 55mm)`: its margin "5.5cm" (55 mm) is beyond any CTV-to-PTV, GTV-to-CTV or PRV margin '
              '(50 mm at most here): "5.5cm" written for "5.5mm" (mm written as cm), or a typo?'),
    ("50cm", '`expand(Prostate, 500mm)`: its margin "50cm" (500 mm) is beyond any CTV-to-PTV, GTV-to-CTV or PRV '
             'margin (50 mm at most here): "50cm" written for "50mm"'),
    ("60cm", '`expand(Prostate, 600mm)`: its margin "60cm" (600 mm) is beyond any CTV-to-PTV, GTV-to-CTV or PRV '
             "margin (50 mm at most here): a typo?"),  # 60 mm would be refused too: no unit slip to name
    # written in mm: no unit slip, whatever its digits (the audit's "6cm" written for "6mm" of a margin written 60mm)
    ("60mm", '`expand(Prostate, 60mm)`: its margin "60mm" is beyond any CTV-to-PTV, GTV-to-CTV or PRV margin (50 mm '
             "at most here): a typo? If the region within 60 mm of Prostate is meant"),
    ("5mm, 5mm, 55mm", '`expand(Prostate, 5mm, 5mm, 55mm)`: its margin "55mm" is beyond any CTV-to-PTV, GTV-to-CTV or '
                       "PRV margin (50 mm at most here): a typo?"),
    # an uneven margin: a ring has one distance, so the region it gives is not the margins written
    ("5mm, 5mm, 7cm", '`expand(Prostate, 5mm, 5mm, 70mm)`: its margin "7cm" (70 mm) is beyond any CTV-to-PTV, '
                      'GTV-to-CTV or PRV margin (50 mm at most here): "7cm" written for "7mm" (mm written as cm), or a '
                      "typo? If the region within 70 mm of Prostate is meant, it is Prostate | ring(Prostate, 0mm, "
                      "70mm), which reaches 70 mm along every axis: a ring has one distance for all three, and no ring "
                      "reaches x 5 mm, y 5 mm, z 70 mm as written"),
])
def test_a_margin_beyond_any_clinical_margin_is_refused_at_its_expression(margin: str, message: str) -> None:
    """Audit s18/a2 F2: expand(Prostate, 6cm) made a 2152 cc PTV of a 34.9 cc prostate without a word, while a
    setup error over 30 mm is refused as a unit slip."""
    with pytest.raises(ProtocolError) as raised:
        parse_protocol_text(MARGINS.replace("MARGIN", margin), "p.yaml")
    [found] = raised.value.diagnostics
    assert (found.line, found.column, found.path) == (9, 35, "structures.PTV.expression")
    assert found.message.startswith(message)


def test_a_shrink_beyond_any_clinical_margin_is_refused_and_the_widest_margins_are_not() -> None:
    text = MARGINS.replace("shrink(Body, 5mm)", "shrink(Body, 6cm)").replace("MARGIN", "7mm")
    with pytest.raises(ProtocolError, match=r"p\.yaml:11:.*structures\.Skin\.expression: `shrink\(Body, 60mm\)`: its "
                                            r"margin \"6cm\" \(60 mm\) .* \"6cm\" written for \"6mm\" \(mm written as "
                                            r"cm\), or a typo\?$"):
        parse_protocol_text(text, "p.yaml")
    parse_protocol_text(MARGINS.replace("MARGIN", "5cm"), "p.yaml")  # a sarcoma's longitudinal GTV-to-CTV margin


def test_a_setup_error_given_as_a_mapping_or_object_past_the_bound_is_refused_as_read() -> None:
    """Audit s18/r1 F2: `{mm: 40}` (a mapping `Length` reads) or a `Length` / `Angle` object past the bound reached
    the slip message's regex and ended in a raw TypeError, no file or line. A file writes the text alone (audit s19/a3
    F2, as the schema says): there the mapping is refused at its line with the text it means; from Python it is read."""
    text = _protocol(["Max <= 75 Gy"], tail="robustness:\n  setup_error: [{mm: 40}, 1 mm, 1 mm]\n")  # line 16
    assert _diagnostics(text) == [(16, 'a protocol file writes a distance as text ("40 mm"), not as a mapping of its '
                                       "fields")]
    slip = (r"setup_error 40 mm is beyond any patient setup \(30 mm at most here\): a typo\? Motion beyond it is an "
            r"internal margin's \(ITV\), not a setup error's")
    with pytest.raises(ValueError, match=slip):
        Robustness(setup_error=[{"mm": 40}, "1 mm", "1 mm"])
    assert Robustness(setup_error=[{"mm": 4}, "1 mm", "1 mm"]).setup_error_mm == (4.0, 1.0, 1.0)
    with pytest.raises(ValueError, match=r"setup_error 40 mm is beyond any patient setup"):
        Robustness(setup_error=[Length(mm=40)] * 3)
    with pytest.raises(ValueError, match=r"rotation_error 20 deg is beyond any patient setup"):
        Robustness(setup_error=[Length(mm=1)] * 3, rotation_error=[Angle(deg=20)] * 3)


def test_a_table_variation_in_cgy_as_gy_is_refused_like_a_fixed_goals() -> None:
    """Audit s18/r1 F7: a table's limits were checked for unit slips, its variations not: 3200 Gy was accepted as the
    variation of a 27 Gy row, refused beside a fixed goal."""
    table = ('    - metric: Max\n      "<=": {by_volume_of: PTV, volume_cc: [1.8, 163], limit: [27 Gy, 41 Gy], '
             "variation: [VARIATION]}\n")
    assert _diagnostics(HEAD + table.replace("VARIATION", "32 Gy, 4500 Gy")) == [(14, (
        '"Max <= 27-41 Gy by PTV volume, 1.8-163 cc (variation 32-4500 Gy)": its table\'s 163 cc row\'s variation '
        f"(4500 Gy) is 57.7 times the highest dose level (PTV's 78 Gy): {SLIP}"))]
    parse_protocol_text(HEAD + table.replace("VARIATION", "32 Gy, 45 Gy"), "p.yaml")


# A 5-fraction simultaneous boost, 35 / 31.5 / 28 Gy (audit s19/a4): levels from line 13, goals from line 17.
SIB = (
    "specc: 1\nname: t\nsite: head-neck\nversion: 1.0.0\n"
    "structures:\n  PTV_70: {role: target, alpha_beta: 10 Gy}\n  PTV_63: {role: target}\n"
    "  PTV_56: {role: target, alpha_beta: 10 Gy}\n  SpinalCord: {role: oar}\n"
    "prescription:\n  fractions: 5\n  levels:\n    - {target: PTV_70, dose: HIGH}\n"
    "    - {target: PTV_63, dose: MIDDLE}\n    - {target: PTV_56, dose: LOW}\n"
    'goals:\n  PTV_70: ["D95% >= 95%"]\n  PTV_63: ["D95% >= 95%"]\n  PTV_56: ["PTV_GOAL"]\n'
    '  SpinalCord: ["D0.03cc <= 45 Gy"]\n'
)


def _sib(high: str = "35 Gy", middle: str = "31.5 Gy", low: str = "28 Gy", ptv_goal: str = "D95% >= 95%") -> str:
    return (SIB.replace("HIGH", high).replace("MIDDLE", middle).replace("LOW", low)
            .replace("PTV_GOAL", ptv_goal))


def test_a_level_written_per_fraction_inside_a_short_sib_is_refused_at_its_line() -> None:
    """6.3 Gy in 5 fractions is 1.26 Gy per fraction, inside the per-fraction window, and its goals are in %:
    it was accepted (audit s19/a4 F4). A level below a quarter of the highest is now refused, naming both."""
    parse_protocol_text(_sib(), "p.yaml")
    assert _diagnostics(_sib(middle="6.3 Gy")) == [(14, (
        "6.3 Gy is 18% of the highest dose level (PTV_70's 35 Gy), far below any elective level of a boost: a dose "
        "per fraction written as the total? `dose` is the total over all fractions (6.3 Gy in each of 5 fractions is "
        "31.5 Gy); prescription.levels[0] is at p.yaml:13:7"
    ))]
    # 0.56 Gy for 56 Gy: its total over 5 fractions is no slip either; the unit may be
    assert _diagnostics(_sib(low="0.56 Gy"))[0][1].endswith(
        "a dose per fraction written as the total? `dose` is the total over all fractions (0.56 Gy in each of 5 "
        "fractions is 2.8 Gy), or \"56 cGy\" written for 56 Gy?; prescription.levels[0] is at p.yaml:13:7")


def test_organ_limits_far_above_a_short_courses_level_also_name_the_level_as_the_slip() -> None:
    """Every level written per fraction (7 / 6.3 / 5.6 Gy in 5) passed, and the correct organ limits were blamed
    as cGy written as Gy (audit s19/a4 F3): the message now asks whether the level is the slip, at its line."""
    found = _diagnostics(_sib("7 Gy", "6.3 Gy", "5.6 Gy"))
    assert found == [(13, (  # the line to change leads (review s19/r1 F6)
        "7 Gy in 5 fractions: a dose per fraction written as the total? `dose` is the total over all fractions (7 Gy "
        'in each of 5 fractions is 35 Gy): "D0.03cc <= 45 Gy" states a dose more than 4 times this level, plausible '
        "against 35 Gy (each at its line)"
    )), (20, (
        '"D0.03cc <= 45 Gy" is 6.43 times the highest dose level (PTV_70\'s 7 Gy): a dose in the wrong unit? (cGy '
        "written as Gy; goals are totals over the course); or is the dose level PTV_70 7 Gy (prescription.levels[0]) "
        "a dose per fraction written as the total? (7 Gy in each of 5 fractions is 35 Gy); prescription.levels[0] is "
        "at p.yaml:13:7"
    ))]
    # 78 Gy in 39 fractions is no dose per fraction (3042 Gy in all): the cGy slip alone is asked
    assert "prescription.levels" not in _diagnostics(_protocol(["Max <= 7500 Gy"]))[0][1]


def _short_course_with_terms(cord: str, goals: str, terms: list[str]) -> str:
    """`_sib` at 7 / 6.3 / 5.6 Gy in 5 fractions, the organ named `cord`, with its `goals` (a list as YAML writes it)
    and the optimization `terms` on it (from line 23)."""
    text = _sib("7 Gy", "6.3 Gy", "5.6 Gy").replace('SpinalCord: ["D0.03cc <= 45 Gy"]', f"SpinalCord: {goals}")
    text += "optimization:\n  terms:\n" + "".join(f"    - {term}\n" for term in terms)
    return text.replace("SpinalCord", cord)


def test_the_level_line_quotes_a_term_whose_structure_name_says_is() -> None:
    """The level's line read the first goal or term back from that one's own message, cut at its first " is ":
    a term on "Cord is PRV" was quoted as '"max_dose Cord', its quote never closed (code review). It quotes the
    term as the term's own line does."""
    text = _short_course_with_terms('"Cord is PRV"', "[]", ['{kind: max_dose, structure: "Cord is PRV", dose: 45 Gy}'])
    level, term = _diagnostics(text)
    assert level == (13, (
        "7 Gy in 5 fractions: a dose per fraction written as the total? `dose` is the total over all fractions (7 Gy "
        'in each of 5 fractions is 35 Gy): "max_dose Cord is PRV <= 45 Gy" states a dose more than 4 times this '
        "level, plausible against 35 Gy (each at its line)"
    ))
    assert term[0] == 23 and term[1].startswith('"max_dose Cord is PRV <= 45 Gy" is 6.43 times the highest dose level')


def test_the_level_line_counts_the_goals_and_terms_it_asks_about() -> None:
    """Goals and terms far above a short course's level are one rule: the level's line names the first and counts
    the rest of both, each at its own line with its own ending."""
    found = _diagnostics(_short_course_with_terms(
        "SpinalCord", '["D0.03cc <= 45 Gy", "Mean <= 30 Gy"]', ["{kind: max_dose, structure: SpinalCord, dose: 45 Gy}"]))
    assert [(line, message.split(": a dose")[0]) for line, message in found] == [
        (13, "7 Gy in 5 fractions"),
        (20, '"D0.03cc <= 45 Gy" is 6.43 times the highest dose level (PTV_70\'s 7 Gy)'),
        (20, '"Mean <= 30 Gy" is 4.29 times the highest dose level (PTV_70\'s 7 Gy)'),
        (23, '"max_dose SpinalCord <= 45 Gy" is 6.43 times the highest dose level (PTV_70\'s 7 Gy)'),
    ]
    assert '"D0.03cc <= 45 Gy" and 2 more goals and terms state a dose more than 4 times this level' in found[0][1]
    assert found[1][1].endswith("prescription.levels[0] is at p.yaml:13:7") and "goals are totals" in found[1][1]
    assert "(cGy written as Gy; a term's doses are totals over the course); or is the dose level" in found[3][1]


def test_a_goal_against_a_level_that_is_a_slip_is_not_blamed() -> None:
    """The level is reported; its target's correct goal got a second error saying that it was in the wrong unit,
    which the docs said it would not (audit s19/a4 F5)."""
    assert _diagnostics(_sib(low="5600 Gy", ptv_goal="D95% >= 28 Gy")) == [(15, (
        "5600 Gy in 5 fractions is 1.12e+03 Gy per fraction, outside the 0.1-100 Gy external-beam courses give: cGy "
        "written as Gy? (e.g. 5000 cGy, or 50 Gy)"
    ))]
    long_course = _sib(low="0.28 Gy", ptv_goal="D95% >= 26.6 Gy").replace("fractions: 5", "fractions: 35")
    assert [line for line, _ in _diagnostics(long_course)] == [15]


@pytest.mark.parametrize(("goal", "message"), [
    ("D95% >= 28 Gy (variation 25.2 cGy)",
     '"D95% >= 28 Gy (variation 25.2 cGy)": its variation (0.252 Gy) is 0.9% of PTV_56\'s dose level (28 Gy): a dose '
     "in the wrong unit? (Gy written as cGy, or a dose per fraction; goals are totals over the course)"),
    ("D95% >= 1.6 Gy (EQD2)",
     '"D95% >= 1.6 Gy (EQD2)" is 4.4% of PTV_56\'s dose level in EQD2 (36.4 Gy EQD2: PTV_56\'s 28 Gy in 5 '
     "fractions, alpha/beta 10 Gy): a dose in the wrong unit? (Gy written as cGy, or a dose per fraction; goals are "
     "totals over the course)"),
    ("D95% >= 35 Gy (EQD2, variation 3.3 Gy)",
     '"D95% >= 35 Gy (EQD2, variation 3.3 Gy)": its variation (3.3 Gy EQD2) is 9.1% of PTV_56\'s dose level in EQD2'),
    ("D95% >= 3500 Gy (EQD2)", '"D95% >= 3500 Gy (EQD2)" is 96.2 times PTV_56\'s dose level in EQD2'),
])
def test_a_targets_variation_and_isoeffective_goals_are_held_to_its_level(goal: str, message: str) -> None:
    """A variation of "50.4 cGy" meant as 50.4 Gy made every coverage failure above 0.5 Gy an acceptable variation,
    and an EQD2 coverage goal per fraction passed (audit s19/a4 F6): both are held to the level both ways, an
    isoeffective goal against the level's own EQD2 or BED."""
    found = _diagnostics(_sib(ptv_goal=goal))
    assert len(found) == 1 and found[0][0] == 19 and found[0][1].startswith(message), found


@pytest.mark.parametrize("goal", ["D95% >= 28 Gy (variation 25.2 Gy)", "D95% >= 35 Gy (EQD2, variation 33 Gy)",
                                  "D95% >= 60 Gy (BED)", "D95% >= 95% (variation 90%)"])
def test_a_targets_plausible_variation_and_isoeffective_goals_pass(goal: str) -> None:
    parse_protocol_text(_sib(ptv_goal=goal), "p.yaml")


def test_a_target_naming_its_level_by_dose_level_of_is_held_to_that_level() -> None:
    """A boost's CTV with `dose_level_of: PTV_70` (review s19/r1 F3) states its coverage against PTV_70's level: a
    Gy goal of it in the wrong unit is refused as a target's own, naming that level; an organ naming a level is not
    held to it from below (its limits lie far under it)."""
    sib = _sib().replace("  SpinalCord: {role: oar}\n",
                         "  SpinalCord: {role: oar, dose_level_of: PTV_56}\n  CTV_70: {role: target, dose_level_of: PTV_70}\n")
    parse_protocol_text(sib + '  CTV_70: ["D98% >= 95%", "D50% >= 35 Gy (variation 33 Gy)"]\n', "p.yaml")
    found = _diagnostics(sib + '  CTV_70: ["D98% >= 33.25 Gy (variation 31.5 cGy)"]\n')
    assert found == [(22, (
        '"D98% >= 33.25 Gy (variation 31.5 cGy)": its variation (0.315 Gy) is 0.9% of PTV_70\'s dose level (35 Gy): '
        "a dose in the wrong unit? (Gy written as cGy, or a dose per fraction; goals are totals over the course)"))]


TEMPLATE = (
    "template: true\nspecc: 1\nlimits_for_dose_per_fraction: [1.8 Gy, 2.2 Gy]\n"
    "structures:\n  SpinalCord: {role: oar, alpha_beta: 2 Gy}\n  Rectum: {role: oar, alpha_beta: 3 Gy}\n"
    "goals:\n  SpinalCord:\n"
)  # SpinalCord's goals from line 9


def _template_diagnostics(tmp_path: Path, goals: list[str]) -> list[tuple[int | None, str]]:
    with pytest.raises(ProtocolError) as raised:
        load_protocol_or_template(_template(tmp_path, goals))
    return [(d.line, d.message) for d in raised.value.diagnostics]


def _template(tmp_path: Path, goals: list[str]) -> Path:
    path = tmp_path / "base.yaml"
    path.write_text(_protocol(goals, TEMPLATE))
    return path


def test_a_site_templates_organ_dose_in_cgy_as_gy_is_refused_in_the_template_itself(tmp_path: Path) -> None:
    """Audit s20/t1 F8: "D0.03cc <= 4500 Gy" in a template alone was OK (only its protocols found it): no course
    gives a highest level a quarter of which is 4500 Gy (`LARGEST_COURSE_GY`), so every protocol extending it would
    refuse the goal; a CI checking the changed template now does too, at its line."""
    course = ("the highest total dose external-beam courses give (100 Gy; a goal may state up to 4 times a "
              "protocol's highest dose level)")
    slips = ["D0.03cc <= 4500 Gy", "V5000Gy[cc] <= 1", "Max <= 45 Gy (variation 5000 Gy)"]
    assert _template_diagnostics(tmp_path, slips) == [
        (9, f'"D0.03cc <= 4500 Gy" is 45 times {course}: {SLIP}'),
        (10, f'"V5000Gy[cc] <= 1": the dose of V5000Gy[cc] (5000 Gy) is 50 times {course}: {SLIP}'),
        (11, f'"Max <= 45 Gy (variation 5000 Gy)": its variation (5000 Gy) is 50 times {course}: {SLIP}'),
    ]
    # the same in cGy, a large but possible organ dose, and a BED (a course's BED reaches thousands of Gy) pass
    load_protocol_or_template(_template(tmp_path, ["D0.03cc <= 4500 cGy", "Max <= 400 Gy", "Max <= 1000 Gy (BED)"]))


def test_a_protocol_extending_the_template_says_the_slip_once_against_its_own_level(tmp_path: Path) -> None:
    """The template alone and the merged protocol both find the goal (in different words): said once, at the
    template's line, in the protocol's words (against its level)."""
    _template(tmp_path, ["D0.03cc <= 4500 Gy"])
    protocol = tmp_path / "p.yaml"
    protocol.write_text(
        "extends: base.yaml\nname: p\nsite: head and neck\nversion: 1.0.0\nstructures:\n  PTV: {role: target}\n"
        "prescription: {fractions: 35, levels: [{target: PTV, dose: 70 Gy}]}\ngoals:\n  PTV: [\"D95% >= 66.5 Gy\"]\n"
    )
    with pytest.raises(ProtocolError) as raised:
        load_protocol_or_template(protocol)
    assert [(Path(d.file).name, d.line, d.path, d.message) for d in raised.value.diagnostics] == [
        ("base.yaml", 9, "goals.SpinalCord[0]", f'"D0.03cc <= 4500 Gy" is 64.3 times the highest dose level '
         f"(PTV's 70 Gy): {SLIP}"),
    ]


TERM_SLIP = "a dose in the wrong unit? ({}; a term's doses are totals over the course)"


def _term_diagnostics(terms: list[str]) -> list[tuple[int | None, str, str]]:
    """The diagnostics of HEAD with one Rectum goal (line 14) and `terms` (from line 17)."""
    text = _protocol(["Max <= 75 Gy"], tail="optimization:\n  terms:\n" + "".join(f"    - {term}\n" for term in terms))
    with pytest.raises(ProtocolError) as raised:
        parse_protocol_text(text, "p.yaml")
    return [(d.line, d.path, d.message) for d in raised.value.diagnostics]


def test_an_optimization_terms_dose_in_cgy_as_gy_is_refused_at_its_field() -> None:
    """Audit s20/t4 F1: a hard `max_dose Rectum 7500 Gy` (cGy meant) validated and compiled without a word: the
    limit no plan can fail of a goal, but in the optimizer, which is what protects the organ. Every dose a term
    states, hard or soft, is held to the highest level as a goal's is, and a target's term to its own level."""
    found = _term_diagnostics([
        "{kind: max_dose, structure: Rectum, dose: 7500 Gy}",
        "{kind: mean_dose, structure: Rectum, min: 1 Gy, max: 4000 Gy, hard: false, weight: 1}",
        "{kind: quadratic_overdose, structure: Rectum, dose: 5000 Gy, weight: 1}",
        "{kind: quadratic_underdose, structure: PTV, dose: 7800 Gy, weight: 1}",
        "{kind: mean_dose, structure: Rectum, max: 7000 Gy, quantity: EQD2}",
    ])
    cgy = TERM_SLIP.format("cGy written as Gy")
    assert found == [
        (17, "optimization.terms[0].dose",
         f'"max_dose Rectum <= 7500 Gy" is 96.2 times the highest dose level (PTV\'s 78 Gy): {cgy}'),
        (18, "optimization.terms[1].max",
         '"mean_dose Rectum >= 1 Gy and <= 4000 Gy (soft, weight 1)": its max (4000 Gy) is 51.3 times the highest '
         f"dose level (PTV's 78 Gy): {cgy}"),
        (19, "optimization.terms[2].dose",
         f'"quadratic_overdose Rectum above 5000 Gy (weight 1)" is 64.1 times the highest dose level (PTV\'s 78 Gy): '
         f"{cgy}"),
        (20, "optimization.terms[3].dose",
         f'"quadratic_underdose PTV below 7800 Gy (weight 1)" is 100 times PTV\'s dose level (78 Gy): {cgy}'),
        (21, "optimization.terms[4].max",
         '"mean_dose Rectum (EQD2, alpha/beta 3 Gy) <= 7000 Gy" is 89.7 times the highest dose level (78 Gy EQD2: '
         f"PTV's 78 Gy in 39 fractions, alpha/beta 3 Gy): {cgy}"),
    ]
    # the same in cGy pass, and so does a term's alpha/beta (a ratio written as a dose, no dose a plan gives)
    parse_protocol_text(_protocol(["Max <= 75 Gy"], tail=(
        "optimization:\n  terms:\n    - {kind: max_dose, structure: Rectum, dose: 7500 cGy}\n"
        "    - {kind: quadratic_underdose, structure: PTV, dose: 7800 cGy, weight: 1}\n"
        "    - {kind: mean_dose, structure: Rectum, max: 70 Gy, quantity: EQD2, alpha_beta: 3 Gy}\n"
    )), "p.yaml")


def test_a_target_terms_dose_far_below_its_level_is_refused_as_its_goals_are() -> None:
    """A hard `min_dose PTV 70 cGy` constrained nothing and a soft lower DVH limit at 74 cGy asked nothing: a target's
    own goal is held to its level from both sides, and so are its terms. An organ's is not (no goal's either): a
    low organ dose is an ordinary limit."""
    found = _term_diagnostics([
        "{kind: min_dose, structure: PTV, dose: 70 cGy}",
        "{kind: dvh, structure: PTV, dose: 74 cGy, volume: 95%, bound: lower, hard: false, weight: 10}",
        "{kind: min_dose, structure: Rectum, dose: 0.7 Gy}",
    ])
    low = TERM_SLIP.format("Gy written as cGy, or a dose per fraction")
    assert found == [
        (17, "optimization.terms[0].dose", f'"min_dose PTV >= 0.7 Gy" is 0.9% of PTV\'s dose level (78 Gy): {low}'),
        (18, "optimization.terms[1].dose",
         f'"dvh PTV D95% >= 0.74 Gy (soft, weight 10)" is 0.95% of PTV\'s dose level (78 Gy): {low}'),
    ]


def test_a_site_templates_term_dose_in_cgy_as_gy_is_refused_in_the_template_itself(tmp_path: Path) -> None:
    """A template's hand-written `max_dose SpinalCord 4500 Gy` limited nothing in every protocol extending it: held
    to the bound of a template's goals (`LARGEST_COURSE_GY`), at its field."""
    path = _template(tmp_path, ["Max <= 45 Gy"])
    terms = "optimization:\n  terms:\n    - {kind: max_dose, structure: SpinalCord, dose: %s}\n"  # line 12
    path.write_text(path.read_text() + terms % "4500 Gy")
    with pytest.raises(ProtocolError) as raised:
        load_protocol_or_template(path)
    assert [(d.line, d.path, d.message) for d in raised.value.diagnostics] == [(12, "optimization.terms[0].dose", (
        '"max_dose SpinalCord <= 4500 Gy" is 45 times the highest total dose external-beam courses give (100 Gy; a '
        "term may state up to 4 times a protocol's highest dose level): "
        + TERM_SLIP.format("cGy written as Gy")))]
    path.write_text(path.read_text().replace("4500 Gy", "4500 cGy"))
    load_protocol_or_template(path)
