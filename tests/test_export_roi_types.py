"""RTROIInterpretedType of exported structures: what a planning system reads a structure as."""

from __future__ import annotations

import pytest

from specc.export.roi_types import body_structure, derived_type, target_type


@pytest.mark.parametrize(
    ("name", "kind"),
    [("PTV", "PTV"), ("PTV_70", "PTV"), ("Target", "PTV"), ("CTV_60", "CTV"), ("ctv", "CTV"), ("GTVp", "GTV"),
     ("ITV", "CTV"), ("PTV_CTV", "PTV")],
)
def test_a_target_is_ptv_unless_its_name_starts_with_gtv_ctv_or_itv(name: str, kind: str) -> None:
    assert target_type(name) == kind


def test_derived_structures_are_typed_by_their_protocol_role() -> None:
    assert [derived_type(name, role) for name, role in [("PTV", "target"), ("CTV_exp", "target"),
                                                         ("Lungs", "oar"), ("Ring", "other")]] == [
        "PTV", "CTV", "ORGAN", "CONTROL"]


def test_the_body_is_the_one_structure_named_as_the_outline() -> None:
    notes: list[str] = []
    assert body_structure(["PTV", "Rectum", "BODY"], set(), notes) == "BODY"
    assert body_structure(["PTV", "External"], set(), notes) == "External"
    assert body_structure(["PTV", "Skin", "Bodyshell"], set(), notes) is None  # a rind, a helper: not the outline
    assert notes == []
    assert body_structure(["Body", "External", "PTV"], set(), notes) is None
    assert notes == ["the case has several structures named as the patient outline (Body, External): none is typed "
                     "EXTERNAL in RS.dcm; set the body in the planning system"]
