"""Which file a protocol's item comes from, for `specc diff`: the templates a protocol extends, with their versions.

A goal inherited from a site template changes without a line of the protocol file changing: a reviewer of the
diff needs the file to open and the template version the protocol was approved against (audit s20/t1 F7).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass

from specc.protocol.diff_change import Change
from specc.protocol.models import Protocol, SiteTemplate
from specc.terms.base import SourceLocation


@dataclass(frozen=True)
class TemplateFile:
    """A site template a protocol was read with: the file as named from the protocol's folder (`extends:` names it
    so, and a git revision's copy of the library gives the same name), and the version the template states."""

    file: str
    version: str | None

    @property
    def version_text(self) -> str:
        return f"v{self.version}" if self.version is not None else "unversioned"

    def __str__(self) -> str:
        return f"{self.file} {self.version_text}"


def chain_text(templates: Sequence[TemplateFile]) -> str:
    """The templates a protocol extends as its reviewer follows them: "site-pelvis.yaml v1.0.1, which extends
    base-pelvis.yaml v1.0.0"."""
    return ", which extends ".join(str(template) for template in templates)


class TemplateFiles:
    """The files one version of a protocol was read from: its own, and its templates with the versions they stated
    when it was loaded (`ProtocolSource.template_versions`: the merged protocol keeps only its own header)."""

    def __init__(self, protocol: Protocol | SiteTemplate) -> None:
        source = protocol.source
        files = source.files if source is not None else []
        folder = os.path.dirname(files[0]) if files else ""
        self.by_file = {
            file: TemplateFile(os.path.relpath(file, folder or os.curdir), source.template_versions.get(file))
            for file in files[1:] if source is not None
        }
        self.templates = list(self.by_file.values())

    def place(self, where: SourceLocation | None) -> tuple[str, TemplateFile | None] | None:
        """Where an item is written ("site-pelvis.yaml:12") and the template that is, or None where the item has
        no location; the template None in the protocol's own file."""
        if where is None:
            return None
        template = self.by_file.get(where.file)
        shown = template.file if template is not None else os.path.basename(where.file)
        return f"{shown}:{where.line}", template


def template_changes(before: list[TemplateFile], after: list[TemplateFile]) -> list[Change]:
    """A change of the templates extended (`extends:`, or a template's own) with their versions; else each template
    whose version changed."""
    if [template.file for template in before] != [template.file for template in after]:
        return [Change("header", "extends", chain_text(before) or None, chain_text(after) or None)]
    return [Change("template", was.file, was.version_text, now.version_text, field="version")
            for was, now in zip(before, after) if was.version != now.version]


def item_origin(
    was: SourceLocation | None, now: SourceLocation | None, old_files: TemplateFiles, new_files: TemplateFiles
) -> str:
    """Which file an item comes from where that is a template, for a reviewer to open: "from site-pelvis.yaml:12,
    template v1.0.0 -> v1.0.1", or "from base-pelvis.yaml:56, template v1.3.0; now from prostate.yaml:67" where
    the protocol now writes its own; "" for an item of the protocol's own file on both sides."""
    present = [side for side in (old_files.place(was), new_files.place(now)) if side is not None]
    if not any(template is not None for _, template in present):
        return ""
    if len(present) == 2 and present[0][1] is not None and present[1][1] is not None \
            and present[0][1].file == present[1][1].file:
        (_, before), (shown, after) = present
        versions = (before.version_text if before.version == after.version
                    else f"{before.version_text} -> {after.version_text}")
        return f"from {shown}, template {versions}"
    texts = [shown if template is None else f"{shown}, template {template.version_text}" for shown, template in present]
    return "from " + "; now from ".join(texts)


def structure_origin(
    change: Change, old: Protocol | SiteTemplate, new: Protocol | SiteTemplate, old_files: TemplateFiles,
    new_files: TemplateFiles,
) -> Change:
    """`change` of a structure with the template file its definition comes from, on either side (`item_origin`)."""
    was, now = old.structures.get(change.item), new.structures.get(change.item)
    origin = item_origin(was.source if was is not None else None, now.source if now is not None else None,
                     old_files, new_files)
    return dataclasses.replace(change, origin=origin)
