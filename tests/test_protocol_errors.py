"""Each broken protocol gives exactly the expected diagnostics, with file, line and column."""

from __future__ import annotations

from pathlib import Path

import pytest

from specc.protocol import Diagnostic, ProtocolError, load_protocol, parse_protocol_text
from specc.terms import KINDS

BROKEN = Path(__file__).parent / "data" / "broken_protocols"

# file -> every diagnostic it must produce: (file, line, column, path, message)
EXPECTED: dict[str, list[tuple[str, int, int, str, str]]] = {
    "bad-metric.yaml": [
        ("bad-metric.yaml", 19, 7, "goals.Rectum[0]", 'unknown metric "V70" (did you mean "V70Gy"?)'),
    ],
    "bad-unit.yaml": [
        ("bad-unit.yaml", 14, 27, "prescription.levels[0].dose", 'unknown dose unit "cgy" (did you mean "cGy"?)'),
    ],
    "unknown-key.yaml": [  # one typo, one message: not also 'missing required key "fractions"'
        ("unknown-key.yaml", 12, 3, "prescription.fractons", 'unknown key "fractons" (did you mean "fractions"?)'),
    ],
    "duplicate-key.yaml": [
        ("duplicate-key.yaml", 11, 3, "structures.Rectum", 'duplicate key "Rectum" (first written at line 10)'),
    ],
    "undefined-structure-goal.yaml": [
        ("undefined-structure-goal.yaml", 18, 3, "goals.Rectm", 'undefined structure "Rectm" (did you mean "Rectum"?)'),
    ],
    "undefined-structure-term.yaml": [
        ("undefined-structure-term.yaml", 24, 35, "optimization.terms[1].structure", 'undefined structure "Bladder"'),
    ],
    "undefined-structure-expression.yaml": [
        ("undefined-structure-expression.yaml", 9, 35, "structures.PTV.expression", 'undefined structure "GTV"'),
    ],
    # a unit slip: every unit is valid, the doses are not; the (correct) goals against the two levels are not blamed
    "dose-per-fraction-as-total.yaml": [
        (
            "dose-per-fraction-as-total.yaml", 14, 27, "prescription.levels[0].dose",
            "2 Gy in 39 fractions is 0.0513 Gy per fraction, outside the 0.1-100 Gy external-beam courses give: a dose "
            "per fraction written as the total? `dose` is the total over all fractions (e.g. 50 Gy for 2 Gy x 25)",
        ),
        (
            "dose-per-fraction-as-total.yaml", 15, 31, "prescription.levels[1].dose",
            "7020 Gy in 39 fractions is 180 Gy per fraction, outside the 0.1-100 Gy external-beam courses give: cGy "
            "written as Gy? (e.g. 5000 cGy, or 50 Gy)",
        ),
        (
            "dose-per-fraction-as-total.yaml", 18, 7, "goals.PTV[0]",
            'minimum goal "D95% >= 78 Gy" is above maximum goal "D2% <= 107%" on PTV: no dose can meet both',
        ),
    ],
    "min-above-max-goal.yaml": [
        (
            "min-above-max-goal.yaml", 17, 7, "goals.PTV[0]",
            'minimum goal "D95% >= 78 Gy" is above maximum goal "Max <= 75 Gy" on PTV: no dose can meet both',
        ),
    ],
    "min-above-max-term.yaml": [
        (
            "min-above-max-term.yaml", 25, 46, "optimization.terms[2].dose",
            "min_dose 84 Gy on PTV is above max_dose 82 Gy (optimization.terms[1]): no dose can meet both",
        ),
    ],
    "negative-dose.yaml": [
        (
            "negative-dose.yaml", 24, 49, "optimization.terms[1].dose",
            "dose must be a finite, non-negative number of Gy, got -79.0",
        ),
    ],
    "volume-over-100.yaml": [
        ("volume-over-100.yaml", 19, 7, "goals.Rectum[0]", 'threshold "120" of V70Gy[%]: a volume cannot exceed 100%'),
    ],
    "fractions-below-one.yaml": [
        ("fractions-below-one.yaml", 12, 14, "prescription.fractions", "must be greater than or equal to 1, got 0"),
    ],
    "bad-semver.yaml": [
        ("bad-semver.yaml", 5, 10, "version", 'version "1.0" is not a semantic version MAJOR.MINOR.PATCH, e.g. "1.0.0"'),
    ],
    "bad-yaml-syntax.yaml": [
        (
            "bad-yaml-syntax.yaml", 20, 8, "",
            "invalid YAML: expected <block end>, but found '<scalar>' "
            "(while parsing a block collection started at line 17); the quoted text opened at line 17, column 7 runs "
            'on to line 20, where YAML took a " for its end: is the closing " of line 17 missing?',
        ),
    ],
    "bad-expression.yaml": [
        (
            "bad-expression.yaml", 9, 35, "structures.PTV.expression",
            'structure expression "expand(CTV, 7)": "7" needs a unit: write margins in mm or cm, e.g. "5mm" at character 13',
        ),
    ],
    "unknown-kind.yaml": [
        (
            "unknown-kind.yaml", 24, 7, "optimization.terms[1]",
            # every kind of the registry, in its order: a kind added later is listed without an edit here
            f'unknown kind "max_dos" (did you mean "max_dose"?) (kinds: {", ".join(KINDS)})',
        ),
    ],
    "variation-wrong-side.yaml": [
        (
            "variation-wrong-side.yaml", 20, 7, "goals.Rectum[1]",
            "variation 77 Gy must lie above the threshold 79 Gy (it is the acceptable deviation)",
        ),
    ],
    "missing-prescription-role.yaml": [
        (
            "missing-prescription-role.yaml", 14, 16, "prescription.levels[0].target",
            '"PTV" has role oar; a dose level needs a structure with role: target',
        ),
    ],
    "template-cycle.yaml": [
        ("templates/cycle-b.yaml", 2, 10, "extends", "template cycle: cycle-a.yaml -> cycle-b.yaml -> cycle-a.yaml"),
    ],
    "template-missing.yaml": [
        (
            "template-missing.yaml", 2, 10, "extends",
            f'template file "no-such-base.yaml" not found (looked for {BROKEN.resolve() / "no-such-base.yaml"})',
        ),
    ],
    "template-escapes.yaml": [
        (
            "template-escapes.yaml", 2, 10, "extends",
            f'template "../outside-base.yaml" leaves the protocol tree ({BROKEN.resolve()})',
        ),
    ],
}


