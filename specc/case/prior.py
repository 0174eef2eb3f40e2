"""A dose delivered before the plan being made: what a composite plan adds to its own dose.

A sequential boost is planned on top of its initial course, a re-irradiation on top of the
earlier course: every goal is judged on the sum. The prior dose is the patient's, not the
protocol's, and not part of the case file either: `specc plan --prior-dose FILE` reads it
for one plan (`specc.composite`), and the plan records each file with its SHA-256.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class PriorSource:
    """One file the prior dose was read from."""

    file: str
    sha256: str
    format: str  # "specc result.h5", "DICOM RT Dose"
    max_gy: float  # its largest dose on the case grid
    several_courses: bool = False  # a composite plan's result.h5 or a MULTI_PLAN sum: more than one course
    fractions: int | None = None  # the fractions the file says its course had (result.h5, matRad), if it says
    frame_of_reference_uid: str | None = None  # the DICOM Frame of Reference its dose is in, if it names one
    patient_id: str | None = None  # the PatientID it names (an RT Dose's, a result.h5's case's), if it names one

    @property
    def name(self) -> str:
        """The file's name without its folders: what a note of its reading starts with (`file` is the path given)."""
        return Path(self.file).name


@dataclass(frozen=True, eq=False)
class PriorDose:
    """The prior dose on the case grid: a total in Gy over the prior course(s), physical, summed."""

    total_gy: np.ndarray
    sources: tuple[PriorSource, ...]
    notes: tuple[str, ...] = ()

    @property
    def several_courses(self) -> bool:
        """Whether the dose is of more than one course (several files, or a composite's result.h5): courses of
        other fractionations, which an EQD2 or BED goal would have to convert one by one."""
        return len(self.sources) > 1 or any(source.several_courses for source in self.sources)

    @property
    def stated_fractions(self) -> dict[str, int]:
        """The fractions its files say their courses had, by file (those that say): a disagreement with the
        protocol's prior course names the file."""
        return {source.file: source.fractions for source in self.sources if source.fractions is not None}

    def on_rows(self, voxel_indices: np.ndarray) -> np.ndarray:
        """The prior dose at the given flat grid indices (an influence matrix's rows), Gy in all."""
        return np.asarray(self.total_gy, dtype=np.float64).ravel()[voxel_indices]
