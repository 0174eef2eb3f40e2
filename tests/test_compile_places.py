"""A protocol refused against a case is named as a protocol file's own errors are: file:line:column: field.path.

Audit s20/t4 F4: `specc compile` said `p.yaml:35: dvh PTV D90000cc >= 75.6 Gy: PTV is only 80 cc ...` (no column,
no `optimization.terms[13].volume`) and `absent.yaml:13: structure 'SpinalCord': ...`, while `specc validate`
names the column and the field path of every error (docs/protocol-language.md).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from evaluate_fakes import synthetic_case
from specc.compile import compile_protocol
from specc.compile.derive import derive_optimization, with_optimization
from specc.compile.places import said_at, said_at_structure
from specc.errors import CompileError
from specc.protocol import load_protocol, parse_protocol_text, revise_protocol
from specc.terms.base import SourceLocation

HEADER = "specc: 1\nname: t\nsite: t\nversion: 1.0.0\n"
STRUCTURES = "structures:\n  Target: {role: target}\n  Organ: {role: oar}\n  Body: {role: other}\n"
PRESCRIPTION = "prescription: {fractions: 30, levels: [{target: Target, dose: 60 Gy}]}\n"
GOALS = 'goals:\n  Target: ["D95% >= 57 Gy"]\n'
COVERAGE = "    - {kind: quadratic_underdose, structure: Target, dose: 60 Gy, weight: 10}\n"
TOO_MUCH = "    - {kind: dvh, structure: Target, dose: 57 Gy, volume: 9000 cc, bound: lower}\n"


def _written(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _at(path: Path, text: str, written: str) -> str:
    """'file:line:column' of the first `written` in `text`, 1-based as the loader counts."""
    lines = text.splitlines()
    line = next(index for index, content in enumerate(lines) if written in content)
    return f"{path}:{line + 1}:{lines[line].index(written) + 1}"


def _target_cc() -> str:
    case = synthetic_case()
    return f"{np.count_nonzero(case.structures['Target'].mask) * case.voxel_volume_cc:.3g}"


def test_a_dvh_volume_larger_than_its_structure_is_named_at_the_volume_and_its_field_path(tmp_path: Path) -> None:
    text = HEADER + STRUCTURES + PRESCRIPTION + GOALS + "optimization:\n  terms:\n" + COVERAGE + TOO_MUCH
    path = _written(tmp_path / "p.yaml", text)
    with pytest.raises(CompileError) as error:
        compile_protocol(load_protocol(path), synthetic_case())
    assert str(error.value) == (
        f"{_at(path, text, '9000 cc')}: optimization.terms[1].volume: dvh Target D9000cc >= 57 Gy: Target is only "
        f"{_target_cc()} cc, less than the 9000 cc that must be covered"
    )


def test_a_term_a_template_writes_is_named_in_the_template_at_its_own_path(tmp_path: Path) -> None:
    """The protocol writes no terms: the template's list is the program's, and the error names the template file and
    the term's place in it (a term list is taken whole, so its place is the same in both; docs/protocol-language.md)."""
    template = "template: true\nspecc: 1\nname: base\nsite: t\nversion: 1.0.0\n" + STRUCTURES \
        + "optimization:\n  terms:\n" + TOO_MUCH + COVERAGE
    base = _written(tmp_path / "base.yaml", template)
    path = _written(tmp_path / "p.yaml", "extends: base.yaml\n" + HEADER + PRESCRIPTION + GOALS)
    with pytest.raises(CompileError) as error:
        compile_protocol(load_protocol(path), synthetic_case())
    assert str(error.value) == (
        f"{_at(base, template, '9000 cc')}: optimization.terms[0].volume: dvh Target D9000cc >= 57 Gy: Target is only "
        f"{_target_cc()} cc, less than the 9000 cc that must be covered"
    )


def test_a_structure_the_case_lacks_is_named_at_its_key_and_path(tmp_path: Path) -> None:
    text = HEADER + STRUCTURES + "  Rectum: {role: oar}\n" + PRESCRIPTION + GOALS
    path = _written(tmp_path / "p.yaml", text)
    with pytest.raises(CompileError) as error:
        compile_protocol(with_optimization(load_protocol(path))[0], synthetic_case())
    assert str(error.value) == (
        f"{_at(path, text, 'Rectum:')}: structures.Rectum: structure 'Rectum': no case structure named 'Rectum'; "
        "the case has: Body, Organ, Target."
    )


def test_a_derived_structure_empty_on_the_case_is_named_at_its_expression(tmp_path: Path) -> None:
    text = HEADER + STRUCTURES + "  Overlap: {role: target, expression: Target & Organ}\n" + PRESCRIPTION + GOALS
    path = _written(tmp_path / "p.yaml", text)
    with pytest.raises(CompileError) as error:
        compile_protocol(with_optimization(load_protocol(path))[0], synthetic_case())
    assert str(error.value) == (
        f"{_at(path, text, 'Target & Organ')}: structures.Overlap.expression: derived structure 'Overlap' = "
        "Target & Organ is empty on the case grid, and a target must be on every case"
    )


