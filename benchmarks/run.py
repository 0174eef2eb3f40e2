"""Benchmark: compile, solve and verify built-in phantom cases with each solving method.

    python -m benchmarks.run            # the 5 mm C-shape (TG-119 protocol), a few minutes
    python -m benchmarks.run --large    # adds the clinical-size case (see docs/performance.md)
    python -m benchmarks.run --large-only --time-limit 900   # that case alone
    python -m benchmarks.run --tiny     # the CI configuration (seconds)

Per case and method it prints compile, solve and evaluation time, wall time, peak memory
(resident set of a child process that does only that run), the objective, its relative gap
to a tight reference solve of the same program (CLARABEL at 1e-9), the plan's objective on
every voxel and its gap to the every-voxel optimum (what sampling costs), the largest
hard-limit violation on the full grid (Gy) and every term's value on the final dose; results
also go to a JSON file. The naive baseline is the whole program handed to cvxpy with its
default solver and canon backend.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
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


@dataclass(frozen=True)
class BenchmarkCase:
    name: str
    phantom: str
    protocol: str
    grid_mm: float
    beams: int
    beamlet_mm: float


TINY = BenchmarkCase("c-shape 10 mm (CI)", "c-shape", "protocols/tg119/c-shape.yaml", 10.0, 5, 10.0)
STANDARD = BenchmarkCase("c-shape 5 mm", "c-shape", "protocols/tg119/c-shape.yaml", 5.0, 7, 5.0)
# 11 beams: with 9 the 2.5 mm C-shape has 26.4M nonzeros, below the clinical size
# (>= 30M); 11 beams give 32.2M nonzeros and 3,153 beamlets (docs/performance.md).
LARGE = BenchmarkCase("c-shape 2.5 mm, 11 beams", "c-shape", "protocols/tg119/c-shape.yaml", 2.5, 11, 5.0)

# method name -> (solver given to specc.solve, None: cvxpy's own default solver and backend;
# compile's sample limit for soft-only structures, None: every voxel). The naive baseline of
# the issue is the whole program (every voxel) handed to cvxpy; "naive cvxpy" hands it the
# program specc compiles (sampled). The last rows are the ablations: each drops one technique
# of the default path (docs/performance.md).
# AS_PLANNED: compiled and solved as `specc plan` does (`compile_for_plan`, the sample chosen
# by who solves and checked on every voxel afterwards).
NAIVE = "naive cvxpy, every voxel"
AS_PLANNED = "as specc plan"
METHODS: dict[str, tuple[str | None, int | None | Literal["as specc plan"]]] = {
    NAIVE: (None, None),
    "naive cvxpy": (None, DEFAULT_SAMPLE_LIMIT),
    "reference CLARABEL 1e-9": ("CLARABEL", DEFAULT_SAMPLE_LIMIT),
    "specc fast path": ("SPECC-LBFGS", AS_PLANNED),
    "CLARABEL 1e-6 (no fast path)": ("CLARABEL", DEFAULT_SAMPLE_LIMIT),
    "fast path, every voxel (no sampling)": ("SPECC-LBFGS", None),
}
EVERY_VOXEL = "fast path, every voxel (no sampling)"


def _run_method(case_path: str, protocol_path: str, method: str, queue: multiprocessing.Queue) -> None:
    """One method on one case, alone in this process so that its peak memory is its own."""
    import cvxpy as cp

    from specc.case import Case
    from specc.compile import compile_protocol
    from specc.planning import compile_for_plan
    from specc.evaluate.context import PlanDoseContext
    from specc.protocol import load_protocol
    from specc.solve import choose_solver, solve_program

    protocol = load_protocol(protocol_path)
    case = Case.load(case_path)
    started = time.perf_counter()
    solver, sample_limit = METHODS[method]
    compiled = compile_for_plan(protocol, case, solver) if sample_limit == AS_PLANNED else None
    program = compiled.program if compiled is not None else compile_protocol(protocol, case, sample_limit=sample_limit)
    compile_s = time.perf_counter() - started
    started = time.perf_counter()
    if compiled is not None:
        checked = compiled.solve()  # the sample checked on every voxel, finished there when it cost too much
        result, program = checked.result, checked.program
        fluence, status, objective, solver_name = result.fluence, result.status, result.objective, result.solver
        message, iterations = result.message, result.iterations
    elif solver is None:
        program.problem.solve()
        fluence = np.maximum(np.asarray(program.fluence.value, dtype=float), 0.0)
        status, objective = program.problem.status, float(program.problem.value)
        solver_name = program.problem.solver_stats.solver_name
        message, iterations = "", program.problem.solver_stats.num_iters
    else:
        settings = choose_solver(solver, protocol.optimization.solver)
        if solver == "CLARABEL":
            settings = type(settings)(settings.name, settings.time_limit_s, REFERENCE_TOLERANCE, settings.max_iterations)
        result = solve_program(program, settings)
        fluence, status, objective, solver_name = result.fluence, result.status, result.objective, result.solver
        message, iterations = result.message, result.iterations
    solve_s = time.perf_counter() - started
    started = time.perf_counter()
    fractions = protocol.prescription.fractions
    dose = case.dose_on_grid(fluence, fractions)
    context = PlanDoseContext(dose, program.masks, case.voxel_volume_cc, fractions, fluence, case.beamlets)
    values, violation = {}, 0.0
    for term in protocol.optimization.terms:
        measured = term.evaluate(context)
        values[term.label()] = f"{measured.value:.4g} {measured.unit}"
        if term.is_constraint:
            violation = max(violation, _violation_gy(term, context))
    evaluate_s = time.perf_counter() - started
    run = {
        "method": method, "solver": solver_name, "status": str(status), "objective": objective, "message": message,
        "iterations": iterations,
        "compile_s": compile_s, "solve_s": solve_s, "evaluate_s": evaluate_s,
        "total_s": compile_s + solve_s + evaluate_s,
        "peak_memory_mb": _own_peak_rss_mb(),
        "hard_violation_gy": violation, "terms": values,
        "influence_mb": (program.influence.data.nbytes + program.influence.indices.nbytes
                         + program.influence.indptr.nbytes) / 2**20,
        "cvxpy": cp.__version__,
        # What was solved (a finish on every voxel changes it): the gap compares equal programs only.
        "program_size": [program.stats.dose_entries, program.stats.nonzeros],
    }
    # After the timings and the peak: the plan's objective on every voxel, which a sampled
    # program only estimates (compiling the every-voxel program here is not part of the run).
    sampled = any(entries.sampled for entries in program.selection.structures.values())
    every_voxel = compile_protocol(protocol, case, sample_limit=None) if sampled else program
    run["objective_every_voxel"] = _objective(every_voxel, fluence)
    queue.put(run)


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


def _violation_gy(term, context) -> float:
    """How far (Gy, total) a voxelwise or mean limit is broken on the full grid; 0 when met."""
    dose = context.dose(term.structure)
    if term.kind == "max_dose":
        return max(float(dose.max()) - term.dose.gy, 0.0)
    if term.kind == "min_dose":
        return max(term.dose.gy - float(dose.min()), 0.0)
    if term.kind == "mean_dose":
        mean = float(dose.mean())
        return max(mean - (term.max.gy if term.max else np.inf), (term.min.gy if term.min else 0.0) - mean, 0.0)
    measured = term.evaluate(context)  # dvh / geud: their own measure, judged by the term
    return 0.0 if measured.satisfied else float("nan")


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


def _measure(case_path: str, protocol: str, method: str, time_limit_s: float) -> dict:
    """One run in a child process; one that passes `time_limit_s` is stopped and reported as such."""
    result, seconds = in_child(_run_method, (case_path, protocol, method), time_limit_s)
    if result is None:
        return {"method": method, "solver": METHODS[method][0] or "cvxpy default", "status": "time limit (benchmark)",
                "objective": None, "compile_s": float("nan"), "solve_s": float("nan"), "evaluate_s": float("nan"),
                "total_s": seconds, "time_limit_s": time_limit_s, "peak_memory_mb": float("nan"),
                "hard_violation_gy": float("nan"), "terms": {}}
    return result


def run_case(case: BenchmarkCase, folder: Path, methods: list[str], time_limit_s: float) -> dict:
    from specc.case.phantoms import build_phantom

    started = time.perf_counter()
    built = build_phantom(case.phantom, beams=case.beams, grid_mm=case.grid_mm, beamlet_mm=case.beamlet_mm)
    build_s = time.perf_counter() - started
    case_path = folder / f"{case.phantom}-{case.grid_mm:g}.h5"
    built.save(case_path)
    body = max(int(s.mask.sum()) for s in built.structures.values())
    size = {"grid_voxels": built.grid.n_voxels, "largest_structure_voxels": body,
            "rows": built.influence.shape[0], "beamlets": built.n_beamlets, "nonzeros": int(built.influence.nnz),
            "phantom_build_s": build_s}
    del built
    runs = [_measure(str(case_path), case.protocol, method, time_limit_s) for method in methods]
    reference = next((r for r in runs if r["method"].startswith("reference")), None)
    for run in runs:  # the gap compares objectives of the same program (the same sample)
        same_program = reference is not None and run.get("program_size") == reference.get("program_size")
        if reference and same_program and run["objective"] is not None and reference["objective"]:
            run["gap_to_reference"] = (run["objective"] - reference["objective"]) / abs(reference["objective"])
    # The every-voxel optimum: the certified fast path on every voxel, else the naive baseline.
    optimum = next((r["objective"] for name in (EVERY_VOXEL, NAIVE) for r in runs
                    if r["method"] == name and r["status"] == "optimal"), None)
    for run in runs:
        if optimum and run.get("objective_every_voxel") is not None:
            run["gap_every_voxel"] = (run["objective_every_voxel"] - optimum) / abs(optimum)
    naive = next((r for r in runs if r["method"] == NAIVE), None)
    for run in runs:
        if naive and "time_limit_s" not in run:
            # Against a naive run stopped at the time limit this is a lower bound (printed with ">").
            run["speedup_vs_naive"] = naive["total_s"] / run["total_s"]
            run["speedup_is_lower_bound"] = "time_limit_s" in naive
    return {"case": case.name, "protocol": case.protocol, "size": size, "runs": runs}


def _print(result: dict) -> None:
    size = result["size"]
    print(f"\n{result['case']} ({result['protocol']}): {size['grid_voxels']} grid voxels, {size['rows']} rows, "
          f"{size['beamlets']} beamlets, {size['nonzeros']} nonzeros")
    header = f"{'method':26} {'status':18} {'compile':>8} {'solve':>8} {'eval':>7} {'total':>8} {'peak MB':>8} " \
             f"{'objective':>12} {'gap':>9} {'every vox':>10} {'gap':>9} {'viol Gy':>8} {'speed-up':>8}"
    print(header)
    for run in result["runs"]:
        print(f"{run['method']:26} {run['status'][:18]:18} {run['compile_s']:8.2f} {run['solve_s']:8.2f} "
              f"{run['evaluate_s']:7.2f} {run['total_s']:8.2f} {run['peak_memory_mb']:8.0f} "
              f"{run['objective'] if run['objective'] is not None else float('nan'):12.6g} "
              f"{run.get('gap_to_reference', float('nan')):9.2e} "
              f"{run.get('objective_every_voxel') or float('nan'):10.6g} {run.get('gap_every_voxel', float('nan')):9.2e} "
              f"{run['hard_violation_gy']:8.3g} "
              f"{'>' if run.get('speedup_is_lower_bound') else ' '}{run.get('speedup_vs_naive', float('nan')):7.1f}")
        for label, value in run["terms"].items():
            print(f"    {label}: {value}")


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--large", action="store_true", help="also run the clinical-size case")
    size.add_argument("--large-only", action="store_true", help="only the clinical-size case")
    size.add_argument("--tiny", action="store_true", help="only the small CI case")
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    parser.add_argument("--json", type=Path, default=Path("benchmark-results.json"))
    parser.add_argument("--time-limit", type=float, default=600.0,
                        help="seconds per run (the naive baseline may need more; it is then reported as '> limit')")
    args = parser.parse_args(argv)
    cases = [TINY] if args.tiny else [LARGE] if args.large_only else [STANDARD, LARGE] if args.large else [STANDARD]
    report = {"machine": {"platform": platform.platform(), "python": sys.version.split()[0],
                          "cpus": multiprocessing.cpu_count()},
              "date": time.strftime("%Y-%m-%d %H:%M"), "commit": _commit(), "cases": []}
    with tempfile.TemporaryDirectory() as folder:
        for case in cases:
            result = run_case(case, Path(folder), args.methods, args.time_limit)
            _print(result)
            report["cases"].append(result)
    write_json(args.json, report)
    return report


def write_json(path: Path, result: dict | list) -> None:
    """A benchmark's results as JSON, and where they went (every benchmark's last line)."""
    path.write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
