"""Benchmark: from the protocol file to an evaluated plan, on built-in phantom cases, with each solving method.

    python -m benchmarks.run            # the 5 mm C-shape, with and without hard limits (minutes)
    python -m benchmarks.run --large    # adds the clinical-size cases (see docs/performance.md)
    python -m benchmarks.run --large-only --time-limit 900   # those cases alone
    python -m benchmarks.run --tiny     # the CI configuration (10 mm, 1-2 minutes)
    python -m benchmarks.run --no-limits  # leaves out the cases with hard limits

Each size runs two cases: the TG-119 C-shape protocol (soft terms only) and the same protocol
with hard limits that its plan without them breaks (benchmarks/protocols/c-shape-limits.yaml),
so that the hard-violation column measures something. Per case and method it prints the time
to read the protocol and load the case, to compile, to solve and to evaluate the plan as
`specc plan` evaluates it (full-grid dose, DVHs, every goal's value and verdict), their sum
(YAML to plan), peak memory (resident set of a child process that does only that run) and its
ratio to the case's influence matrix, the objective and its relative gap to a tight reference
solve of the same program (CLARABEL at 1e-9), the plan's objective on every voxel and its gap
to the tight reference on every voxel (what sampling and the solver's tolerance cost), the
largest hard-limit violation on the full grid (Gy for dose limits, the limit's own unit for a
volume limit), the speed-up against the naive baseline and then every goal's value and status
and every hard limit's value. Results also go to a JSON file, with the commit, machine and load.
The naive baseline is the whole program handed to cvxpy with its default solver and canon backend.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import os
import platform
import queue as queue_module
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from specc.compile.voxels import DEFAULT_SAMPLE_LIMIT

REFERENCE_TOLERANCE = 1e-9
LIMITS_PROTOCOL = "benchmarks/protocols/c-shape-limits.yaml"
# At 10 mm the C-shape's body has 9,000 voxels, fewer than the fast path's default sample (30,000),
# so nothing would be sampled: the CI cases sample 2,000, as the 5 and 2.5 mm cases sample 30,000.
TINY_SAMPLE_LIMIT = 2_000


@dataclass(frozen=True)
class BenchmarkCase:
    name: str
    phantom: str
    protocol: str
    grid_mm: float
    beams: int
    beamlet_mm: float
    # The sample of soft-only structures: the sampled methods' and, in the benchmark's child
    # processes, the fast path's default (`_fast_path_default_sample`).
    sample_limit: int = DEFAULT_SAMPLE_LIMIT


TINY = BenchmarkCase("c-shape 10 mm (CI)", "c-shape", "protocols/tg119/c-shape.yaml", 10.0, 5, 10.0, TINY_SAMPLE_LIMIT)
STANDARD = BenchmarkCase("c-shape 5 mm", "c-shape", "protocols/tg119/c-shape.yaml", 5.0, 7, 5.0)
# 11 beams: with 9 the 2.5 mm C-shape has 26.4M nonzeros, below the clinical size
# (>= 30M); 11 beams give 32.2M nonzeros and 3,153 beamlets (docs/performance.md).
LARGE = BenchmarkCase("c-shape 2.5 mm, 11 beams", "c-shape", "protocols/tg119/c-shape.yaml", 2.5, 11, 5.0)
# The same sizes with active hard limits (a maximum on the PTV, a mean on the core).
TINY_LIMITS = dataclasses.replace(TINY, name="c-shape 10 mm, hard limits (CI)", protocol=LIMITS_PROTOCOL)
STANDARD_LIMITS = dataclasses.replace(STANDARD, name="c-shape 5 mm, hard limits", protocol=LIMITS_PROTOCOL)
LARGE_LIMITS = dataclasses.replace(LARGE, name="c-shape 2.5 mm, 11 beams, hard limits", protocol=LIMITS_PROTOCOL)

Voxels = Literal["sampled", "every voxel", "as specc plan"]


@dataclass(frozen=True)
class Method:
    """How one benchmark row compiles and solves.

    `solver`: given to specc's solve (None: the program handed to cvxpy with its own default
    solver and canon backend, the issue's naive baseline); `voxels`: the case's sample of
    soft-only structures, every voxel, or as `specc plan` chooses (`compile_for_plan`, the
    sample checked on every voxel afterwards); `tolerance`: the solver's (None: the protocol's
    or specc's default for that solver)."""

    solver: str | None
    voxels: Voxels
    tolerance: float | None = None


