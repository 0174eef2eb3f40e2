"""Random YAML and random edits of the example never escape as anything but ProtocolError."""

from __future__ import annotations

from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from specc.protocol import ProtocolError, parse_protocol_text

EXAMPLE = (Path(__file__).parent.parent / "protocols" / "examples" / "prostate-sib.yaml").read_text()
# The example without `extends`, so the text parser sees a whole protocol.
STANDALONE = EXAMPLE.replace("extends: base-pelvis.yaml\n", "specc: 1\n").replace(
    "structures:\n", "structures:\n  Body: {role: other}\n  Rectum: {role: oar}\n  Bladder: {role: oar}\n"
    "  Femur_Head_L: {role: oar}\n  Femur_Head_R: {role: oar}\n", 1
)
KEYS = ["specc", "name", "version", "prescription", "fractions", "levels", "target", "dose", "structures",
        "role", "goals", "metric", "<=", ">=", "optimization", "terms", "kind", "structure", "weight", "extends",
        "template"]
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20), st.sampled_from(["78 Gy", "D95%", "V70Gy[%] <= 20", "expand(A, 5mm)", "max_dose", "-1 Gy"]),
)
TREES = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), children, max_size=5),
    ),
    max_leaves=25,
)


def _parse(text: str) -> None:
    try:
        parse_protocol_text(text, "fuzz.yaml")
    except ProtocolError as error:
        assert error.diagnostics and all(d.file == "fuzz.yaml" for d in error.diagnostics)


def test_standalone_example_is_valid() -> None:
    assert parse_protocol_text(STANDALONE, "standalone.yaml").name.startswith("Prostate")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(TREES, st.dictionaries(st.sampled_from(KEYS), TREES, max_size=8)))
def test_random_yaml_trees(tree) -> None:
    _parse(yaml.safe_dump(tree, allow_unicode=True))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_random_edits_of_the_example(data: st.DataObject) -> None:
    lines = STANDALONE.splitlines()
    for _ in range(data.draw(st.integers(1, 3))):
        index = data.draw(st.integers(0, len(lines) - 1))
        action = data.draw(st.sampled_from(["delete", "duplicate", "replace_value", "garble"]))
        line = lines[index]
        if action == "delete":
            del lines[index]
        elif action == "duplicate":
            lines.insert(index, line)
        elif action == "replace_value" and ":" in line:
            head = line.split(":", 1)[0]
            lines[index] = f"{head}: {data.draw(st.sampled_from(['', '0', '-5 Gy', '[]', '{}', 'x', '1e999', '~']))}"
        else:
            position = data.draw(st.integers(0, len(line)))
            lines[index] = line[:position] + data.draw(st.text(max_size=3)) + line[position:]
        if not lines:
            break
    _parse("\n".join(lines) + "\n")


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=200))
def test_random_text(text: str) -> None:
    _parse(text)
