"""One difference between two versions of a protocol, as `specc diff` lists it (`specc.protocol.diff`).

Its own module so that the parts of a diff that look further (where an item comes from, `diff_origins`; which
removed and added structures are one renamed, `diff_renames`) build and read the same changes.
"""

from __future__ import annotations

from dataclasses import dataclass

from specc.protocol.models import DESCRIPTIVE_FIELDS

# The field of a structure's change that is its rename ("~ structure PTV_High renamed PTV_78").
RENAMED = "renamed"


@dataclass(frozen=True)
class Change:
    """One difference: `old` None for an addition, `new` None for a removal."""

    section: str  # header, prescription, structure, goal, term, solver, delivery, robustness
    item: str
    old: str | None
    new: str | None
    field: str = ""  # what changed within the item ("" for an added or removed item)
    note: str = ""  # why, where the values alone do not say (a goal's reference level moved)
    origin: str = ""  # the template file it is written in ("from site-pelvis.yaml:12, template v1.0.1"), if any

    @property
    def cosmetic(self) -> bool:
        return (self.section, self.field or self.item) in DESCRIPTIVE_FIELDS

    @property
    def provenance(self) -> bool:
        """Whether it changes only where the content comes from: the templates extended, a template's version.
        What they bring in that changed is listed item by item (and needs a new version of the protocol)."""
        return self.section == "template" or (self.section, self.item) == ("header", "extends")

    def line(self) -> str:
        """The change as one line: "+ ..." added, "- ..." removed, "~ ...: old -> new" changed."""
        # a section with one item (solver, delivery, robustness) is named once: "~ solver time_limit_s: ..."
        where = " ".join(dict.fromkeys(part for part in (self.section, self.item, self.field) if part))
        if self.field == RENAMED:
            text = f"~ {self.section} {self.old} renamed {self.new}"
        elif self.old is not None and self.new is not None:
            text = f"~ {where}: {self.old} -> {self.new}"
        else:
            value = self.new if self.old is None else self.old
            assert value is not None
            shown = self.section if value.startswith(self.item) else where  # a term's label starts with its item
            text = f"{'+' if self.old is None else '-'} {shown}: {value}"
        return (text + (f" ({self.note})" if self.note else "") + (f" ({self.origin})" if self.origin else "")
                + (" (cosmetic)" if self.cosmetic else ""))