NAIVE = "naive cvxpy, every voxel"
REFERENCE = "reference CLARABEL 1e-9"
EVERY_VOXEL_REFERENCE = "reference CLARABEL 1e-9, every voxel"
EVERY_VOXEL = "fast path, every voxel (no sampling)"
# The naive baseline of the issue is the whole program (every voxel) handed to cvxpy; "naive
# cvxpy" hands it the sampled program. The references are CLARABEL at 1e-9 on the sampled and on
# the every-voxel program; "CLARABEL 1e-6" is CLARABEL at specc's default tolerance for it.
METHODS: dict[str, Method] = {
    NAIVE: Method(None, "every voxel"),
    "naive cvxpy": Method(None, "sampled"),
    REFERENCE: Method("CLARABEL", "sampled", REFERENCE_TOLERANCE),
    EVERY_VOXEL_REFERENCE: Method("CLARABEL", "every voxel", REFERENCE_TOLERANCE),
    "specc fast path": Method("SPECC-LBFGS", "as specc plan"),
    "CLARABEL 1e-6 (no fast path)": Method("CLARABEL", "sampled", 1e-6),
    EVERY_VOXEL: Method("SPECC-LBFGS", "every voxel"),
}
REFERENCES = (REFERENCE, EVERY_VOXEL_REFERENCE)


def run_method(
    case_path: str, protocol_path: str, method: str, sample_limit: int, queue: multiprocessing.Queue,
) -> None:
    """One method on one case, from the protocol's file to the evaluated plan, alone in this process so
    that its peak memory is its own. `sample_limit`: the case's sample (`BenchmarkCase.sample_limit`)."""
    entered = time.perf_counter()
    import cvxpy as cp

    from specc.case import Case
    from specc.compile import compile_protocol
    from specc.evaluate.plan import evaluate_plan
    from specc.planning import compile_for_plan
    from specc.protocol import load_protocol
    from specc.solve import choose_solver, solve_program

    spec = METHODS[method]
    started = time.perf_counter()
    protocol = load_protocol(protocol_path)
    case = Case.load(case_path)
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    tolerance = None
    if spec.voxels == "as specc plan":
        _fast_path_default_sample(sample_limit)
        compiled = compile_for_plan(protocol, case, spec.solver)
        protocol, program, tolerance = compiled.protocol, compiled.program, compiled.settings.tolerance
    else:
        program = compile_protocol(protocol, case, sample_limit=sample_limit if spec.voxels == "sampled" else None)
    compile_s = time.perf_counter() - started
    started = time.perf_counter()
    if spec.voxels == "as specc plan":
        checked = compiled.solve()  # the sample checked on every voxel, finished there when it cost too much
        result, program = checked.result, checked.program
    elif spec.solver is None:
        result = _solve_naive(program)
    else:
        settings = choose_solver(spec.solver, protocol.optimization.solver)
        if spec.tolerance is not None:
            settings = dataclasses.replace(settings, tolerance=spec.tolerance)
        tolerance = settings.tolerance
        result = solve_program(program, settings)
    solve_s = time.perf_counter() - started
    started = time.perf_counter()
    # As `specc plan`'s evaluate stage: the full-grid dose, every goal, DVH, index and term.
    evaluation = evaluate_plan(
        protocol, case, program.masks, result, {}, absent=program.structures.absent,
        partial=program.structures.partial, allowed_absent=program.structures.allowed_absent,
        collapsed_targets=program.structures.collapsed_targets,
    ) if result.usable else None
    evaluate_s = time.perf_counter() - started if evaluation is not None else float("nan")
    record = evaluation.record if evaluation is not None else None
    hard = hard_limits(record.solver.terms) if record is not None else []
    run = {
        "method": method, "solver": result.solver, "tolerance": tolerance, "status": str(result.status),
        "objective": result.objective, "message": result.message, "iterations": result.iterations,
        "load_s": load_s, "compile_s": compile_s, "solve_s": solve_s, "evaluate_s": evaluate_s,
        "total_s": compile_s + solve_s + evaluate_s,
        # None without a plan (`has_plan`): the time it ran until its solver stopped is load + compile + solve
        "yaml_to_plan_s": load_s + compile_s + solve_s + evaluate_s if evaluation is not None else None,
        "peak_memory_mb": _own_peak_rss_mb(),
        "goals": [_goal(goal) for goal in record.goals] if record is not None else [],
        "hard_limits": hard, **_largest_violations(hard),
        "terms": {term.label: f"{term.value:.4g} {term.unit}" for term in record.solver.terms
                  if term.value is not None} if record is not None else {},
        "influence_mb": csr_mb(program.influence),
        "cvxpy": cp.__version__,
        # What was solved (a finish on every voxel changes it): the gap compares equal programs only.
        "program_size": [program.stats.dose_entries, program.stats.nonzeros],
    }
    # After the timings and the peak: the plan's objective on every voxel, which a sampled
    # program only estimates (compiling the every-voxel program here is not part of the run).
    if result.fluence is not None:
        sampled = any(entries.sampled for entries in program.selection.structures.values())
        every_voxel = compile_protocol(protocol, case, sample_limit=None) if sampled else program
        run["objective_every_voxel"] = _objective(every_voxel, result.fluence)
    run["run_s"] = time.perf_counter() - entered
    queue.put(run)