def test_a_structure_named_like_a_setup_error_scenario_is_named_at_its_key(tmp_path: Path) -> None:
    text = (HEADER + STRUCTURES + '  "Target (x +5 mm)": {role: other}\n' + PRESCRIPTION + GOALS
            + "optimization:\n  terms:\n" + COVERAGE
            + "robustness: {setup_error: 5 mm, structures: [Target], optimize: true}\n")
    path = _written(tmp_path / "p.yaml", text)
    with pytest.raises(CompileError) as error:
        with_optimization(load_protocol(path))
    key = _at(path, text, '"Target (x +5 mm)":')
    assert str(error.value) == (
        f"{key}: structures.Target (x +5 mm): structure 'Target (x +5 mm)' has the name robust optimization gives "
        "Target displaced by a setup error; rename it"
    )


def test_a_goal_is_named_by_its_path_in_the_file_that_writes_it_not_its_merged_place(tmp_path: Path) -> None:
    """The template's Organ goal comes first in the merged goals; the protocol's own is `goals.Organ[0]` in its file."""
    template = "template: true\nspecc: 1\nname: base\nsite: t\nversion: 1.0.0\n" + STRUCTURES \
        + 'goals:\n  Organ: ["Max <= 40 Gy"]\n'
    _written(tmp_path / "base.yaml", template)
    text = "extends: base.yaml\n" + HEADER + PRESCRIPTION + GOALS + '  Organ: ["CV20Gy >= 10 cc"]\n'
    path = _written(tmp_path / "p.yaml", text)
    with pytest.raises(CompileError) as error:
        derive_optimization(load_protocol(path))  # no case: no volume to take the complement of
    goal = _at(path, text, '"CV20Gy')
    assert str(error.value) == (
        f"{goal}: goals.Organ[0]: goal 'CV20Gy >= 10 cc': its convex form needs Organ's "
        "volume from the case (derive the optimization with the case)"
    )


def test_a_protocol_parsed_from_text_is_named_at_the_field_and_its_path() -> None:
    """The loader records each item's path and fields as it reads them: a protocol that no file holds gets them too
    (named after a file that does not exist, nothing could be read back)."""
    text = HEADER + STRUCTURES + PRESCRIPTION + GOALS + "optimization:\n  terms:\n" + COVERAGE + TOO_MUCH
    path = Path("no-such-folder/p.yaml")
    with pytest.raises(CompileError) as error:
        compile_protocol(parse_protocol_text(text, str(path)), synthetic_case())
    assert str(error.value) == (
        f"{_at(path, text, '9000 cc')}: optimization.terms[1].volume: dvh Target D9000cc >= 57 Gy: Target is only "
        f"{_target_cc()} cc, less than the 9000 cc that must be covered"
    )


def test_a_protocol_revised_after_its_files_are_gone_keeps_the_places_read_when_loading(tmp_path: Path) -> None:
    """Recorded when loading, the places need no file afterwards: a protocol revised in memory (its name changed) after
    its file was removed names its goal and its dose level where and as they were written."""
    text = (HEADER + STRUCTURES + "prescription:\n  fractions: 30\n  levels:\n    - {target: Target, dose: 60 Gy}\n"
            + 'goals:\n  Target: ["D95% >= 57 Gy"]\n  Organ: ["CV20Gy >= 10 cc"]\n')
    path = _written(tmp_path / "p.yaml", text)
    protocol = load_protocol(path)
    path.unlink()
    revised = revise_protocol(protocol, name="t (tuned)")
    with pytest.raises(CompileError) as error:
        derive_optimization(revised)  # no case: no volume to take the complement of
    goal = _at(path, text, '"CV20Gy')
    assert str(error.value) == (
        f"{goal}: goals.Organ[0]: goal 'CV20Gy >= 10 cc': its convex form needs Organ's "
        "volume from the case (derive the optimization with the case)"
    )
    level = revised.prescription.levels[0].source
    assert (f"{level.file}:{level.line}:{level.column}", level.path) == (
        _at(path, text, "{target: Target"), ("prescription", "levels", 0))


def test_a_term_derived_from_a_goal_is_named_at_the_goal_which_writes_no_term_field(tmp_path: Path) -> None:
    """A goals-only protocol: the dvh limit of "D9000cc >= 57 Gy" is the goal's; the goal has no `volume` key."""
    text = HEADER + STRUCTURES + PRESCRIPTION + GOALS + '    - "D9000cc >= 57 Gy"\n'
    text = text.replace('Target: ["D95% >= 57 Gy"]\n', 'Target:\n    - "D95% >= 57 Gy"\n')
    path = _written(tmp_path / "p.yaml", text)
    with pytest.raises(CompileError) as error:
        compile_protocol(with_optimization(load_protocol(path))[0], synthetic_case())
    goal = _at(path, text, '"D9000cc')
    assert str(error.value) == (f"{goal}: goals.Target[1]: dvh Target D9000cc >= 57.057 Gy: Target is only "
                                f"{_target_cc()} cc, less than the 9000 cc that must be covered")


