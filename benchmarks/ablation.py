"""Benchmark: what each technique of the fast path contributes, each switched off in turn.

    python -m benchmarks.ablation            # the 5 mm C-shape cases, a few minutes
    python -m benchmarks.ablation --large    # the clinical-size cases of benchmarks.run (many minutes)
    python -m benchmarks.ablation --tiny     # the CI configuration
    python -m benchmarks.ablation --repeats 3 --only "no working sets"
    python -m benchmarks.ablation --large --no-reference --only "no working sets"   # one row, no 2 x 600 s reference

Each size runs two cases: the C-shape protocol of `benchmarks.run` (soft terms only) and the same
with active hard limits on the core (`benchmarks.run`'s limits case), where the techniques for
constrained programs (inexact rounds, the objective-only start) do their work. The default is the
plan as `specc plan` makes it (`benchmarks.run`'s "specc fast path": compiled for the plan,
solved, the sample checked on every voxel). Each ablation runs the same plan with one technique
switched off, in a spawned process of its own (its peak memory is its own; the switch never leaks
into another run), and prints the figures of `benchmarks.run` plus the run's time over the
default's from the same command, and its plan's objective on every voxel with the gap to a tight
reference: CLARABEL at 1e-9 on the every-voxel program, run once per case (unless `--no-reference`: at the
large size it runs to the time limit and gives no gap). Runs are interleaved
over the repeats, so machine load falls on all of them alike, and the table gives each one's
median. A switch replaces one name in the module that owns the technique (listed in
`ABLATIONS`), which must exist: a renamed function makes this benchmark fail, never silently
measure the default. Results also go to a JSON file.
"""
from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import OptimizeResult

from benchmarks.run import (
    EVERY_VOXEL, EVERY_VOXEL_REFERENCE, LARGE, LARGE_LIMITS, STANDARD, STANDARD_LIMITS, TINY, TINY_LIMITS,
    BenchmarkCase, add_until_stopped, finish_provenance, has_plan, in_child, provenance, replace_existing, run_method,
    stopped, write_json,
)

DEFAULT = "default (as specc plan)"
FAST_PATH = "specc fast path"
NO_FAST_PATH = "no fast path (CLARABEL 1e-6)"
# The gaps' optimum: CLARABEL at 1e-9 on the every-voxel program, one run per case (not an ablation).
REFERENCE = "reference (CLARABEL 1e-9, every voxel)"


_replace = replace_existing  # each ablation sets a name the code must still have


def _no_working_sets() -> None:
    """A first solve on the whole program to the certificate (tenth pass: working sets)."""
    from specc.solve.first_order import augmented_lagrangian, solver

    _replace(solver, "minimize_from_scratch", lambda program, z, tolerances:
             augmented_lagrangian.minimize_augmented_lagrangian(program, z, tolerances))


def _exact_rounds() -> None:
    """Every augmented-Lagrangian round, and the objective-only start, run on until L-BFGS-B's own `ftol` or the
    certificate stops it, never at the round's tolerance (ninth pass: inexact rounds)."""
    from specc.solve.first_order import augmented_lagrangian

    _replace(augmented_lagrangian, "_round_tolerance", lambda tolerances, left: -np.inf)


def _no_objective_only_start() -> None:
    """A cold solve with hard limits starts its rounds at once, the first penalty set at the start point
    ("Tried": the objective-only phase first)."""
    from specc.solve.first_order import augmented_lagrangian

    _replace(augmented_lagrangian, "_objective_only_start", lambda program, z, loop, tolerances: z)


def _no_anchor_doses() -> None:
    """Each float32 forward product of the whole fluence, not a float64 anchor dose plus the float32 product of the
    step from it (ninth pass: anchors; before them the float32 rounds ended in a float64 polish)."""
    from specc.solve.first_order.assemble import DoseOperator

    def forward(self, fluence: np.ndarray) -> np.ndarray:
        return self._dose(self._blocks.forward(np.asarray(fluence).astype(self._vector)).astype(np.float64))

    _replace(DoseOperator, "forward", forward)


def _uniform_sample() -> None:
    """The soft-only structures' sample drawn uniformly, each voxel standing for as many, not one voxel per run of
    a Morton curve (eighth pass: a stratified sample). The voxels whose rows the program holds stay exact."""
    from specc.compile import voxels

    _replace(voxels, "stratified_sample", uniform_sample)