def csr_mb(matrix) -> float:
    """A CSR matrix's own size in MB (its three arrays): what the memory target is a multiple of."""
    return (matrix.data.nbytes + matrix.indices.nbytes + matrix.indptr.nbytes) / 2**20


def _fast_path_default_sample(limit: int) -> None:
    """Make `limit` the fast path's default sample in this (child) process, where `specc plan`'s rule
    reads it (`specc.solve.clinical.sample_limit_for`): a 10 mm case then samples, its plan is checked on
    every voxel and finished there as a 5 or 2.5 mm case's is. A renamed constant fails here, never
    measures the unsampled plan in silence."""
    from specc.solve import clinical

    if limit != DEFAULT_SAMPLE_LIMIT:
        replace_existing(clinical, "DEFAULT_SAMPLE_LIMIT", limit)


def replace_existing(owner: object, name: str, value: object) -> None:
    """Set `owner.name`, which must exist: setting a name the code no longer has would measure the default."""
    if not hasattr(owner, name):
        raise AttributeError(f"{owner!r} has no {name!r}: the benchmark no longer switches anything off "
                             "(it would measure the default)")
    setattr(owner, name, value)


def _solve_naive(program):
    """The naive baseline: the whole cvxpy problem, cvxpy's default solver and canon backend, no specc limit."""
    from specc.solve.result import SolveResult, TermValue
    from specc.solve.run import cvxpy_status, plan_fluence

    started = time.perf_counter()
    program.problem.solve()
    said = program.problem.status
    # As specc labels it (no limit is set here: user_limit is the solver's own), and its plan as `solve_program` takes it.
    status, fluence = plan_fluence(cvxpy_status(said), program.fluence.value)
    usable = fluence is not None
    terms = [TermValue(term.label, term.kind, term.source, term.hard, None) for term in program.terms]
    return SolveResult(
        status=status, converged=status == "optimal",
        solver=program.problem.solver_stats.solver_name, message="" if usable else f"cvxpy status {said!r}",
        fluence=fluence, objective=float(program.problem.value) if usable else None,
        iterations=program.problem.solver_stats.num_iters, solve_time_s=time.perf_counter() - started, terms=terms,
    )


