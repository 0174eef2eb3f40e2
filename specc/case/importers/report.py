"""What an importer read and how it mapped it, for the user and for the case file.

Every importer returns an `ImportedCase`: the case plus a report listing structures, grid,
beams and nonzeros, the mapping decisions it made (`notes`) and everything it read but did
not put in the case (`not_imported`), so nothing disappears without a word. Notes and the
not-imported list are also written into the case metadata, where the plan report finds them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from specc.case.model import Case
from specc.errors import CaseError


@dataclass
class ImportedCase:
    case: Case
    format: str
    source: str
    notes: list[str] = field(default_factory=list)
    not_imported: list[str] = field(default_factory=list)

    def summary_lines(self) -> list[str]:
        case = self.case
        grid = case.grid
        lines = [
            f"imported {self.format} case '{case.case_id}' from {self.source}",
            "grid: {} voxels of {} mm, origin ({}) mm".format(
                " x ".join(str(n) for n in grid.shape),
                " x ".join(f"{s:g}" for s in grid.spacing_mm),
                ", ".join(f"{o:g}" for o in grid.origin_mm),
            ),
            f"beams: {len(case.beams)} ({len(case.beamlets)} beamlets); influence matrix "
            f"{case.influence.shape[0]} voxels x {case.influence.shape[1]} beamlets, {case.influence.nnz} nonzeros",
            f"structures ({len(case.structures)}):",
        ]
        for name, structure in case.structures.items():
            lines.append(f"  {name}: {structure.n_voxels} voxels, {structure.n_voxels * grid.voxel_volume_cc:.2f} cc")
        lines += [f"note: {note}" for note in self.notes]
        lines += [f"not imported: {item}" for item in self.not_imported]
        return lines


def record_in_metadata(imported: ImportedCase) -> None:
    """Copy notes and the not-imported list into the case metadata (they travel with the file)."""
    metadata = imported.case.metadata
    parts = [metadata.notes] if metadata.notes else []
    parts += imported.notes
    metadata.notes = "\n".join(parts)
    if imported.not_imported:
        metadata.extra["import.not_imported"] = "\n".join(imported.not_imported)
    metadata.extra["import.format"] = imported.format
    metadata.extra["import.source"] = imported.source


def build_case(source: str, **fields: object) -> Case:
    """A `Case`, with any invariant it breaks reported against the file it was imported from."""
    try:
        return Case(**fields)  # type: ignore[arg-type]
    except CaseError as error:
        raise CaseError(f"{source}: {error}") from None
