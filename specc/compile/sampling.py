"""What a structure's sample made of its soft terms, checked on every voxel of the plan.

A sampled structure (`specc.compile.voxels`) shows its soft terms a spatially stratified
sample of its voxels: an unbiased estimate of their values at any fixed fluence. But the
optimizer chooses the fluence, and it favours dose where no sample voxel looks, so at the
optimum the sample's estimate is biased low. Measured on the TG-119 C-shape with a uniform
sample (docs/compiler.md): the shell penalty on every voxel was 1.16 times the sample's at
5 mm and 1.39 times at 2.5 mm, almost all of it inside the dose range the sample saw.
`sampled_terms` measures this on the plan, so the plan notes give both values and a
reviewer sees what the sampling cost.

Why the total excess bounds the cost: with F the objective on every voxel, S the sampled
one, x_s the plan (S's optimum) and x* F's optimum, F(x_s) - F(x*) = [F - S](x_s) +
[S(x_s) - S(x*)] + [S - F](x*) <= [F - S](x_s) + [S - F](x*). The first part is
`sampling_excess`, which the solve stage words in the plan notes against the objective
(`specc.solve.sample_check`, step by step); the second is the sample's error at a fixed
fluence, zero on average. So the excess is, on average, an upper bound on how far the plan
lies above the every-voxel optimum (measured on the TG-119 cases where both were positive: 1.9 to 5.8
times that gap; docs/performance-history.md, eighth pass).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from specc.compile.smooth_context import SmoothFormContext
from specc.compile.voxels import StructureEntries
from specc.terms.smooth import SmoothPoint

if TYPE_CHECKING:
    from specc.case import Case
    from specc.compile.program import CompiledProgram
    from specc.terms import TermBase


def _value(term: TermBase, context: SmoothFormContext, dose: np.ndarray, fluence: np.ndarray) -> float:
    """A term's objective at a dose, its auxiliary variables at their exact values."""
    form = term.smooth_form(context)
    if form.objective is None:
        return 0.0
    auxiliary = form.auxiliary.start(dose) if form.auxiliary is not None else np.empty(0)
    return float(form.objective(SmoothPoint(dose=dose, auxiliary=auxiliary, fluence=fluence))[0])


@dataclass(frozen=True)
class SampledTerm:
    """One soft term on a sampled structure: its value on the sample and on every voxel."""

    label: str
    structure: str
    index: int  # the term's position in its program (`CompiledProgram.terms`)
    sample_entries: int
    structure_voxels: int
    on_sample: float
    on_every_voxel: float

    def note(self) -> str:
        change = (
            f" ({100.0 * (self.on_every_voxel / self.on_sample - 1.0):+.0f}%)" if self.on_sample > 0 else ""
        )
        return (
            f"{self.label}: {self.on_sample:.4g} on the optimizer's sample of {self.structure} "
            f"({self.sample_entries} dose entries for {self.structure_voxels} voxels), {self.on_every_voxel:.4g} "
            f"on every voxel{change}"
        )


def sampled_terms(program: CompiledProgram, case: Case, fluence: np.ndarray) -> list[SampledTerm]:
    """Each soft term on a sampled structure, valued on its sample and on every voxel at `fluence`."""
    sampled = {name: entries for name, entries in program.selection.structures.items() if entries.sampled}
    if not sampled:
        return []
    grid = case.dose_on_grid(fluence, 1).ravel()  # Gy per fraction, every voxel
    program_dose = program.dose_per_fraction(fluence)
    whole = {name: _composite(case, grid, np.flatnonzero(program.masks[name].ravel()), program.fractions)
             for name in sampled}
    every_voxel = SmoothFormContext.of(program, {
        name: StructureEntries(name, np.arange(len(dose)), np.full(len(dose), 1.0 / len(dose)), len(dose), False)
        for name, dose in whole.items()
    })
    on_sample = SmoothFormContext.of(program, sampled)
    found = []
    for index, compiled in enumerate(program.terms):
        names = [name for name in compiled.term.structures() if name in sampled]
        if not names or compiled.hard or compiled.objective is None:
            continue
        name = names[0]  # only soft terms see a sample, and each names one structure
        entries = sampled[name]
        found.append(SampledTerm(
            compiled.label, name, index, len(entries.entries),
            entries.n_voxels,
            on_sample=_value(compiled.term, on_sample, program_dose[entries.entries], fluence),
            on_every_voxel=_value(compiled.term, every_voxel, whole[name], fluence),
        ))
    return found


def _composite(case: Case, per_fraction: np.ndarray, voxels: np.ndarray, fractions: int) -> np.ndarray:
    """The dose per fraction the terms see at `voxels`: a composite plan's adds its prior dose there."""
    dose = per_fraction[voxels]
    return dose if case.prior_dose is None else dose + case.prior_dose.on_rows(voxels) / fractions


def sampling_excess(terms: list[SampledTerm]) -> float:
    """How much more the sampled terms are on every voxel than on their sample (module docstring)."""
    return sum(term.on_every_voxel - term.on_sample for term in terms)