def _goal(goal) -> dict:
    """A goal as `specc plan` reports it: its value (with the decimals its verdict needs) and status."""
    return {"structure": goal.structure, "goal": goal.text, "value": goal.value, "unit": goal.unit,
            "shown": "-" if goal.value is None else f"{goal.shown(goal.value)} {goal.unit}".strip(),
            "status": goal.status}


def hard_limits(records) -> list[dict]:
    """Every hard term of the plan with its value, limit and violation, in the term's own unit, as the evaluation
    recorded them (each term's `evaluate` on the final full-grid dose, as `specc plan` reports: Gy for a dose
    limit in whatever quantity it limits, EQD2 included; % or cc for an upper DVH limit's volume; inf for an
    undefined value). Terms the solver alone measures (no protocol term, no value) are left out."""
    measured = []
    for record in records:
        if not record.hard or record.value is None:
            continue
        if record.limit is None or record.violation is None:
            raise ValueError(f"{record.label}: a hard term whose evaluation gives no limit and violation")
        violation, limit = record.violation, record.limit
        measured.append({"label": record.label, "value": record.value, "unit": record.unit, "limit": limit,
                         "violation": violation, "relative_violation": violation / abs(limit) if limit else violation,
                         "satisfied": record.satisfied})
    return measured


def _largest_violations(hard: list[dict]) -> dict:
    """The largest violation of the dose limits (Gy; None without one) and of the volume limits by unit."""
    doses = [limit["violation"] for limit in hard if limit["unit"] == "Gy"]
    volumes: dict[str, float] = {}
    for limit in hard:
        if limit["unit"] != "Gy":
            volumes[limit["unit"]] = max(volumes.get(limit["unit"], 0.0), limit["violation"])
    return {"hard_violation_gy": max(doses) if doses else None, "hard_violation_volume": volumes}


def _objective(program, fluence: np.ndarray) -> float:
    """The program's objective at `fluence` (auxiliary variables at their exact values)."""
    from specc.solve.first_order import FirstOrderSolver

    smooth = FirstOrderSolver(program).smooth_program()
    return float(smooth.evaluate(smooth.start(np.asarray(fluence, dtype=float))).objective)


def _own_peak_rss_mb() -> float:
    """This process's own peak resident memory (VmHWM).

    `ru_maxrss` is inherited across fork and exec on Linux, so in a spawned child it reports
    the parent's peak (the parent holds the built phantom), not the method's own.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")  # no /proc (not Linux): unknown rather than a misleading number


def in_child(target, args: tuple, time_limit_s: float) -> tuple[dict | None, float]:
    """`target(*args, queue)` in a spawned process (its peak memory its own): what it put on the queue
    (None when it passed `time_limit_s` and was stopped) and the seconds it took."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=target, args=(*args, queue))
    started = time.perf_counter()
    process.start()
    result = None
    while result is None and time.perf_counter() - started < time_limit_s:
        try:
            result = queue.get(timeout=1.0)
        except queue_module.Empty:
            if not process.is_alive() and queue.empty():  # it died without a result: say so, never wait it out
                raise RuntimeError(f"the benchmark run in a child process ended with exit code {process.exitcode} "
                                   "and no result (its traceback is above)")
    if result is None:
        process.kill()
    process.join()
    return result, time.perf_counter() - started


def _measure(case_path: str, protocol: str, method: str, sample_limit: int, time_limit_s: float) -> dict:
    """One run in a child process; one that passes `time_limit_s` is stopped and reported as such."""
    result, seconds = in_child(run_method, (case_path, protocol, method, sample_limit), time_limit_s)
    if result is None:
        nan = float("nan")
        return {"method": method, "solver": METHODS[method].solver or "cvxpy default", **stopped(seconds, time_limit_s),
                "objective": None, "load_s": nan, "compile_s": nan, "solve_s": nan, "evaluate_s": nan,
                "peak_memory_mb": nan, "goals": [], "hard_limits": [], "hard_violation_gy": nan,
                "hard_violation_volume": {}, "terms": {}}
    # The child's own start (spawn, imports) and the end of its run, outside `run_s`.
    return {**result, "child_s": seconds}