def uniform_sample(
    voxel_groups: np.ndarray, order: np.ndarray, size: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """`size` of the voxels drawn uniformly without replacement: (their groups, the voxels each stands for)."""
    drawn = np.sort(rng.choice(len(order), size=size, replace=False))
    return voxel_groups[order[drawn]], np.full(size, len(order) / size)


def _no_threads() -> None:
    """Every product as one block on one thread (seventh pass: products on threads)."""
    from specc.case import products

    _replace(products, "BLOCK_NONZEROS", 2**62)


def _no_row_merging() -> None:
    """Every selected voxel its own dose entry, identical rows not merged (first and fourth passes)."""
    from specc.compile import voxels

    _replace(voxels, "_group_identical_rows", lambda influence, rows, offsets=None: np.arange(len(rows), dtype=np.int64))


def _fixed_memory() -> None:
    """20 L-BFGS pairs whatever the program's size (eleventh pass: memory from the program)."""
    from specc.solve.first_order import augmented_lagrangian

    _replace(augmented_lagrangian, "_history", lambda program: 20)


def _shaping_to_feasibility() -> None:
    """A first solve's shaping run held to the certificate's feasibility and complementarity, only its
    stationarity loosened (twenty-second pass: the certificate loosened as a whole)."""
    from specc.solve.first_order import working_set

    _replace(working_set, "shaping", lambda tolerances: dataclasses.replace(
        tolerances, stationarity=max(working_set.SHAPED, tolerances.stationarity)))


def _memory_cap_100() -> None:
    """At most 100 L-BFGS pairs (twenty-second pass: 400, where a round outlives 100 iterations)."""
    from specc.solve.first_order import augmented_lagrangian

    _replace(augmented_lagrangian, "_HISTORY_MAX", 100)


def _float64_matrix() -> None:
    """The influence matrix in float64, products in float64 (ninth pass: float32 with float64 anchors).

    Set after loading, past the validation that stores A in float32 (a new Case would be made float32 again); what
    the case keeps of its matrix (its beamlets' peaks) has the same values in either precision, and its content
    hash, checked against the file when it was loaded, stays the file's (the float32 matrix's)."""
    from specc.case import Case

    load = Case.load

    def load_in_float64(path, *args, **kwargs):
        case = load(path, *args, **kwargs)
        case.influence = case.influence.astype(np.float64)
        return case

    _replace(Case, "load", load_in_float64)


def _every_variable_to_lbfgsb() -> None:
    """L-BFGS-B handed every variable, a working set's held beamlets too, fixed there by their bounds (twenty-fourth
    pass: only the variables that can move). On a set of no free beamlet scipy is then handed only fixed variables
    and answers without `nit` or `status` (scipy 1.17): read, as the code before that pass read it, as converged
    there after no iteration."""
    from specc.solve.first_order import augmented_lagrangian

    lbfgsb = augmented_lagrangian.minimize

    def minimize(*args: Any, **options: Any) -> OptimizeResult:
        result = lbfgsb(*args, **options)
        if "nit" not in result:
            result.nit, result.status = 0, 0
        return result

    _replace(augmented_lagrangian, "_movable", lambda lower, upper: np.arange(len(lower)))
    _replace(augmented_lagrangian, "minimize", minimize)


def _limits_to_a_tenth() -> None:
    """The certificate holds hard limits to 1e-4 of their dose, a tenth of `LIMIT_TOLERANCE` (twenty-sixth pass: 5e-4,
    half of it). The solver reads the class's default where it sets its tolerances."""
    from specc.solve.first_order import augmented_lagrangian

    _replace(augmented_lagrangian.Tolerances, "feasibility", 1e-4)


# name -> (method of benchmarks.run, switch applied in the child before it runs)
ABLATIONS: dict[str, tuple[str, Callable[[], None] | None]] = {
    DEFAULT: (FAST_PATH, None),
    "no sampling (every voxel)": (EVERY_VOXEL, None),
    "uniform sample": (FAST_PATH, _uniform_sample),
    "no working sets": (FAST_PATH, _no_working_sets),
    "exact rounds (to ftol)": (FAST_PATH, _exact_rounds),
    "no objective-only start": (FAST_PATH, _no_objective_only_start),
    "no float64 anchor doses": (FAST_PATH, _no_anchor_doses),
    "no product threads": (FAST_PATH, _no_threads),
    "no identical-row merging": (FAST_PATH, _no_row_merging),
    "20 L-BFGS pairs": (FAST_PATH, _fixed_memory),
    "at most 100 L-BFGS pairs": (FAST_PATH, _memory_cap_100),
    "shaping to the certificate's feasibility": (FAST_PATH, _shaping_to_feasibility),
    "held beamlets handed to L-BFGS-B": (FAST_PATH, _every_variable_to_lbfgsb),
    "limits to 1e-4 of their dose": (FAST_PATH, _limits_to_a_tenth),
    "float64 matrix": (FAST_PATH, _float64_matrix),
    # benchmarks.run's method: CLARABEL at its own tolerance (1e-6), on the default's sample
    NO_FAST_PATH: ("CLARABEL 1e-6 (no fast path)", None),
}

# Each size on the C-shape protocol (soft terms only) and on the same with active hard limits on the
# core (benchmarks/protocols/c-shape-limits.yaml): the rounds, the objective-only start and the
# penalty work only where there are limits. The tiny cases' sample (benchmarks.run: 2,000 voxels, the
# default's 30,000 would take the whole 10 mm body) makes the sample's rows switch something in CI.
SIZES: dict[str, tuple[BenchmarkCase, ...]] = {
    "tiny": (TINY, TINY_LIMITS), "standard": (STANDARD, STANDARD_LIMITS), "large": (LARGE, LARGE_LIMITS),
}


def _run_ablation(case_path: str, protocol: str, name: str, sample_limit: int | None,
                  queue: multiprocessing.Queue) -> None:
    method, switch = (EVERY_VOXEL_REFERENCE, None) if name == REFERENCE else ABLATIONS[name]
    if switch is not None:
        switch()
    run_method(case_path, protocol, method, sample_limit, queue)


def _measure(case_path: str, protocol: str, name: str, sample_limit: int | None, time_limit_s: float) -> dict:
    """One run in a child process, with the child's seconds (`child_s`, which `add_until_stopped` reads). One the
    time limit stopped has no plan and no total (its parts are unknown), as `benchmarks.run`'s."""
    run, seconds = in_child(_run_ablation, (case_path, protocol, name, sample_limit), time_limit_s)
    if run is None:
        return {"ablation": name, **stopped(seconds, time_limit_s)}
    return {"ablation": name, **run, "child_s": seconds}


def run_case(case: BenchmarkCase, folder: Path, names: list[str], repeats: int, time_limit_s: float,
             reference: bool = True) -> dict:
    """Every ablation in `names` on `case`, interleaved over `repeats`, and the tight reference once (unless not
    `reference`: at the large size it never finishes, and its time limit was most of a one-row run)."""
    from specc.case.phantoms import build_phantom

    built = build_phantom(case.phantom, beams=case.beams, grid_mm=case.grid_mm, beamlet_mm=case.beamlet_mm)
    case_path = folder / f"{case.phantom}-{case.grid_mm:g}.h5"
    built.save(case_path)
    size = {"rows": built.influence.shape[0], "beamlets": built.n_beamlets, "nonzeros": int(built.influence.nnz)}
    del built
    runs: dict[str, list[dict]] = {name: [] for name in names}
    for _ in range(repeats):
        for name in names:
            runs[name].append(_measure(str(case_path), case.protocol, name, case.sample_limit, time_limit_s))
    tight = [_measure(str(case_path), case.protocol, REFERENCE, case.sample_limit, time_limit_s)] if reference else []
    add_until_stopped([*(run for measured in runs.values() for run in measured), *tight])
    rows = [_summary(name, measured) for name, measured in runs.items()]
    rows += [_summary(REFERENCE, tight)] if tight else []
    _over_default(rows)
    # Its objective valued as every row's is (`objective_every_voxel`), so that its own gap is 0.
    optimum = tight[0].get("objective_every_voxel") if tight and tight[0]["status"] == "optimal" else None
    for row in rows:
        if optimum is not None and row.get("objective_every_voxel") is not None:
            row["gap_every_voxel"] = (row["objective_every_voxel"] - optimum) / abs(optimum)
    return {"case": case.name, "protocol": case.protocol, "size": size, "sample_limit": case.sample_limit,
            "repeats": repeats, "reference": REFERENCE if optimum is not None else None, "rows": rows, "runs": runs}


def _summary(name: str, measured: list[dict]) -> dict:
    """The median of each timing over the repeats; the plan's figures from the first run (they repeat). A row whose
    runs all gave a plan has their median total and YAML-to-plan; one with a run without a plan (stopped at the
    time limit or by its solver) has no total, and its time is `until_stopped_s`: the median of each run's
    YAML-to-plan or, without a plan, its `until_stopped_s` (`benchmarks.run.add_until_stopped`), a lower bound."""
    first = measured[0]
    row = {"ablation": name, "status": "/".join(sorted({run["status"] for run in measured}))}
    for key in ("compile_s", "solve_s", "evaluate_s", "peak_memory_mb"):
        values = [run[key] for run in measured if key in run]
        if values:
            row[key] = statistics.median(values)
    if all(has_plan(run) for run in measured):
        row["total_s"] = statistics.median(run["total_s"] for run in measured)
        row["yaml_to_plan_s"] = statistics.median(run["yaml_to_plan_s"] for run in measured)
    else:
        row["total_s"] = float("nan")
        row["until_stopped_s"] = statistics.median(
            run["yaml_to_plan_s"] if has_plan(run) else run["until_stopped_s"] for run in measured)
    for key in ("objective", "objective_every_voxel", "iterations", "program_size", "solver", "tolerance",
                "hard_limits", "hard_violation_gy", "message"):
        if key in first:
            row[key] = first[key]
    return row


def _over_default(rows: list[dict]) -> None:
    """Each row's time over the default's: its total over the default's; for a row without a total, its time until
    stopped over the default's YAML-to-plan (both from the YAML), a lower bound (the row's `until_stopped_s` says
    so), as `benchmarks.run` bounds a speed-up against a baseline that gave no plan. None without a default's plan."""
    default = next((row for row in rows if row["ablation"] == DEFAULT), None)
    if default is None or "yaml_to_plan_s" not in default:
        return
    for row in rows:
        row["total_over_default"] = (row["until_stopped_s"] / default["yaml_to_plan_s"] if "until_stopped_s" in row
                                     else row["total_s"] / default["total_s"])


def _print(result: dict) -> None:
    size = result["size"]
    sample = f"; the fast path's sample {result['sample_limit']:,} voxels" if result["sample_limit"] else ""
    if result["reference"]:
        against = "its distance to the reference's optimum"
    elif any(row["ablation"] == REFERENCE for row in result["rows"]):
        against = "no reference (it did not end optimal): no gap"
    else:
        against = "no reference (--no-reference): no gap"
    print(f"\n{result['case']} ({result['protocol']}): {size['rows']} rows, {size['beamlets']} beamlets, "
          f"{size['nonzeros']} nonzeros{sample}; medians of {result['repeats']} run(s); 'every voxel': the plan's "
          f"objective on every voxel, 'gap to ref': {against}; 'viol Gy': the largest hard dose limit's violation "
          "on the full grid; 'total': compile + solve + evaluate, or with '>' for a run without a plan the seconds "
          "from its YAML until it was stopped (a lower bound), its 'x default' over the default's YAML-to-plan")
    print(f"{'ablation':38} {'status':12} {'entries':>8} {'compile':>8} {'solve':>8} {'total':>8} {'x default':>9} "
          f"{'peak MB':>8} {'iterations':>10} {'every voxel':>12} {'gap to ref':>10} {'viol Gy':>8}")
    for row in result["rows"]:
        print(_row(row))


def _row(row: dict) -> str:
    """An ablation's line of the table: without a plan its total is `until_stopped_s`, marked '>' as is its time
    over the default's where there is one (`_over_default`)."""
    nan = float("nan")
    iterations = row.get("iterations")
    entries = row["program_size"][0] if row.get("program_size") else ""
    without_plan = "until_stopped_s" in row
    return (f"{row['ablation']:38} {row['status'][:12]:12} {entries:>8} {row.get('compile_s', nan):8.2f} "
            f"{row.get('solve_s', nan):8.2f} "
            f"{'>' if without_plan else ' '}{row['until_stopped_s'] if without_plan else row['total_s']:7.2f} "
            f"{'>' if without_plan and 'total_over_default' in row else ' '}{row.get('total_over_default', nan):8.2f} "
            f"{row.get('peak_memory_mb', nan):8.0f} {iterations if iterations is not None else '':>10} "
            f"{row.get('objective_every_voxel') or nan:12.6g} {row.get('gap_every_voxel', nan):10.1e} "
            f"{_violation(row):>8}")


def _violation(row: dict) -> str:
    """The largest hard dose limit's violation (Gy), '-' for a case without one, '?' for a run without a plan."""
    if "hard_violation_gy" not in row:
        return "?"
    return "-" if row["hard_violation_gy"] is None else f"{row['hard_violation_gy']:.3g}"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ablation", description=__doc__.splitlines()[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--large", action="store_true", help="the clinical-size cases instead of the 5 mm ones")
    size.add_argument("--tiny", action="store_true", help="the small CI cases")
    parser.add_argument("--only", nargs="+", choices=[name for name in ABLATIONS if name != DEFAULT], default=None,
                        help="these ablations (the default always runs, and the reference unless --no-reference)")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each, interleaved; the table gives medians")
    parser.add_argument("--time-limit", type=float, default=600.0, help="seconds per run")
    parser.add_argument("--no-reference", action="store_true",
                        help="without the tight reference (CLARABEL 1e-9 on every voxel), which at the large size "
                             "runs to the time limit: no gap to it")
    parser.add_argument("--json", type=Path, default=Path("ablation-results.json"))
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    cases = SIZES["tiny" if args.tiny else "large" if args.large else "standard"]
    names = [DEFAULT, *(args.only or [name for name in ABLATIONS if name != DEFAULT])]
    report = {**provenance(), "cases": []}
    with tempfile.TemporaryDirectory() as folder:
        for case in cases:
            result = run_case(case, Path(folder), names, args.repeats, args.time_limit, reference=not args.no_reference)
            _print(result)
            report["cases"].append(result)
    finish_provenance(report)
    write_json(args.json, report)
    return report


if __name__ == "__main__":
    main()