def test_every_broken_protocol_is_pinned() -> None:
    assert sorted(EXPECTED) == sorted(path.name for path in BROKEN.glob("*.yaml"))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_broken_protocol_gives_expected_diagnostics(name: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        load_protocol(BROKEN / name)
    found = [
        (str(Path(d.file).relative_to(BROKEN)), d.line, d.column, d.path, d.message) for d in caught.value.diagnostics
    ]
    assert found == EXPECTED[name]


def test_error_text_is_one_diagnostic_per_line() -> None:
    text = (BROKEN / "unknown-key.yaml").read_text().replace("version: 1.0.0", "version: one")
    with pytest.raises(ProtocolError) as caught:
        parse_protocol_text(text, "unknown-key.yaml")
    lines = str(caught.value).splitlines()
    assert len(lines) == 2 and lines == [str(d) for d in caught.value.diagnostics]
    assert lines[1] == (
        'unknown-key.yaml:12:3: prescription.fractons: unknown key "fractons" (did you mean "fractions"?)'
    )


def test_missing_key_is_kept_when_the_unknown_key_is_not_its_misspelling() -> None:
    text = (BROKEN / "unknown-key.yaml").read_text().replace("fractons: 39", "sessions: 39")
    with pytest.raises(ProtocolError) as caught:
        parse_protocol_text(text, "other-key.yaml")
    assert [(d.path, d.message.split(" (")[0]) for d in caught.value.diagnostics] == [
        ("prescription.fractions", 'missing required key "fractions"'),
        ("prescription.sessions", 'unknown key "sessions"'),
    ]


def test_missing_file_has_no_made_up_position(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ProtocolError) as caught:
        load_protocol(missing)
    (diagnostic,) = caught.value.diagnostics
    assert (diagnostic.line, diagnostic.column) == (None, None)
    assert str(diagnostic) == f"{missing}: protocol file not found"
    assert diagnostic.as_dict()["line"] is None


@pytest.mark.parametrize(
    ("line", "column", "text"),
    [(None, None, "f.yaml: goals: bad"), (3, None, "f.yaml:3: goals: bad"), (3, 7, "f.yaml:3:7: goals: bad")],
)
def test_diagnostic_shows_only_the_position_it_knows(line: int | None, column: int | None, text: str) -> None:
    assert str(Diagnostic("f.yaml", line, column, "goals", "bad")) == text


def test_all_errors_of_a_file_are_reported_together() -> None:
    text = (BROKEN / "bad-metric.yaml").read_text()
    text = text.replace("fractions: 39", "fractions: 0").replace("version: 1.0.0", "version: one")
    with pytest.raises(ProtocolError) as caught:
        parse_protocol_text(text, "several.yaml")
    assert [(d.line, d.path) for d in caught.value.diagnostics] == [
        (5, "version"),
        (12, "prescription.fractions"),
        (19, "goals.Rectum[0]"),
    ]


@pytest.mark.parametrize(
    ("snippet", "message"),
    [
        ("{kind: max_dose, structure: Rectum, dose: 79 Gy, source: x}", 'unknown key "source"'),
        ("{kind: max_dose, structure: Rectum, dose: 79}", 'dose 79 has no unit: write it as "79 Gy" or "79 cGy"'),
        ("{kind: max_dose, structure: Rectum, dose: 79 Gy, hard: false}", "a soft limit (`hard: false`) needs a `weight` > 0"),
        ("{kind: max_dose, structure: Rectum, dose: 79 Gy, wieght: 2}", 'unknown key "wieght" (did you mean "weight"?)'),
        ("{structure: Rectum, dose: 79 Gy}", 'missing required key "kind"'),
    ],
)
def test_term_errors(snippet: str, message: str) -> None:
    text = (BROKEN / "negative-dose.yaml").read_text().replace(
        "{kind: max_dose, structure: Rectum, dose: -79 Gy}", snippet
    )
    with pytest.raises(ProtocolError) as caught:
        parse_protocol_text(text, "term.yaml")
    assert len(caught.value.diagnostics) == 1
    diagnostic = caught.value.diagnostics[0]
    assert diagnostic.line == 24 and diagnostic.path.startswith("optimization.terms[1]")
    assert diagnostic.message.startswith(message)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the file holds no YAML document"),
        ("- a\n- b\n", "a protocol is a mapping of keys (specc:, name:, ...)"),
        ("a: !!python/object:os.system x\n", 'unsupported YAML tag "tag:yaml.org,2002:python/object:os.system"'),
        ("a: &x [*x]\n", "a YAML alias refers to a value that contains it (recursive alias)"),
        ("base: &b {x: 1}\nother:\n  <<: *b\n", 'YAML merge keys ("<<") are not supported'),
        ("structures:\n  PTV: {role: target}\n Core: {role: oar}\n  Body: {role: other}\n",
         "invalid YAML: this line is indented differently from the lines before it"),
        ("goals:\n  Core:\n  - \"Max <= 30 Gy\"\n   - \"Mean <= 20 Gy\"\n",
         "invalid YAML: this line is indented differently from the lines before it"),
    ],
)
def test_unsafe_or_odd_yaml_is_refused(text: str, message: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_protocol_text(text, "odd.yaml")
    assert any(d.message.startswith(message) for d in caught.value.diagnostics), caught.value


def test_min_above_max_is_found_in_any_order_and_only_between_hard_limits() -> None:
    text = (BROKEN / "min-above-max-term.yaml").read_text()
    maximum = "    - {kind: max_dose, structure: PTV, dose: 82 Gy}\n"
    minimum = "    - {kind: min_dose, structure: PTV, dose: 84 Gy}\n"
    with pytest.raises(ProtocolError) as caught:
        parse_protocol_text(text.replace(maximum, "").replace(minimum, minimum + maximum), "swapped.yaml")
    assert [(d.line, d.path, d.message) for d in caught.value.diagnostics] == [
        (24, "optimization.terms[1].dose",
         "min_dose 84 Gy on PTV is above max_dose 82 Gy (optimization.terms[2]): no dose can meet both"),
    ]
    # A soft limit is a penalty the solver trades off, not a bound no dose can meet.
    soft = text.replace("dose: 84 Gy}", "dose: 84 Gy, hard: false, weight: 5}")
    assert parse_protocol_text(soft, "soft.yaml").optimization.terms[2].dose_bounds() == (None, None)


@pytest.mark.parametrize("fractions, dose, goal", [
    (1, "34 Gy", "D95% >= 34 Gy"),  # single-fraction lung SBRT (RTOG 0915)
    (3, "54 Gy", "Max <= 75.6 Gy"),
    (6, "3 Gy", "Mean >= 2.9 Gy"),  # low-dose benign course, 0.5 Gy per fraction
    (10, "150 cGy", "D95% >= 1.4 Gy"),  # low-dose total-body irradiation, 0.15 Gy per fraction
    (1, "80 Gy", "Max <= 90 Gy"),  # functional radiosurgery (trigeminal neuralgia)
    (39, "7800 cGy", "D95% >= 7410 cGy"),
])
def test_plausible_courses_pass_the_unit_slip_checks(fractions: int, dose: str, goal: str) -> None:
    text = (
        "specc: 1\nname: t\nsite: t\nversion: 1.0.0\nstructures: {PTV: {role: target}}\n"
        f"prescription: {{fractions: {fractions}, levels: [{{target: PTV, dose: {dose}}}]}}\n"
        f'goals: {{PTV: ["{goal}"]}}\n'
    )
    parse_protocol_text(text, "p.yaml")


@pytest.mark.parametrize("goals, conflict", [
    (["V10Gy[%] >= 80", "D50% <= 5 Gy"], True),  # 80% at 10 Gy or more, but half at 5 Gy or less
    (["D50% >= 40 Gy", "V30Gy[%] <= 40"], True),  # half at 40 Gy, so at least half above 30 Gy
    (["D95% >= 50 Gy", "Mean <= 40 Gy"], True),  # 95% at 50 Gy: a mean of 47.5 Gy at least
    (["V20Gy[cc] >= 5", "D2cc <= 15 Gy"], True),
    (["V60Gy[%] >= 10", "Max <= 55 Gy"], True),
    (["D50% >= 40 Gy", "V40Gy[%] <= 50"], False),  # exactly half at 40 Gy meets both
    (["D95% >= 40 Gy", "Mean <= 38 Gy"], False),  # 95% at 40 Gy, the rest at 0: a mean of 38 Gy
    (["D95% >= 50 Gy", "D2% <= 45 Gy"], True),
    (["V20Gy[cc] >= 40", "V20Gy[%] <= 10"], False),  # cc against %: needs the structure's volume
    (["V20Gy[%] >= 0", "Max <= 15 Gy"], False),  # at least nothing at 20 Gy: always met
    (["V20Gy[%] > 0", "Max <= 15 Gy"], True),  # some voxel at 20 Gy, none above 15
])
def test_goals_in_different_forms_that_no_dose_meets_together_are_refused(goals: list[str], conflict: bool) -> None:
    text = (
        "specc: 1\nname: t\nsite: t\nversion: 1.0.0\nstructures: {PTV: {role: target}, Core: {role: oar}}\n"
        "prescription: {fractions: 25, levels: [{target: PTV, dose: 50 Gy}]}\n"
        f"goals: {{PTV: ['D95% >= 47.5 Gy'], Core: {goals!r}}}\n".replace("'", '"')
    )
    if not conflict:
        parse_protocol_text(text, "p.yaml")
        return
    with pytest.raises(ProtocolError, match="no dose can meet both") as raised:
        parse_protocol_text(text, "p.yaml")
    assert "p.yaml:7" in str(raised.value)



_SMALL = (
    "specc: 1\nname: t\nsite: t\nversion: 1.0.0\nstructures:\n  PTV: {role: target}\n  Core: &oar {role: oar}\n"
    "prescription: {fractions: 25, levels: [{target: PTV, dose: 50 Gy}]}\ngoals:\n  Core: [\"Max <= 40 Gy\"]\n"
)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        # the compact form's priority 0 named no field ("must be greater than or equal to 1, got 0")
        (("40 Gy", "40 Gy (priority 0)"),
         (10, 10, "goals.Core[0]", 'goal "Max <= 40 Gy (priority 0)": priority must be a whole number >= 1, got "0"')),
        # a merge key also gave 'missing required key "role"' and 'unknown key "<<"', its consequences
        (("  Core: &oar {role: oar}\n", "  Core: &oar {role: oar}\n  Cord: {<<: *oar}\n"),
         (8, 10, "structures.Cord", 'YAML merge keys ("<<") are not supported: use `extends` for templates')),
        (('  Core: ["Max <= 40 Gy"]\n', '  Core:\n\t- "Max <= 40 Gy"\n'),
         (11, 1, "", "invalid YAML: found character '\\t' that cannot start any token; indent with spaces, not tabs")),
        (('"Max <= 40 Gy"', "{metric: Max, >=: 40 Gy}"),
         (10, 24, "", "invalid YAML: found character '>' that cannot start any token; quote a comparator written as "
                      'a key, e.g. {metric: D95%, ">=": 50 Gy}')),
        (('  Core: ["Max <= 40 Gy"]\n', "  Core:\n    - metric: Max\n      >=: 40 Gy\n"),
         (12, 8, "", "invalid YAML: expected chomping or indentation indicators, but found '=' (while scanning a block "
                     'scalar started at line 12); quote a comparator written as a key, e.g. {metric: D95%, ">=": 50 Gy}')),
        # audit s20/t1 F6: the editor slips PyYAML words least readably, each with the fix its place makes likely
        (("name: t\n", "name: Prostate SIB: 78 Gy\n"),
         (2, 19, "", 'invalid YAML: mapping values are not allowed here; the ": " inside the value makes YAML read '
                     'another key: quote the value, name: "Prostate SIB: 78 Gy"')),
        (("  PTV: {role: target}\n", '  PTV:\n    role: target\n     color: "#ff0000"\n'),  # the slip: line 8 or 7
         (8, 11, "", "invalid YAML: mapping values are not allowed here; YAML read this line as more of the value on "
                     "line 7 (role: target), since it starts deeper (column 6) than that line's key (column 5): the "
                     "keys of one mapping start in the same column")),
        (('  Core: ["Max <= 40 Gy"]\n', '  Core:\n    - "Max <= 40 Gy\n    - "Mean <= 20 Gy"\n'),
         (12, 8, "", "invalid YAML: expected <block end>, but found '<scalar>' (while parsing a block collection "
                     'started at line 11); the quoted text opened at line 11, column 7 runs on to line 12, where YAML '
                     'took a " for its end: is the closing " of line 11 missing?')),
        (('  Core: ["Max <= 40 Gy"]\n', '  Core: "Max <= 40 Gy\n'),
         (11, 1, "", "invalid YAML: found unexpected end of stream (while scanning a quoted scalar started at line "
                     "10); the quote opened at line 10, column 9 is not closed")),
        (('  Core: ["Max <= 40 Gy"]\n', "  Core:\n    - metric: Max\n      >: 40 Gy\n"),
         (12, 8, "", "invalid YAML: expected chomping or indentation indicators, but found ':' (while scanning a block "
                     "scalar started at line 12); quote a comparator written as a key, e.g. "
                     '{metric: D95%, ">=": 50 Gy}')),
        (('  Core: ["Max <= 40 Gy"]\n', "  Core:\n    - Max <= 40 Gy (priority 2): cord\n"),  # was two messages
         (11, 7, "goals.Core[0]", 'YAML read the goal "Max <= 40 Gy (priority 2): cord" as a mapping, its ": " taken '
                                  'for a key\'s: write the goal as one quoted text ("Max <= 40 Gy (priority 2)"; a '
                                  "remark after it goes in a # comment)")),
        (('  Core: ["Max <= 40 Gy"]\n', "  Core:\n"),  # was "got None"
         (10, 8, "goals.Core", 'Core holds no goal here (nothing is written after its key or its dash): write its '
                               'goals, e.g. Core: ["Mean <= 40 Gy"], or leave it out of goals')),
        # audit s20/t1 F9: a raw regex; a number echoed as YAML's float
        (("  PTV: {role: target}\n", '  PTV: {role: target, color: "#f00"}\n'),
         (6, 30, "structures.PTV.color", 'a colour is "#rrggbb", six hex digits, e.g. "#ff0000", got "#f00" (did you '
                                         'mean "#ff0000"? the three-digit shorthand is not read)')),
        (('"Max <= 40 Gy"', '{metric: Max, "<=": 40}'),
         (10, 10, "goals.Core[0]", 'threshold 40 of Max has no unit: write "40 Gy", "40 cGy" or a percentage of the '
                                   'prescription ("40%")')),
    ],
)
def test_the_message_names_the_field_and_what_to_do(change: tuple[str, str], expected: tuple[int, int, str, str]) -> None:
    assert _SMALL.count(change[0]) == 1
    with pytest.raises(ProtocolError) as caught:
        parse_protocol_text(_SMALL.replace(*change), "small.yaml")
    assert [(d.line, d.column, d.path, d.message) for d in caught.value.diagnostics] == [expected]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        # a ": " after a quoted value: no plain value holds it, and the line above is no key it could continue
        (("name: t\n", 'name: "t": x\n'), "invalid YAML: mapping values are not allowed here"),
    ],
)
def test_no_hint_where_the_parsers_place_does_not_make_a_cause_likely(change: tuple[str, str], expected: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_protocol_text(_SMALL.replace(*change), "small.yaml")
    assert [d.message for d in caught.value.diagnostics] == [expected]


def test_text_quoted_over_lines_and_a_goal_mapping_with_a_bad_key_are_read_as_before() -> None:
    """The hints' conditions are not met by valid YAML or by a mapping goal's own slip."""
    parse_protocol_text(_SMALL.replace("name: t\n", 'name: "a\n  b"\n'), "small.yaml")  # a quoted text may wrap
    with pytest.raises(ProtocolError) as caught:  # one key, as a goal split at a ": " has, but a key of the form
        parse_protocol_text(_SMALL.replace('"Max <= 40 Gy"', "{metric: Max}"), "small.yaml")
    assert [d.message for d in caught.value.diagnostics] == [
        'a goal needs exactly one of the keys "<=", ">=", "<", ">"'
    ]


_NAMES = (
    "specc: 1\nname: u\nsite: t\nversion: 1.0.0\nstructures:\n  PTV: {role: target}\n  STRUCTURE: {role: oar}\n"
    "prescription: {fractions: 25, levels: [{target: PTV, dose: 50 Gy}]}\ngoals:\n  GOAL: ['Max <= 40 Gy']\n"
    "  PTV: ['D95% >= 47.5 Gy']\n"
)


def test_a_name_written_composed_and_decomposed_is_one_name_and_an_invisible_difference_is_shown() -> None:
    decomposed, composed = "Ru\u0308ckenmark", "R\u00fcckenmark"  # as macOS and Windows write the same name
    protocol = parse_protocol_text(_NAMES.replace("STRUCTURE", decomposed).replace("GOAL", composed), "p.yaml")
    assert [goal.structure for goal in protocol.goals] == [composed, "PTV"] and composed in protocol.structures
    with pytest.raises(ProtocolError) as raised:
        parse_protocol_text(_NAMES.replace("STRUCTURE", '"Core\u00a0"').replace("GOAL", "Core"), "p.yaml")
    assert "did you mean 'Core\\xa0'? you wrote 'Core': they differ in characters that do not show" in str(raised.value)


_REPEATS = (
    "specc: 1\nname: t\nsite: t\nversion: 1.0.0\nstructures: {PTV: {role: target}, Rectum: {role: oar}}\n"
    "prescription: {fractions: 39, levels: [{target: PTV, dose: 78 Gy}]}\ngoals:\n  PTV:\n    - \"D95% >= 78 Gy\"\n"
    "    - PTV_GOAL\n  Rectum:\n    - \"V70Gy[%] <= 20 (priority 2)\"\n    - RECTUM_GOAL\n"
)  # the PTV's goals on lines 9-10, the rectum's on 12-13


@pytest.mark.parametrize("ptv, rectum, expected", [
    ('"D95% >= 78 Gy"', '"V70Gy[%] <= 20 (priority 2)"', [
        (10, '"D95% >= 78 Gy" repeats "D95% >= 78 Gy" on PTV: a goal written twice is judged and counted twice (and '
             "a goals-only protocol optimizes it with twice the weight): remove one; goals.PTV[0] is at p.yaml:9:7"),
        (13, '"V70Gy[%] <= 20 (priority 2)" repeats "V70Gy[%] <= 20 (priority 2)" on Rectum: a goal written twice is '
             "judged and counted twice (and a goals-only protocol optimizes it with twice the weight): remove one; "
             "goals.Rectum[0] is at p.yaml:12:7"),
    ]),
    ('{metric: D95%, ">=": 7800 cGy}', '"V70Gy[%] <= 20 (priority 3)"', [  # the same goal once parsed
        (10, 'D95% >= 78 Gy" repeats "D95% >= 78 Gy" on PTV'),
        (13, '"V70Gy[%] <= 20 (priority 3)" states the limit of "V70Gy[%] <= 20 (priority 2)" on Rectum again, at '
             "priority 3 where that one is priority 2: which is meant? keep one; goals.Rectum[0] is at p.yaml:12:7"),
    ]),
    ('"D95% >= 100%"', '"V70Gy[%] <= 20 (variation 25, priority 2)"', [  # 100% of the 78 Gy level
        (10, '"D95% >= 100%" repeats "D95% >= 78 Gy" on PTV'),
        (13, 'states the limit of "V70Gy[%] <= 20 (priority 2)" on Rectum again, with another acceptable variation'),
    ]),
])
def test_a_goal_repeating_the_limit_of_another_is_refused_with_both_lines(
    ptv: str, rectum: str, expected: list[tuple[int, str]]
) -> None:
    """An identical goal doubled a goals-only protocol's penalty and its counts without a word; the same limit at
    two priorities leaves the physicist's intent open."""
    with pytest.raises(ProtocolError) as raised:
        parse_protocol_text(_REPEATS.replace("PTV_GOAL", ptv).replace("RECTUM_GOAL", rectum), "p.yaml")
    found = raised.value.diagnostics
    assert [d.line for d in found] == [line for line, _ in expected]
    assert all(message in d.message for d, (_, message) in zip(found, expected)), found


def test_two_limits_on_one_metric_are_not_a_repeat() -> None:
    text = _REPEATS.replace("PTV_GOAL", '"D95% >= 76 Gy (priority 2)"')
    parse_protocol_text(text.replace("RECTUM_GOAL", '"V70Gy[%] <= 15 (priority 3)"'), "p.yaml")
    parse_protocol_text(text.replace("RECTUM_GOAL", '"V70Gy[cc] <= 20 (priority 2)"'), "p.yaml")


def test_a_suggestion_differing_in_case_is_quoted_plainly() -> None:
    from specc.protocol.suggest import did_you_mean

    assert did_you_mean("core", ["Core"]) == ' (did you mean "Core"?)'  # a case difference shows
    assert "differ in characters that do not show" in did_you_mean("Core", ["Core\u200b"])


@pytest.mark.parametrize(
    "prescription",
    [
        "{fractions: 30, levels: [{target: T, dose: 60 Gy, source: {file: x, line: 1, column: 1}}]}",
        "{fractions: 30, levels: [{target: T, dose: 60 Gy}], prior: {description: first, dose: 20 Gy, source: x}}",
    ],
)
def test_a_dose_level_or_prior_course_cannot_write_the_place_the_loader_records(prescription: str) -> None:
    """Where a dose level and a prior course are written (their `source`, which compile errors name) is the loader's
    record: a file writing one is refused at that key, not taken for its place."""
    text = ("specc: 1\nname: t\nsite: t\nversion: 1.0.0\nstructures: {T: {role: target}}\n"
            f"prescription: {prescription}\ngoals: {{T: ['D95% >= 57 Gy']}}\n")
    with pytest.raises(ProtocolError) as caught:
        parse_protocol_text(text, "p.yaml")
    (diagnostic,) = caught.value.diagnostics
    key = text.index("source:")
    assert (diagnostic.line, diagnostic.column, diagnostic.message) == (6, key - text.index("prescription:") + 1,
                                                                         'unknown key "source"')
    assert diagnostic.path.startswith("prescription.") and diagnostic.path.endswith(".source")