def stopped(seconds: float, time_limit_s: float) -> dict:
    """What a run the time limit stopped records, here and in the ablation: no plan (no YAML-to-plan), no total
    (its parts are unknown), and the child's seconds and the limit, from which `add_until_stopped` gives its one
    lower bound."""
    return {"status": "time limit (benchmark)", "yaml_to_plan_s": None, "total_s": float("nan"), "child_s": seconds,
            "time_limit_s": time_limit_s}


def has_plan(run: dict) -> bool:
    """Whether a run gave a plan: its record says so by its YAML-to-plan time, None without one (stopped by its
    own solver or at the time limit), so that the JSON states it once."""
    return run["yaml_to_plan_s"] is not None


def run_case(case: BenchmarkCase, folder: Path, methods: list[str], time_limit_s: float) -> dict:
    from specc.case.phantoms import build_phantom

    started = time.perf_counter()
    built = build_phantom(case.phantom, beams=case.beams, grid_mm=case.grid_mm, beamlet_mm=case.beamlet_mm)
    build_s = time.perf_counter() - started
    case_path = folder / f"{case.phantom}-{case.grid_mm:g}.h5"
    built.save(case_path)
    body = max(int(s.mask.sum()) for s in built.structures.values())
    influence = built.influence
    size = {"grid_voxels": built.grid.n_voxels, "largest_structure_voxels": body,
            "rows": influence.shape[0], "beamlets": built.n_beamlets, "nonzeros": int(influence.nnz),
            "influence_mb": csr_mb(influence),
            "phantom_build_s": build_s}
    del built, influence
    runs = [_measure(str(case_path), case.protocol, method, case.sample_limit, time_limit_s) for method in methods]
    for run in runs:
        run["peak_over_matrix"] = run["peak_memory_mb"] / size["influence_mb"]
    references = [r for r in runs if r["method"] in REFERENCES and r["status"] == "optimal"]
    for run in runs:  # the gap compares objectives of the same program (the same sample)
        reference = next((r for r in references if r.get("program_size") == run.get("program_size")), None)
        if reference is not None and run["objective"] is not None and reference["objective"]:
            run["gap_to_reference"] = (run["objective"] - reference["objective"]) / abs(reference["objective"])
    optimum = _every_voxel_optimum(runs)
    for run in runs:
        if optimum["objective"] and run.get("objective_every_voxel") is not None:
            run["gap_every_voxel"] = (run["objective_every_voxel"] - optimum["objective"]) / abs(optimum["objective"])
    add_until_stopped(runs)
    _speedups(runs)
    return {"case": case.name, "protocol": case.protocol, "sample_limit": case.sample_limit, "size": size,
            "every_voxel_reference": optimum, "runs": runs}


def _every_voxel_optimum(runs: list[dict]) -> dict:
    """What the every-voxel gaps are measured against: the tight reference on every voxel when it ended
    optimal; else the certified fast path on every voxel, said so ("no reference")."""
    tight = next((r for r in runs if r["method"] == EVERY_VOXEL_REFERENCE), None)
    if tight is not None and tight["status"] == "optimal":
        return {"method": EVERY_VOXEL_REFERENCE, "tight": True, "objective": tight["objective_every_voxel"]}
    why = f"{EVERY_VOXEL_REFERENCE}: {tight['status']}" if tight is not None else f"{EVERY_VOXEL_REFERENCE} not run"
    fallback = next((r for r in runs if r["method"] == EVERY_VOXEL and r["status"] == "optimal"), None)
    if fallback is None:
        return {"method": None, "tight": False, "objective": None, "why": why}
    return {"method": EVERY_VOXEL, "tight": False, "objective": fallback["objective_every_voxel"], "why": why}


