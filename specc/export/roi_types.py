"""What each ROI of an exported structure set is (RTROIInterpretedType), from what specc knows of it.

A planning system reads the type, not the name: it takes the EXTERNAL ROI as the patient's
outline, which bounds its dose calculation, and the PTV, CTV and GTV ones as targets. Without
an EXTERNAL the planner must pick the body by hand before any dose can be computed there.

What specc knows of a case structure: whether it is one of the plan's prescription targets, and
its name. What it knows of a derived structure (result.h5): its protocol role. So:

- a target (a prescription target, or a derived structure with role target) is PTV, unless its
  name says it is a GTV or a CTV (`target_type`);
- the case structure named as a patient outline (`BODY_NAMES`) is EXTERNAL, when exactly one is;
- a derived structure with role oar is ORGAN, any other derived one CONTROL (an optimization aid);
- any other case structure has no type (empty: RTROIInterpretedType is type 2).

The protocol roles of the case's own structures (`role: oar` for the rectum) are not in result.h5,
so a case organ at risk has no type here.
"""

from __future__ import annotations

from collections.abc import Iterable

from specc.protocol.names import name_key

# The names a patient outline goes by, compared case-insensitively: TG-263's "External", the
# "Body" ("BODY") of planning systems, PortPy, matRad and specc's phantoms, and "Outline". Not
# "Skin": TG-263's Skin is a rind under the surface, an organ at risk, not the outline.
BODY_NAMES = frozenset({"body", "external", "outline"})
# A target's name that starts with one of these is of that type. DICOM has no ITV type: an ITV
# is a CTV grown by its internal margin, so it is written CTV.
_TARGET_PREFIXES = (("GTV", "GTV"), ("CTV", "CTV"), ("ITV", "CTV"))


def target_type(name: str) -> str:
    """A target's type: GTV or CTV when its name starts so (case-insensitive; ITV: CTV), else PTV."""
    upper = name.upper()
    return next((kind for prefix, kind in _TARGET_PREFIXES if upper.startswith(prefix)), "PTV")


def derived_type(name: str, role: str) -> str:
    """A derived structure's type, from its protocol role: a target's (`target_type`), ORGAN for an
    organ at risk (a union of lungs, an organ less its overlap with the PTV), else CONTROL."""
    if role == "target":
        return target_type(name)
    return "ORGAN" if role == "oar" else "CONTROL"


def body_structure(names: Iterable[str], targets: set[str], notes: list[str]) -> str | None:
    """The case structure that is the patient's outline (`BODY_NAMES`), not a target; None when
    there is none, or several (a note names them: a planning system takes one EXTERNAL)."""
    found = sorted(name for name in names if name_key(name) in BODY_NAMES and name not in targets)
    if len(found) > 1:
        notes.append(
            f"the case has several structures named as the patient outline ({', '.join(found)}): none is typed "
            "EXTERNAL in RS.dcm; set the body in the planning system"
        )
    return found[0] if len(found) == 1 else None