def test_a_composite_planned_without_its_prior_dose_is_named_at_the_prior_course(tmp_path: Path) -> None:
    prior = "  prior: {description: initial course, dose: 20 Gy}\n"
    text = (HEADER + STRUCTURES + "prescription:\n  fractions: 30\n  levels: [{target: Target, dose: 60 Gy}]\n" + prior
            + GOALS + "optimization:\n  terms:\n" + COVERAGE)
    path = _written(tmp_path / "p.yaml", text)
    with pytest.raises(CompileError) as error:
        compile_protocol(load_protocol(path), synthetic_case())
    assert str(error.value) == (
        f"{_at(path, text, '{description')}: prescription.prior: the goals are on the composite with a prior course "
        "(initial course): give the prior dose; on the command line, give its dose with --prior-dose FILE"
    )


def _file_alone(source: SourceLocation) -> SourceLocation:
    """`source` as a place known by its file alone (line 0), its fields too: a dose level's place where derive has
    none to give, or any record a tool writes without a line."""
    fields = {key: dataclasses.replace(at, line=0, column=0) for key, at in source.fields.items()}
    return dataclasses.replace(source, line=0, column=0, fields=fields)


def test_a_place_known_by_its_file_alone_is_named_alike_by_every_message_after_loading() -> None:
    """One rule (`diagnostic_at`) for a compile refusal, a goal read on each case and the prior course's fractions:
    a place with no line names its file and path, never `p.yaml:0:0`, which an editor takes for a place in the file
    (the prior course's message gave it)."""
    text = (HEADER + STRUCTURES + "  Cord: {role: oar, alpha_beta: 2 Gy}\n"
            + "prescription:\n  fractions: 30\n  levels: [{target: Target, dose: 60 Gy}]\n"
            + "  prior: {description: initial course, dose: 20 Gy, fractions: 10}\n"
            + 'goals:\n  Target: ["D95% >= 57 Gy"]\n  Cord: ["Max <= 50 Gy (EQD2)"]\n  Organ:\n    - metric: Max\n'
            + '      "<=": {by_volume_of: Target, volume_cc: [1, 100], limit: [50%, 60%]}\n'
            + "optimization:\n  terms:\n" + TOO_MUCH)
    loaded = parse_protocol_text(text, "p.yaml")
    prior = loaded.prescription.prior
    protocol = loaded.model_copy(update={
        "goals": [goal.model_copy(update={"source": _file_alone(goal.source)}) for goal in loaded.goals],
        "prescription": loaded.prescription.model_copy(
            update={"prior": prior.model_copy(update={"source": _file_alone(prior.source)})}),
    })
    term = protocol.optimization.terms[0]
    assert said_at(protocol, _file_alone(term.source), "refused", field="volume") == (
        "p.yaml: optimization.terms[0].volume: refused")
    assert str(protocol.per_case_goals()[0]).startswith("p.yaml: goals.Organ[0]: ")
    assert protocol.prior_courses_mismatch(several_courses=True).startswith("p.yaml: prescription.prior.fractions: ")
    # the places with their lines, for contrast: the same rule names them there
    assert loaded.prior_courses_mismatch(several_courses=True).startswith(f"{_at(Path('p.yaml'), text, '10}')}: ")


def test_a_structure_no_file_places_is_named_by_the_protocol_file_and_its_model_path() -> None:
    """One rule for a structure with no place: the fall-off shell the compiler adds to a goals-only protocol was named
    by the file alone (its field lost), while a name the protocol lacks got the file and `structures.NAME`."""
    protocol, _ = with_optimization(parse_protocol_text(HEADER + STRUCTURES + PRESCRIPTION + GOALS, "site/p.yaml"))
    assert protocol.structures["Falloff_Target"].source is None
    assert said_at_structure(protocol, "Falloff_Target", "empty", field="expression") == (
        "site/p.yaml: structures.Falloff_Target.expression: empty")
    assert said_at_structure(protocol, "Nowhere", "empty", field="expression") == (
        "site/p.yaml: structures.Nowhere.expression: empty")
    written = said_at_structure(protocol, "Organ", "empty", field="role")
    assert written == f"{_at(Path('site/p.yaml'), HEADER + STRUCTURES, 'oar}')}: structures.Organ.role: empty"


def test_each_field_an_item_writes_is_placed_where_it_is_written_and_no_other() -> None:
    """The loader keeps a field's place to be made when an error asks for it: each key the term writes, at its value,
    with its path; a key it does not write has none (the error then names the term)."""
    text = HEADER + STRUCTURES + PRESCRIPTION + GOALS + "optimization:\n  terms:\n" + COVERAGE + TOO_MUCH
    path = Path("p.yaml")
    fields = parse_protocol_text(text, str(path)).optimization.terms[1].source.fields
    assert {key: (f"{at.file}:{at.line}:{at.column}", at.path) for key, at in fields.items()} == {
        key: (_at(path, text, written), ("optimization", "terms", 1, key)) for key, written in (
            ("kind", "dvh,"), ("structure", "Target, dose: 57"), ("dose", "57 Gy, volume"), ("volume", "9000 cc"),
            ("bound", "lower}"))
    }
    assert fields.get("weight") is None and len(fields) == 5