def add_until_stopped(runs: list[dict]) -> None:
    """Each run without a plan: `until_stopped_s`, its seconds from the protocol's YAML until it was stopped, a
    lower bound on its YAML-to-plan time, which the table prints (with ">") and a speed-up against it divides.
    Stopped by its own solver (OSQP at its iteration limit): its load, compile and solve. Stopped at the
    benchmark's time limit, which sees only the child's seconds: those less the largest start and end of a child
    process measured beside it (spawn, imports, the every-voxel objective after the run's timings); with no run
    beside it that gave a plan there is nothing to take off, and the child's seconds are printed as they are."""
    overhead = max((r["child_s"] - r["yaml_to_plan_s"] for r in runs if has_plan(r)), default=0.0)
    for run in runs:
        if not has_plan(run):
            run["until_stopped_s"] = (run["child_s"] - overhead if "time_limit_s" in run
                                      else run["load_s"] + run["compile_s"] + run["solve_s"])


def _speedups(runs: list[dict]) -> None:
    """Each run's YAML-to-plan time against the naive baseline's; against a baseline that gave no plan, against
    the time it ran until stopped (`until_stopped_s`, the time the table prints for it): a lower bound."""
    naive = next((r for r in runs if r["method"] == NAIVE), None)
    if naive is None:
        return
    baseline, bound = (naive["yaml_to_plan_s"], False) if has_plan(naive) else (naive["until_stopped_s"], True)
    for run in runs:
        if has_plan(run):
            run["speedup_vs_naive"] = baseline / run["yaml_to_plan_s"]
            run["speedup_is_lower_bound"] = bound


def _violation_text(run: dict) -> str:
    """The largest hard-limit violation: Gy for dose limits, the limit's unit for volume limits."""
    if not has_plan(run):
        return "no plan"
    parts = ([f"{run['hard_violation_gy']:.3g} Gy"] if run["hard_violation_gy"] is not None else []) + [
        f"{value:.3g} {unit}" for unit, value in run["hard_violation_volume"].items()]
    return ", ".join(parts) if parts else "no limit"


def _print(result: dict) -> None:
    size = result["size"]
    print(f"\n{result['case']} ({result['protocol']}): {size['grid_voxels']} grid voxels, {size['rows']} rows, "
          f"{size['beamlets']} beamlets, {size['nonzeros']} nonzeros, influence matrix {size['influence_mb']:.1f} MB; "
          f"sample {result['sample_limit']:,} voxels")
    optimum = result["every_voxel_reference"]
    if not optimum["tight"]:
        against = f"{optimum['method']}'s plan (not a tight reference)" if optimum["method"] else "nothing: no gap"
        print(f"no reference on every voxel ({optimum['why']}): 'gap every vox' is against {against}")
    print("seconds; 'gap same prog': to CLARABEL 1e-9 on the same program; 'gap every vox': the plan's objective on "
          "every voxel against CLARABEL 1e-9's there; 'hard viol': largest hard-limit violation on the full grid; "
          "'>' under YAML->plan: a run without a plan, the seconds from its YAML until it was stopped (by its own "
          "solver: load + compile + solve; at the time limit: the child's seconds less the largest start-up and end "
          "of a child beside it), a lower bound; a speed-up against it divides that same time, so '>' too")
    print(f"{'method':36} {'status':18} {'load':>5} {'compile':>7} {'solve':>7} {'eval':>5} {'YAML->plan':>10} "
          f"{'peak MB':>7} {'peak/A':>6} {'objective':>10} {'gap same prog':>13} {'every vox':>10} "
          f"{'gap every vox':>13} {'hard viol':>10} {'speed-up':>8}")
    for run in result["runs"]:
        print(_row(run))
        if not has_plan(run):
            print(f"    no plan: {run.get('message') or run['status']}")
        for goal in run["goals"]:
            print(f"    goal {goal['structure']} {goal['goal']}: {goal['shown']} {goal['status']}")
        for limit in run["hard_limits"]:
            print(f"    hard {limit['label']}: {limit['value']:.5g} {limit['unit']} (violation {limit['violation']:.3g} "
                  f"{limit['unit']}, {'met' if limit['satisfied'] else 'NOT MET'} within 0.1%)")


