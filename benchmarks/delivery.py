"""Benchmark: the segment-weight solve of a step-and-shoot plan, by the fast path and by CLARABEL.

    python -m benchmarks.delivery            # the 5 mm C-shape (TG-119 protocol), 5 / 10 / 20 levels
    python -m benchmarks.delivery --tiny     # the CI configuration (seconds)
    python -m benchmarks.delivery --levels 5 10 20 40
    python -m benchmarks.delivery --sequencing sweep   # the sweep's segments (default: fewest_segments)

`specc plan` solves the segment weights as it solves the fluence: the fast path, the reference
solver (CLARABEL) where it hands over (specc/delivery.py; until 2026-11-27 CLARABEL always).
This measures that choice. The fluence is planned once, as `specc plan`
plans it; for each number of intensity levels it is sequenced and the segment program is
compiled and solved by each solver in the same process, one after the other. It prints the
segments, the program's nonzeros, each solver's compile and solve seconds, status and
objective (each on its own sample: the fast path's and CLARABEL's differ, docs/compiler.md),
and fast path / CLARABEL seconds. Results also go to a JSON file.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from benchmarks.run import STANDARD, TINY, BenchmarkCase, write_json

SOLVERS = ("SPECC-LBFGS", "CLARABEL")


def run_case(case: BenchmarkCase, levels: list[int], sequencing: str = "fewest_segments") -> dict:
    from specc.case.phantoms import build_phantom
    from specc.planning import compile_for_plan, compile_terms
    from specc.protocol import load_protocol
    from specc.sequence import sequence_fluence
    from specc.sequence.weights import segment_case, segment_program
    from specc.solve import choose_solver

    built = build_phantom(case.phantom, beams=case.beams, grid_mm=case.grid_mm, beamlet_mm=case.beamlet_mm)
    compiled = compile_for_plan(load_protocol(case.protocol), built)
    fluence = compiled.solve().result
    program = segment_program(compiled.protocol, compiled.goal_priorities)
    rows = []
    for level in levels:
        sequence = sequence_fluence(built.beamlets, fluence.fluence, level, sequencing)
        segments = segment_case(built, sequence)
        row: dict = {"levels": level, "segments": len(sequence.weights), "nonzeros": segments.influence.nnz}
        for solver in SOLVERS:
            settings = choose_solver(solver, program.protocol.optimization.solver)
            started = time.perf_counter()
            weights = compile_terms(program.protocol, segments, settings, program.goal_priorities)
            compiled_at = time.perf_counter()
            result = weights.solve().result
            row[solver] = {
                "compile_s": compiled_at - started,
                "solve_s": time.perf_counter() - compiled_at,
                "status": result.status,
                "solved_by": result.solver,
                "objective": result.objective,
                "iterations": result.iterations,
            }
        row["fast_over_clarabel"] = row["SPECC-LBFGS"]["solve_s"] / row["CLARABEL"]["solve_s"]
        rows.append(row)
    return {"case": case.name, "sequencing": sequencing, "fluence": {"solver": fluence.solver, "status": fluence.status},
            "rows": rows}


def _print(result: dict) -> None:
    print(f"{result['case']}: fluence {result['fluence']['status']} ({result['fluence']['solver']}), "
          f"sequenced by {result['sequencing']}")
    print(f"{'levels':>6} {'segments':>8} {'nonzeros':>10} | {'solver':<11} {'compile s':>9} {'solve s':>8} "
          f"{'status (by)':<26} {'objective':>10}")
    for row in result["rows"]:
        for solver in SOLVERS:
            run = row[solver]
            status = f"{run['status']} ({run['solved_by']})"
            objective = "-" if run["objective"] is None else f"{run['objective']:.6f}"
            print(f"{row['levels']:>6} {row['segments']:>8} {row['nonzeros']:>10} | {solver:<11} "
                  f"{run['compile_s']:>9.2f} {run['solve_s']:>8.2f} {status:<26} {objective:>10}")
        print(f"{'':>28}fast path / CLARABEL solve time: {row['fast_over_clarabel']:.2f}")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.delivery", description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="the small CI case")
    parser.add_argument("--levels", type=int, nargs="+", default=[5, 10, 20])
    parser.add_argument("--sequencing", choices=["fewest_segments", "sweep"], default="fewest_segments")
    parser.add_argument("--json", type=Path, default=Path("delivery-results.json"))
    args = parser.parse_args(argv)
    result = run_case(TINY if args.tiny else STANDARD, args.levels, args.sequencing)
    _print(result)
    write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
