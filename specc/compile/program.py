"""Protocol x case -> one cvxpy fluence-map program.

The steps, each small and each keeping what the later stages need:
structure resolution and derived structures (`structures.py`) -> the dose entries the terms
need (`voxels.py`) -> one fluence x >= 0 (over a unit-free variable,
`ScaledFluence`) and one dose variable d == A_sel @ x
(`context.py`) -> each term built by its own kind module, remembering its protocol line ->
the program, with size statistics for `specc compile` (its cvxpy problem is built on first
use: `CompiledProgram`).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from specc.case.products import select_rows
from specc.case.shifts import Displacement, beams_isocentre, displaced_influences
from specc.compile.context import ProgramContext, ScaledFluence
from specc.compile.places import said_at
from specc.compile.reach import reach_notes
from specc.compile.scenarios import robust_notes
from specc.compile.smooth_context import ReferenceFluence, reference_fluence
from specc.compile.structures import ResolvedStructures, resolve_structures
from specc.compile.voxels import DEFAULT_SAMPLE_LIMIT, StructureEntries, VoxelSelection, select_voxels
from specc.errors import CaseError, CompileError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from specc.case import Beamlets, Case
    from specc.protocol import Protocol
    from specc.protocol.models import SetupScenario
    from specc.terms import TermBase

# What a solve adds to the process's memory (its peak RSS over that after compiling), by the
# route it takes; measured on the TG-119 phantoms, 2 shared cores (docs/compiler.md):
# - the fast path reads the rows in place and copies working sets of them: 54 MiB on the 5 mm
#   C-shape (2.98 M nonzeros), about 20 bytes per nonzero;
# - a cvxpy solve (CLARABEL) holds cvxpy's canonical float64 copies with int64 indices, the
#   solver's own, and a factorization whose beamlet block fills in: a fit of 5 programs (0.2-0.9 M
#   nonzeros, 1,440-6,085 beamlets: 76-427 MiB, each within 15%; the table in docs/compiler.md,
#   pinned by tests/test_solve_memory.py) gives 300 bytes per nonzero and 6 per beamlet pair.
#   Before, one figure of 48 bytes per nonzero was 8-12x below CLARABEL's peak.
_FAST_PATH_BYTES_PER_NONZERO = 20
_CVXPY_BYTES_PER_NONZERO = 300
_CVXPY_BYTES_PER_BEAMLET_PAIR = 6


@dataclass(frozen=True)
class RowInputs:
    """What the program's dose entries were selected from, besides the structures' masks."""

    referenced: tuple[str, ...]
    exact: frozenset[str]
    sample_limit: int | None
    displaced: tuple[str, ...] = ()  # setup-error scenarios the terms name (robust optimization)
    prior: tuple[str, ...] = ()  # the prior dose files' SHA-256 (rows merge only where it is equal)


@dataclass(frozen=True)
class CompiledTerm:
    """One protocol term in the program, with the protocol line it came from."""

    term: TermBase
    label: str
    kind: str
    source: str
    hard: bool
    objective: cp.Expression | None
    constraints: list[cp.Constraint]
    met: list[cp.Constraint] = field(default_factory=list)  # where its penalty is zero (`BuiltTerm.met`)


@dataclass(frozen=True)
class StructureStats:
    """Size of one structure in the program (for the compile summary)."""

    name: str
    voxels: int  # on the full grid
    entries: int  # dose entries representing it in the program
    nonzeros: int  # influence nonzeros of those entries
    sampled: bool


@dataclass(frozen=True)
class ProgramStats:
    """Sizes of the program (`specc compile`); the memory a solve adds follows from `nonzeros` and
    `beamlets` on the route the solve takes (`specc.solve.clinical.estimated_solve_memory`)."""

    variables: int
    constraints: int
    dose_entries: int
    beamlets: int
    nonzeros: int
    structures: list[StructureStats]
    compile_time_s: float


@dataclass
class CompiledProgram:
    """A solvable program plus what is needed to explain and evaluate its solution.

    `problem` (the cvxpy problem: `objective` under `dose == A_sel @ fluence` and the terms'
    constraints) is built on first use. cvxpy copies A_sel to a float64 matrix of its own
    when the linking constraint is written (12 bytes per nonzero: 386 MB for every voxel of
    the 2.5 mm benchmark case), and the fast path, which reads `influence` directly, never
    needs it; a cvxpy solve, a lexicographic step or a diagnosis builds it.
    """

    fluence: ScaledFluence  # x (beamlet weights per fraction) = fluence_scale * the solver's unit-free variable
    dose: cp.Variable
    objective: cp.Expression
    terms: list[CompiledTerm]
    structures: ResolvedStructures
    selection: VoxelSelection
    fractions: int
    stats: ProgramStats
    beamlets: Beamlets
    # x_ref for this program's prescription: the fluence's scale (`fluence_scale` is its beamlet weight, also on
    # rows reused from an earlier program) and what smoothness and fluence_regularization are relative to.
    reference_fluence: ReferenceFluence
    notes: list[str] = field(default_factory=list)
    # The influence rows of the dose entries as the case stores them (Gy per unit beamlet weight
    # per fraction; `select_rows`: for an unsampled program a view of the case's arrays, no
    # copy) and the voxel volume: what a matrix-free solver (specc.solve.first_order) reads.
    influence: sp.csr_matrix | None = None
    voxel_volume_cc: float = 0.0
    # What chose the rows (`select_voxels`): a recompile with the same keeps them (`reuse`).
    row_inputs: RowInputs | None = None
    # A prior course's dose on the dose entries, in Gy per fraction of this plan (None: no
    # prior dose): the terms see the composite, `dose == A_sel @ fluence + offset`.
    offset: np.ndarray | None = None
    # The protocol compiled (with its derived terms): a diagnosis names a limit held for a goal in EQD2 or
    # BED by that goal, in its quantity (`specc.solve.diagnose`).
    protocol: Protocol | None = None
    # Set by `with_problem` (a lexicographic step, an exact refinement): a problem that is not
    # the compiled one, which the fast path must not take for it.
    _problem: cp.Problem | None = field(default=None, repr=False)
    problem_is_compiled: bool = True

    @property
    def fluence_scale(self) -> float:
        """Beamlet weights per unit of the variable every solver sees (x = fluence_scale * z): the case's reference
        fluence, which moves with its beamlet-weight unit, so that the problem solved, and the plan a solver's
        path picks where the optimum is not unique, do not (`ScaledFluence`; the fast path solves in z too)."""
        return self.fluence.scale

    def dose_per_fraction(self, fluence: np.ndarray) -> np.ndarray:
        """d = A_sel x (+ the prior dose's offset) in Gy per fraction (float64), on the program's dose entries."""
        matrix = self.influence
        assert matrix is not None, "the program carries no influence matrix"
        dose = np.asarray(matrix @ np.asarray(fluence, dtype=matrix.dtype), dtype=np.float64)
        return dose if self.offset is None else dose + self.offset

    def linking(self, rows: np.ndarray | slice = slice(None)) -> list[cp.Constraint]:
        """`dose == A_sel @ fluence (+ offset)` on the dose entries `rows`: where the terms meet the fluence."""
        if not self.dose.size or self.influence is None:
            return []
        # s (A z), not A (s z): the scale then multiplies the canonical matrix's values, where A diag(s) cost cvxpy a
        # sparse product (5 mm C-shape: canonicalization 1.3-1.5 -> 2.1-2.5 s; docs/performance.md).
        dose_of_fluence = self.fluence.scale * (self.influence[rows] @ self.fluence.variable)
        if self.offset is not None:
            dose_of_fluence = dose_of_fluence + self.offset[rows]
        return [self.dose[rows] == dose_of_fluence]

    @property
    def problem(self) -> cp.Problem:
        if self._problem is None:
            linking = self.linking()
            constraints = [*linking, *(c for term in self.terms for c in term.constraints)]
            self._problem = cp.Problem(cp.Minimize(self.objective), constraints)
        return self._problem

    def with_problem(self, problem: cp.Problem) -> CompiledProgram:
        """The same program handed to a solver as `problem` (extra constraints or another objective)."""
        return dataclasses.replace(self, _problem=problem, problem_is_compiled=False)

    @property
    def masks(self) -> dict[str, np.ndarray]:
        """Resolved and derived structure masks on the case grid, by protocol name."""
        return self.structures.masks

    def hard_terms(self) -> list[CompiledTerm]:
        return [term for term in self.terms if term.hard]

    def hard_dvh_terms(self) -> list[CompiledTerm]:
        """Hard DVH limits: CVaR bounds a cvxpy solver refines to exact ones (`specc.solve.refine`)."""
        return [term for term in self.hard_terms() if term.kind == "dvh"]


def protocol_sample_limit(protocol: Protocol, default: int = DEFAULT_SAMPLE_LIMIT) -> int | None:
    """The protocol's `optimization.solver.sample_voxels` as a sample limit (None: every voxel), else `default`."""
    chosen = protocol.optimization.solver.sample_voxels if protocol.optimization is not None else None
    if chosen == "all":
        return None
    return default if chosen is None else chosen


def _source(term: TermBase) -> str:
    return str(term.source) if term.source is not None else "(no source line)"


def _refused(protocol: Protocol, term: TermBase, error: str, field: str | None = None) -> CompileError:
    """A term's error where the term is written (at its `field`, where the problem is in one): the place a
    protocol file's own errors are named by (`specc.compile.places`)."""
    return CompileError(said_at(protocol, term.source, f"{term.label()}: {error}", field=field))


def compile_protocol(
    protocol: Protocol,
    case: Case,
    sample_limit: int | None | Literal["protocol"] = "protocol",
    reuse: CompiledProgram | None = None,
) -> CompiledProgram:
    """Compile `protocol` against `case`; raises CompileError naming the protocol line.

    `sample_limit`: soft-only, non-target structures with more entries are sampled to it
    (`specc.compile.voxels`); None keeps every voxel; "protocol" takes the protocol's
    `optimization.solver.sample_voxels` (default `DEFAULT_SAMPLE_LIMIT`).
    `reuse`: an earlier program of the same case. When the new protocol would select the same
    dose entries (same masks of the structures its terms name, same hard and target ones, same
    sample), its rows, matrix and dose variable are kept and only the terms are built: a weight or
    a level changed while tuning costs no row selection (large benchmark case: 0.06 s instead
    of 0.56-0.73 s), and a solver holding the earlier program's plan can warm-start. The fluence
    is the earlier one only while its scale, the prescription's reference fluence, is unchanged:
    the program is the one a compile without `reuse` gives.
    """
    if sample_limit == "protocol":
        sample_limit = protocol_sample_limit(protocol)
    started = time.perf_counter()
    if protocol.optimization is None or not protocol.optimization.terms:
        raise CompileError(
            f"{protocol.source.path}: the protocol has no `optimization:` terms, so there is nothing to "
            "optimize; add terms (e.g. min_dose / max_dose / quadratic_overdose) under `optimization:`"
        )
    structures = resolve_structures(protocol, case)
    scenarios = protocol.optimization.scenarios
    terms, left_out = structures.without_absent(protocol.optimization.terms, scenarios)
    if not terms:
        raise CompileError(
            f"{protocol.source.path}: every optimization term is on a structure this case lacks; nothing is left "
            "to optimize:\n  " + "\n  ".join(left_out)
        )
    notes = [*structures.notes, *left_out, *reach_notes(protocol, case, structures)]
    referenced: dict[str, None] = {}
    displaced: dict[str, None] = {}
    for term in terms:
        for name in term.structures():
            base = scenarios[name].structure if name in scenarios else name
            if base not in structures.masks:
                raise _refused(protocol, term, f"structure {base!r} is not defined", field="structure")
            (displaced if name in scenarios else referenced)[name] = None
    _check_prior(protocol, case)
    exact = {name for term in terms for name in term.every_voxel() if name not in scenarios}
    exact |= {name for name in referenced if structures.is_target(name)}
    prior_files = tuple(source.sha256 for source in case.prior_dose.sources) if case.prior_dose is not None else ()
    row_inputs = RowInputs(tuple(referenced), frozenset(exact), sample_limit, tuple(displaced), prior_files)
    if reuse is not None and _same_rows(reuse, row_inputs, structures):
        assert reuse.influence is not None
        selection, influence_rows, dose = reuse.selection, reuse.influence, reuse.dose
        reference = _Reference(reference_fluence(protocol, case, structures, earlier=reuse))
        # The fluence's scale is this prescription's x_ref, as on new rows: kept, the earlier prescription's scale
        # picked another plan where the optimum is not unique (audit r2 F3: 1.6 Gy off `specc plan` of the same
        # files after 50 -> 60 Gy). A new variable of n_beamlets costs nothing; the dose link and the terms are
        # built for this program anyway.
        scale = reference.found.beamlet_weight
        fluence = reuse.fluence if reuse.fluence_scale == scale else ScaledFluence.over(case.n_beamlets, scale)
    else:
        reference = _Reference(reference_fluence(protocol, case, structures))
        structure_rows = {name: case.rows(structures.masks[name]) for name in referenced}
        if structure_rows:
            prior_rows = case.prior_dose.on_rows(case.voxel_indices) if case.prior_dose is not None else None
            selection = select_voxels(
                case.influence, structure_rows, exact, sample_limit, locate=case.grid_indices, offsets=prior_rows
            )
        else:
            selection = VoxelSelection(rows=np.empty(0, dtype=np.int64), structures={})
        # The case's dtype, no float64 copy: cvxpy converts the constant to its own float64
        # matrix anyway, and the fast path reads the float32 rows.
        influence_rows = select_rows(case.influence, selection.rows)
        if displaced:
            selection, influence_rows = _with_displaced(
                case, structures, selection, influence_rows, {name: scenarios[name] for name in displaced}
            )
        # The solver's variable is the fluence over the reference fluence (`ScaledFluence`): unit-free.
        fluence = ScaledFluence.over(case.n_beamlets, reference.found.beamlet_weight)
        dose = cp.Variable(influence_rows.shape[0], name="dose_per_fraction")
    for entries in selection.structures.values():
        if entries.sampled:
            inside = (f"its {entries.kept} voxels whose rows the program holds anyway and " if entries.kept else "")
            notes.append(
                f"{entries.name}: soft objectives see {inside}a spatially stratified sample of {sample_limit} of its "
                f"other {entries.n_voxels - entries.kept} voxels (no hard term refers to it; "
                "`optimization.solver.sample_voxels` sets the sample, `all` optimizes on every voxel); the plan is "
                "evaluated on every voxel"
            )

    if displaced:
        notes.extend(robust_notes(protocol, [scenarios[name] for name in displaced], case, structures.masks))
    # A composite's prior dose on the dose entries, per fraction of this plan. A displaced voxel's
    # entry gets the prior dose where the voxel is: the prior course was delivered to the
    # anatomy, and a setup error of this course moves this plan's dose only.
    offset = None
    if case.prior_dose is not None:
        parts = [case.prior_dose.on_rows(case.voxel_indices[selection.rows])]
        parts += [case.prior_dose.total_gy[structures.masks[scenarios[name].structure]] for name in displaced]
        offset = np.concatenate(parts) / protocol.prescription.fractions

    context = ProgramContext(
        fluence, dose, selection.structures, case.voxel_volume_cc, protocol.prescription.fractions, case.beamlets,
        reference.for_term,
    )

    compiled: list[CompiledTerm] = []
    for term in terms:
        try:
            built = term.build(context)
        except CompileError as error:
            raise _refused(protocol, term, str(error), field=error.field) from None
        compiled.append(
            CompiledTerm(
                term=term,
                label=term.label(),
                kind=term.kind,
                source=_source(term),
                hard=bool(term.is_constraint),
                objective=built.objective,
                constraints=list(built.constraints),
                met=list(built.met),
            )
        )

    if reference.asked:
        notes.append(reference.found.note())
    objectives = [term.objective for term in compiled if term.objective is not None]
    if not objectives:
        notes.append("no term has an objective: the solver returns any fluence that meets the hard limits")
    objective = cp.sum(objectives) if objectives else cp.Constant(0.0)
    term_constraints = [c for term in compiled for c in term.constraints]
    stats = _statistics(
        objective, term_constraints, fluence, dose, selection, influence_rows, case.n_beamlets,
        time.perf_counter() - started,
    )
    return CompiledProgram(
        fluence=fluence,
        dose=dose,
        objective=objective,
        terms=compiled,
        structures=structures,
        selection=selection,
        fractions=protocol.prescription.fractions,
        stats=stats,
        beamlets=case.beamlets,
        reference_fluence=reference.found,
        notes=notes,
        influence=influence_rows,
        voxel_volume_cc=case.voxel_volume_cc,
        row_inputs=row_inputs,
        offset=offset,
        protocol=protocol,
    )


class _Reference:
    """The program's reference fluence as its terms ask for it: `asked` (a term on the fluence asked; the compile
    notes then name it, as the scale its terms were read on)."""

    def __init__(self, found: ReferenceFluence) -> None:
        self.found = found
        self.asked = False

    def for_term(self) -> ReferenceFluence:
        self.asked = True
        return self.found


def _check_prior(protocol: Protocol, case: Case) -> None:
    """A composite needs its prior dose, and only a composite takes one (before any row is selected)."""
    prior = case.prior_dose
    mismatch = protocol.prescription.prior_mismatch(prior is not None)
    declared = protocol.prescription.prior
    if mismatch is not None and declared is None:  # a prior dose the protocol declares no course for: no place
        raise CompileError(said_at(protocol, None, mismatch))
    if mismatch is not None:  # at the prior course the case gives no dose for
        raise CompileError(said_at(protocol, declared.source, mismatch, path=("prescription", "prior")))
    courses = protocol.prior_courses_mismatch(prior.several_courses, prior.stated_fractions) if prior is not None else None
    if courses is not None:
        raise CompileError(courses)  # located at `prescription.prior.fractions`


def _same_rows(earlier: CompiledProgram, inputs: RowInputs, structures: ResolvedStructures) -> bool:
    """Whether `earlier` selected its dose entries from the same inputs (so the same entries)."""
    if earlier.row_inputs != inputs or earlier.influence is None:
        return False
    scenarios = earlier.selection.scenarios
    masks = [*inputs.referenced, *(scenarios[name].structure for name in inputs.displaced)]
    return all(np.array_equal(earlier.structures.masks[name], structures.masks[name]) for name in masks)


def _with_displaced(
    case: Case,
    structures: ResolvedStructures,
    selection: VoxelSelection,
    influence_rows: sp.csr_matrix,
    scenarios: Mapping[str, SetupScenario],
) -> tuple[VoxelSelection, sp.csr_matrix]:
    """The selection with one dose entry per voxel of each displaced structure, after the others.

    A displaced voxel's row is an interpolation of up to eight case rows (`displaced_influences`;
    with random errors, of their blurred rows), not a row of the case, so it is neither merged
    with others nor sampled: a robust term sees every voxel of its structure in every scenario.
    """
    centre = beams_isocentre(case.beams)
    try:
        moved = {name: Displacement.of(scenario, centre) for name, scenario in scenarios.items()}
    except CaseError as error:
        raise CompileError(str(error)) from None
    # A structure's scenarios share the rows they interpolate (`displaced_influences`).
    groups: dict[tuple[str, tuple[float, float, float] | None], list[str]] = {}
    for name, scenario in scenarios.items():
        groups.setdefault((scenario.structure, scenario.random_error_mm), []).append(name)
    rows_of: dict[str, sp.csr_matrix] = {}
    for (base, blur), names in groups.items():
        found = displaced_influences(case, structures.masks[base], [moved[name] for name in names], blur)
        rows_of.update(zip(names, found))
    blocks, entries, start = [influence_rows], dict(selection.structures), influence_rows.shape[0]
    for name, scenario in scenarios.items():
        block = rows_of[name]
        count = block.shape[0]
        entries[name] = StructureEntries(
            name=name, entries=np.arange(start, start + count), weights=np.full(count, 1.0 / max(count, 1)),
            n_voxels=count, sampled=False, scenario=scenario,
        )
        blocks.append(block)
        start += count
    return dataclasses.replace(selection, structures=entries), sp.vstack(blocks, format="csr")


def estimated_memory(nonzeros: int, beamlets: int, by_cvxpy: bool) -> int:
    """Bytes a solve of a program of this size adds, on the fast path or by a cvxpy solver (the
    measured basis is at `_CVXPY_BYTES_PER_NONZERO`); which route a plan takes is the solve
    stage's rule (`specc.solve.clinical.estimated_solve_memory`)."""
    if by_cvxpy:
        return nonzeros * _CVXPY_BYTES_PER_NONZERO + beamlets * beamlets * _CVXPY_BYTES_PER_BEAMLET_PAIR
    return nonzeros * _FAST_PATH_BYTES_PER_NONZERO


def _statistics(
    objective: cp.Expression,
    term_constraints: list[cp.Constraint],
    fluence: ScaledFluence,
    dose: cp.Variable,
    selection: VoxelSelection,
    influence_rows: sp.csr_matrix,
    beamlets: int,
    seconds: float,
) -> ProgramStats:
    """Sizes as cvxpy will see them, without building the problem (the linking constraint
    `dose == A_sel @ fluence` adds one row per dose entry)."""
    row_nonzeros = np.diff(influence_rows.indptr)
    structures = [
        StructureStats(
            name=name,
            voxels=entries.n_voxels,
            entries=len(entries.entries),
            nonzeros=int(row_nonzeros[entries.entries].sum()),
            sampled=entries.sampled,
        )
        for name, entries in selection.structures.items()
    ]
    nonzeros = int(influence_rows.nnz)
    variables = {id(v): v for v in [fluence.variable, dose, *objective.variables()]}
    variables.update({id(v): v for constraint in term_constraints for v in constraint.variables()})
    return ProgramStats(
        variables=int(sum(variable.size for variable in variables.values())),
        constraints=int(dose.size + sum(constraint.size for constraint in term_constraints)),
        dose_entries=int(influence_rows.shape[0]),
        beamlets=beamlets,
        nonzeros=nonzeros,
        structures=structures,
        compile_time_s=seconds,
    )