def _row(run: dict) -> str:
    """A method's row of the table; without a plan its YAML->plan is `until_stopped_s`, with ">" as its speed-up
    against it has (`_speedups`)."""
    nan = float("nan")
    objective = run["objective"] if run["objective"] is not None else nan
    planned = has_plan(run)
    yaml_s = run["yaml_to_plan_s"] if planned else run["until_stopped_s"]
    return (f"{run['method']:36} {run['status'][:18]:18} {run['load_s']:5.2f} {run['compile_s']:7.2f} "
            f"{run['solve_s']:7.2f} {run['evaluate_s']:5.2f} "
            f"{' ' if planned else '>'}{yaml_s:9.2f} {run['peak_memory_mb']:7.0f} "
            f"{run['peak_over_matrix']:6.2f} {objective:10.6g} {run.get('gap_to_reference', nan):13.2e} "
            f"{run.get('objective_every_voxel') or nan:10.6g} {run.get('gap_every_voxel', nan):13.2e} "
            f"{_violation_text(run):>10} "
            f"{'>' if run.get('speedup_is_lower_bound') else ' '}{run.get('speedup_vs_naive', nan):7.1f}")


def _commit() -> str:
    """The commit, "-dirty" when the working tree differs from it (`git describe --always --dirty`)."""
    try:
        return subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _proc_field(path: str, name: str) -> str | None:
    """The value of `name:` in a /proc file (None without one: not Linux)."""
    try:
        for line in Path(path).read_text().splitlines():
            if line.split(":")[0].strip() == name:
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def provenance() -> dict:
    """When, at which commit and on what machine a benchmark runs, with the load as it starts
    (`finish_provenance` adds it as it ends): figures from a loaded machine read differently."""
    memory_kb = _proc_field("/proc/meminfo", "MemTotal")
    return {"date": time.strftime("%Y-%m-%d %H:%M"), "commit": _commit(),
            "machine": {"platform": platform.platform(), "python": sys.version.split()[0],
                        "cpus": multiprocessing.cpu_count(),
                        "cpu_model": _proc_field("/proc/cpuinfo", "model name") or platform.processor() or "unknown",
                        "memory_gb": int(memory_kb.split()[0]) / 2**20 if memory_kb else None},
            "load_average_start": list(os.getloadavg())}


def finish_provenance(report: dict) -> dict:
    report["load_average_end"] = list(os.getloadavg())
    return report


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--large", action="store_true", help="also run the clinical-size cases")
    size.add_argument("--large-only", action="store_true", help="only the clinical-size cases")
    size.add_argument("--tiny", action="store_true", help="only the small CI cases")
    parser.add_argument("--no-limits", action="store_true",
                        help=f"leave out the cases with hard limits ({LIMITS_PROTOCOL})")
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    parser.add_argument("--json", type=Path, default=Path("benchmark-results.json"),
                        help="where the results go (default: benchmark-results.json in the current directory)")
    parser.add_argument("--time-limit", type=float, default=600.0,
                        help="seconds per run (the naive baseline may need more; it is then reported as '> limit')")
    args = parser.parse_args(argv)
    sizes = [(TINY, TINY_LIMITS)] if args.tiny else [(LARGE, LARGE_LIMITS)] if args.large_only else \
        [(STANDARD, STANDARD_LIMITS), (LARGE, LARGE_LIMITS)] if args.large else [(STANDARD, STANDARD_LIMITS)]
    cases = [case for pair in sizes for case in (pair[:1] if args.no_limits else pair)]
    report = {**provenance(), "cases": []}
    with tempfile.TemporaryDirectory() as folder:
        for case in cases:
            result = run_case(case, Path(folder), args.methods, args.time_limit)
            _print(result)
            report["cases"].append(result)
    write_json(args.json, finish_provenance(report))
    return report


def write_json(path: Path, result: dict | list) -> None:
    """A benchmark's results as JSON, and where they went (every benchmark's last line)."""
    path.write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
