"""The kinds as the protocol sees them: the `Term` union, validation messages, labels, schema."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter, ValidationError

from specc.terms import DVH, GEUD, KINDS, MaxDose, MeanDose, Term, TermBase

TERM = TypeAdapter(Term)

EXAMPLES = [
    ({"kind": "min_dose", "structure": "CTV", "dose": "74 Gy"}, "min_dose CTV >= 74 Gy"),
    ({"kind": "max_dose", "structure": "Rectum", "dose": "7500 cGy"}, "max_dose Rectum <= 75 Gy"),
    (
        {"kind": "max_dose", "structure": "Rectum", "dose": "75 Gy", "hard": False, "weight": 2},
        "max_dose Rectum <= 75 Gy (soft, weight 2)",
    ),
    ({"kind": "mean_dose", "structure": "Parotid_L", "max": "26 Gy"}, "mean_dose Parotid_L <= 26 Gy"),
    (
        {"kind": "mean_dose", "structure": "PTV", "min": "76 Gy", "max": "80 Gy"},
        "mean_dose PTV >= 76 Gy and <= 80 Gy",
    ),
    (
        {"kind": "quadratic_underdose", "structure": "PTV", "dose": "78 Gy", "weight": 100},
        "quadratic_underdose PTV below 78 Gy (weight 100)",
    ),
    (
        {"kind": "quadratic_overdose", "structure": "PTV", "dose": "80 Gy", "weight": 0.5},
        "quadratic_overdose PTV above 80 Gy (weight 0.5)",
    ),
    (
        {"kind": "uniform_dose", "structure": "PTV", "dose": "78 Gy", "weight": 1},
        "uniform_dose PTV at 78 Gy (weight 1)",
    ),
    (
        {"kind": "linear_overdose", "structure": "Bladder", "dose": "50 Gy", "weight": 3},
        "linear_overdose Bladder above 50 Gy (weight 3)",
    ),
    (
        {"kind": "dvh", "structure": "Rectum", "dose": "70 Gy", "volume": "20%", "bound": "upper"},
        "dvh Rectum V70Gy <= 20%",
    ),
    (
        {"kind": "dvh", "structure": "Lung", "dose": "20 Gy", "volume": "1000 cc", "bound": "upper"},
        "dvh Lung V20Gy <= 1000 cc",
    ),
    ({"kind": "dvh", "structure": "PTV", "dose": "78 Gy", "volume": "95%", "bound": "lower"}, "dvh PTV D95% >= 78 Gy"),
    ({"kind": "dvh", "structure": "GTV", "dose": "60 Gy", "volume": "2 cc", "bound": "lower"}, "dvh GTV D2cc >= 60 Gy"),
    ({"kind": "geud", "structure": "Cord", "a": 12, "max": "40 Gy"}, "geud Cord (a=12) <= 40 Gy"),
    ({"kind": "smoothness", "weight": 0.1}, "smoothness (weight 0.1)"),
    ({"kind": "fluence_regularization", "weight": 0.01}, "fluence_regularization l1 (weight 0.01)"),
]


def test_every_kind_is_registered_once_and_has_an_example() -> None:
    assert set(KINDS) == {example["kind"] for example, _ in EXAMPLES}
    for name, cls in KINDS.items():
        assert issubclass(cls, TermBase)
        assert cls.__module__ == f"specc.terms.{name}"  # one module per kind, named by the kind
        assert "Clinical meaning" in (cls.__doc__ or ""), f"{name} does not explain its clinical meaning"


@pytest.mark.parametrize(("data", "label"), EXAMPLES, ids=[label for _, label in EXAMPLES])
def test_kind_validates_labels_and_round_trips(data: dict, label: str) -> None:
    term = TERM.validate_python(data)
    assert type(term) is KINDS[data["kind"]]
    assert term.label() == label
    assert TERM.validate_python(term.model_dump()) == term


def test_hard_limits_are_constraints_and_soft_ones_objectives() -> None:
    assert MaxDose(structure="R", dose="75 Gy").is_constraint
    assert not MaxDose(structure="R", dose="75 Gy", hard=False, weight=1).is_constraint
    assert not TERM.validate_python({"kind": "smoothness", "weight": 1}).is_constraint


def test_structures_named_by_terms() -> None:
    assert TERM.validate_python(EXAMPLES[1][0]).structures() == ("Rectum",)
    assert TERM.validate_python({"kind": "smoothness", "weight": 1}).structures() == ()


def test_doses_are_totals_in_gy_whatever_unit_was_written() -> None:
    assert TERM.validate_python({"kind": "max_dose", "structure": "R", "dose": "7500 cGy"}).dose.gy == pytest.approx(75)


R = {"structure": "R"}
INVALID = [
    ({"kind": "maxdose", **R, "dose": "75 Gy"}, (), "does not match any of the expected tags"),
    ({"kind": "max_dose", **R, "dose": 75}, ("max_dose", "dose"), 'write it as "75 Gy"'),
    ({"kind": "max_dose", **R, "dose": "-5 Gy"}, ("max_dose", "dose"), "non-negative"),
    ({"kind": "max_dose", **R, "dose": "75 Gy", "weight": 2}, ("max_dose",), "a hard limit has no weight"),
    ({"kind": "max_dose", **R, "dose": "75 Gy", "hard": False}, ("max_dose",), "needs a `weight`"),
    ({"kind": "max_dose", "structure": "", "dose": "75 Gy"}, ("max_dose", "structure"), "at least 1 character"),
    ({"kind": "max_dose", **R, "dose": "75 Gy", "dos": "7 Gy"}, ("max_dose", "dos"), "Extra inputs"),
    ({"kind": "min_dose", **R, "dose": "0 Gy"}, ("min_dose", "dose"), "constrains nothing"),
    ({"kind": "mean_dose", **R}, ("mean_dose",), "needs `max`, `min` or both"),
    ({"kind": "mean_dose", **R, "min": "30 Gy", "max": "20 Gy"}, ("mean_dose",), "(30 Gy) is above `max` (20 Gy)"),
    ({"kind": "quadratic_underdose", **R, "dose": "70 Gy", "weight": 0}, ("quadratic_underdose", "weight"), "than 0"),
    ({"kind": "quadratic_underdose", **R, "dose": "70 Gy"}, ("quadratic_underdose", "weight"), "Field required"),
    ({"kind": "quadratic_underdose", **R, "dose": "0 Gy", "weight": 1}, ("quadratic_underdose", "dose"), "do nothing"),
    ({"kind": "uniform_dose", **R, "dose": "70 Gy", "weight": float("inf")}, ("uniform_dose", "weight"), "finite"),
    ({"kind": "smoothness", "weight": True}, ("smoothness", "weight"), "valid number"),
    ({"kind": "geud", **R, "a": "2", "max": "20 Gy"}, ("geud", "a"), "valid number"),
    ({"kind": "max_dose", **R, "dose": "75 Gy", "hard": "no"}, ("max_dose", "hard"), "valid boolean"),
    ({"kind": "dvh", **R, "dose": "70 Gy", "volume": "120%", "bound": "upper"}, ("dvh", "volume"), "exceed 100%"),
    ({"kind": "dvh", **R, "dose": "70 Gy", "volume": "100%", "bound": "upper"}, ("dvh",), "always met"),
    ({"kind": "dvh", **R, "dose": "70 Gy", "volume": "0 cc", "bound": "lower"}, ("dvh",), "always met"),
    ({"kind": "dvh", **R, "dose": "0 Gy", "volume": "95%", "bound": "lower"}, ("dvh",), "always met"),
    ({"kind": "dvh", **R, "dose": "70 Gy", "volume": "20%", "bound": "max"}, ("dvh", "bound"), "'upper' or 'lower'"),
    ({"kind": "dvh", **R, "dose": "70 Gy", "volume": "20%"}, ("dvh", "bound"), "Field required"),
    ({"kind": "geud", **R, "a": 0.5, "max": "20 Gy"}, ("geud",), "a = 0.5 is not convex: an upper bound needs a >= 1"),
    ({"kind": "fluence_regularization", "weight": 1, "norm": "l3"}, ("fluence_regularization", "norm"), "'l1' or 'l2'"),
]


@pytest.mark.parametrize(("data", "location", "message"), INVALID, ids=[message for _, _, message in INVALID])
def test_invalid_fields_fail_with_a_clear_message(data: dict, location: tuple, message: str) -> None:
    with pytest.raises(ValidationError) as raised:
        TERM.validate_python(data)
    errors = raised.value.errors()
    assert len(errors) == 1, errors
    assert errors[0]["loc"] == location
    assert message in errors[0]["msg"]


def test_kind_models_are_immutable() -> None:
    term = MeanDose(structure="R", max="20 Gy")
    with pytest.raises(ValidationError):
        term.structure = "Bladder"  # type: ignore[misc]


def test_json_schema_lists_every_kind_without_internal_fields() -> None:
    schema = TypeAdapter(list[Term]).json_schema()
    assert set(schema["items"]["discriminator"]["mapping"]) == set(KINDS)
    for definition in schema["$defs"].values():
        assert "source" not in definition.get("properties", {})
    assert schema["$defs"]["DVH"]["properties"]["volume"]["$ref"] == "#/$defs/Volume"
    assert DVH.model_json_schema()["required"] == ["structure", "dose", "volume", "bound"]
    assert GEUD.model_json_schema()["properties"]["a"]["description"].startswith("Volume-effect exponent")
