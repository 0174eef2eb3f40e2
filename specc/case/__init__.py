"""Patient cases: the influence matrix with its grid, beams and structures.

`Case.load(path)` / `case.save(path)` read and write the HDF5 format (docs/case-format.md);
`specc.case.phantoms.build_phantom` builds the TG-119 phantoms with the pencil-beam engine
in `specc.case.engine`.
"""

from __future__ import annotations

from specc.case.model import Beam, Beamlets, Case, CaseMetadata, Grid, Structure
from specc.errors import CaseError

__all__ = ["Beam", "Beamlets", "Case", "CaseError", "CaseMetadata", "Grid", "Structure"]
