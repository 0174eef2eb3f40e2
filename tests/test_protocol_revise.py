"""A protocol changed from Python is validated as a file is (audit b3 N1).

`model_copy(update=...)` validates nothing: a weight of -50, 0 fractions or a number given as text
reached the solver and crashed there. `revise_protocol` validates the whole content again, and
`Protocol.model_validate(protocol.model_dump())` validates a valid protocol back into itself.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

import specc
from specc.protocol import Protocol, ProtocolError, ProtocolSource, load_protocol, parse_protocol_text, revise_protocol

PROTOCOLS = Path(__file__).resolve().parents[1] / "protocols"
C_SHAPE = PROTOCOLS / "tg119" / "c-shape.yaml"


def _core(protocol: Protocol) -> int:
    terms = protocol.optimization.terms
    return next(index for index, term in enumerate(terms) if term.kind != "smoothness" and term.structure == "Core")


def _with_core_term(protocol: Protocol, **changes: object) -> Protocol:
    """The change docs/python.md makes, by model_copy (unvalidated)."""
    terms = protocol.optimization.terms
    core = _core(protocol)
    changed = terms[core].model_copy(update=changes)
    return protocol.model_copy(update={"optimization": protocol.optimization.model_copy(
        update={"terms": [*terms[:core], changed, *terms[core + 1:]]})})


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"weight": -50.0}, ".weight", "greater than 0"),
        ({"weight": "50"}, ".weight", "expected a number"),
        ({"structure": "Cord"}, ".structure", 'undefined structure "Cord"'),
    ],
)
def test_a_bad_term_change_is_refused_naming_the_field(change, field, message) -> None:
    c_shape = load_protocol(C_SHAPE)
    with pytest.raises(ProtocolError) as raised:
        revise_protocol(_with_core_term(c_shape, **change))
    [diagnostic] = raised.value.diagnostics
    assert diagnostic.path.startswith(f"optimization.terms[{_core(c_shape)}]") and diagnostic.path.endswith(field)
    assert message in diagnostic.message
    assert diagnostic.file == f"{C_SHAPE} (changed in memory)" and diagnostic.line is None  # no file line says it


@pytest.mark.parametrize(("fractions", "message"), [(0, "greater than or equal to 1"), (2.5, "whole number")])
def test_a_bad_fraction_count_is_refused_as_from_a_file(fractions, message) -> None:
    c_shape = load_protocol(C_SHAPE)
    with pytest.raises(ProtocolError, match=f"prescription.fractions: .*{message}"):
        revise_protocol(c_shape, prescription=c_shape.prescription.model_copy(update={"fractions": fractions}))


def test_a_valid_change_keeps_the_source_and_the_lines_and_is_recorded_as_changed() -> None:
    c_shape = load_protocol(C_SHAPE)
    tuned = revise_protocol(_with_core_term(c_shape, weight=50))
    assert tuned.optimization.terms[_core(c_shape)].weight == 50.0
    assert tuned.source == c_shape.source  # provenance: the file it was changed from
    assert [goal.source for goal in tuned.goals] == [goal.source for goal in c_shape.goals]
    assert [term.source for term in tuned.optimization.terms] == [term.source for term in c_shape.optimization.terms]
    assert {name: spec.source for name, spec in tuned.structures.items()} == {
        name: spec.source for name, spec in c_shape.structures.items()}
    recorded = tuned.source.of_content(tuned)
    assert recorded.changed_from == str(C_SHAPE) and recorded.sha256 == ProtocolSource.fingerprint(tuned)


def test_a_revised_prescription_resolves_the_goals_in_percent_again() -> None:
    """A goal in % of the prescription is resolved against it; revised, against the new one (a dump carries
    the old reference, which would keep the old threshold)."""
    text = C_SHAPE.read_text(encoding="utf-8")
    text = text.replace('"D95% >= 50 Gy"', '"D95% >= 95%"').replace('"D10% <= 55 Gy"', '"D10% <= 110%"')
    c_shape = specc.protocol.parse_protocol_text(text, "c.yaml")
    assert c_shape.goals[0].threshold_value == pytest.approx(47.5)
    level = c_shape.prescription.levels[0].model_copy(update={"dose": specc.protocol.Dose(gy=60.0)})
    revised = revise_protocol(c_shape, prescription=c_shape.prescription.model_copy(update={"levels": [level]}))
    assert [goal.threshold_value for goal in revised.goals[:2]] == pytest.approx([57.0, 66.0])


def test_every_shipped_protocol_validates_back_from_its_dump() -> None:
    """`Protocol.model_validate(protocol.model_dump())` failed on every valid protocol: the dump writes the
    goals as a list, the validator wanted the file's mapping. In Python and JSON mode it gives the same content."""
    checked = 0
    for path in sorted(PROTOCOLS.rglob("*.yaml")):
        try:
            protocol = load_protocol(path)
        except ProtocolError:  # site templates, and the examples of refused protocols
            continue
        content = protocol.source.content_sha256
        assert ProtocolSource.fingerprint(Protocol.model_validate(protocol.model_dump())) == content, path
        assert ProtocolSource.fingerprint(Protocol.model_validate_json(protocol.model_dump_json())) == content, path
        assert ProtocolSource.fingerprint(revise_protocol(protocol)) == content, path
        checked += 1
    assert checked >= 10


def test_a_protocol_validated_back_from_its_dump_has_its_content_and_not_its_file_places() -> None:
    """What docs/python.md says of the round trip (audit s19/a3 F5: it said "the same protocol", and `==` is False
    for one loaded from a file): the content comes back, the file, its lines and `==` only for one built in memory."""
    loaded = load_protocol(C_SHAPE)
    again = Protocol.model_validate(loaded.model_dump())
    assert again.model_dump() == loaded.model_dump()
    assert ProtocolSource.fingerprint(again) == loaded.source.content_sha256
    assert again != loaded and again.source is None and loaded.structures["Core"].source is not None
    assert again.structures["Core"].source is None
    assert Protocol.model_validate(again.model_dump()) == again  # built in memory: nothing left out of its dump


def test_model_validate_raises_pydantics_error_and_a_mapping_validated_as_text_raises_speccs() -> None:
    """docs/python.md said `except specc.SpeccError` catches every bad input and offered `Protocol.model_validate`
    (audit s19/a3 F4): for a bad field that is pydantic's ValidationError, no SpeccError; a problem between fields is
    a ProtocolError. The way the docs give to specc's errors, the mapping validated as a file's text, names the field."""
    data = yaml.safe_load(C_SHAPE.read_text(encoding="utf-8"))
    data["prescription"]["fractions"] = 0
    with pytest.raises(ValidationError) as raised:
        Protocol.model_validate(data)
    assert not isinstance(raised.value, specc.SpeccError)
    with pytest.raises(ProtocolError) as caught:
        parse_protocol_text(yaml.safe_dump(data, sort_keys=False), "name")
    assert [(d.path, d.message) for d in caught.value.diagnostics] == [
        ("prescription.fractions", "must be greater than or equal to 1, got 0")
    ]
    undefined = {**yaml.safe_load(C_SHAPE.read_text(encoding="utf-8")), "goals": {"Cord": ["Max <= 45 Gy"]}}
    with pytest.raises(ProtocolError, match='goals.Cord: undefined structure "Cord"'):
        Protocol.model_validate(undefined)


def test_a_file_keeps_its_one_layout_of_goals(tmp_path: Path) -> None:
    """The dump's list of goals is for Python; a file still groups its goals by structure."""
    text = C_SHAPE.read_text(encoding="utf-8")
    start = text.index("goals:")
    end = text.index("\n\n", start) if "\n\n" in text[start:] else len(text)
    listed = text[:start] + 'goals:\n  - {structure: PTV, metric: D95%, comparator: ">=", ' \
        'threshold: {value: 50, relative: false}}\n' + text[end:]
    path = tmp_path / "listed.yaml"
    path.write_text(listed, encoding="utf-8")
    with pytest.raises(ProtocolError, match="goals are grouped by structure"):
        load_protocol(path)


def test_revise_protocol_is_part_of_the_library() -> None:
    assert specc.revise_protocol is revise_protocol
    assert issubclass(specc.protocol.ProtocolError, specc.SpeccError)


def test_a_goal_at_a_small_point_is_revised_as_written() -> None:
    """The dump writes each metric and threshold as text (format_number): a point of 0.00001 cc became "D1e-05cc",
    which the metric grammar does not read, so revising the protocol refused its own goal."""
    small_points = '- "D0.00001cc <= 10 Gy (variation 25 Gy)"\n    - "V0.5Gy[cc] <= 0.00002"'
    text = C_SHAPE.read_text(encoding="utf-8").replace('- "D10% <= 10 Gy (variation 25 Gy)"', small_points)
    c_shape = specc.protocol.parse_protocol_text(text, "c.yaml")
    revised = revise_protocol(c_shape)
    assert ProtocolSource.fingerprint(revised) == ProtocolSource.fingerprint(c_shape)
    assert [str(goal) for goal in revised.goals if goal.structure == "Core"] == [
        "D0.00001cc <= 10 Gy (variation 25 Gy)", "V0.5Gy[cc] <= 0.00002 cc"]
