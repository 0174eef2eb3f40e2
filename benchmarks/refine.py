"""Benchmark: the exact DVH refinement, on the fast path and by CLARABEL, from the same CVaR plan.

    python -m benchmarks.refine                                # prostate and head-neck, 5 mm, 9 beams (~5 min)
    python -m benchmarks.refine --phantoms prostate --grid 10 --beams 5   # seconds

A protocol with hard DVH limits is solved in two stages (`specc.solve.refine`): the CVaR
form by the reference solver, then the exact form, voxelwise bounds on the entries the CVaR
plan chose. For each hand-tuned TG-119 protocol given (`protocols/tg119/NAME.yaml`), the
program is compiled as `specc plan` compiles it, the CVaR plan solved once, and its
refinement made twice in the same process: as `specc plan` makes it (the fast path, falling
back to CLARABEL where it does not certify) and by CLARABEL alone (`--solver CLARABEL`'s
refinement), so the ratio compares runs on the same machine seconds apart. It prints, per
protocol, the CVaR solve's time, each refinement's time, status, solver and objective, their
ratio and relative difference, and each limit's exact value in both plans. Results also go
to a JSON file.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from benchmarks.goals_vs_tuned import PROTOCOL_FOLDER
from benchmarks.run import write_json

PHANTOMS = ("prostate", "head-neck")  # the hand-tuned TG-119 protocols with hard DVH limits


def refine_case(phantom: str, grid_mm: float, beams: int) -> dict:
    """The CVaR plan of `phantom`'s hand-tuned protocol and its two refinements (module docstring)."""
    from specc.case.phantoms import build_phantom
    from specc.planning import compile_for_plan
    from specc.protocol import load_protocol
    from specc.solve import choose_solver, solve_program
    from specc.solve.first_order import FIRST_ORDER_SOLVER, REFERENCE_SOLVER
    from specc.solve.refine import refine_dvh_limits

    case = build_phantom(phantom, beams=beams, grid_mm=grid_mm)
    program = compile_for_plan(load_protocol(PROTOCOL_FOLDER / f"{phantom}.yaml"), case).program
    if not program.hard_dvh_terms():
        raise SystemExit(f"{phantom}: its protocol has no hard DVH limit to refine")
    # The CVaR plan as `specc plan` gets it: the fast path hands the program to the reference solver.
    started = time.perf_counter()
    cvar = solve_program(program, choose_solver(FIRST_ORDER_SOLVER))
    cvar_s = time.perf_counter() - started
    refinements = {}
    for label, settings, problem in (
        ("specc plan", choose_solver(FIRST_ORDER_SOLVER), None),
        ("CLARABEL", choose_solver(REFERENCE_SOLVER), program.problem),
    ):
        started = time.perf_counter()
        refined = refine_dvh_limits(program, problem, cvar, settings)
        refinements[label] = {
            "seconds": time.perf_counter() - started,
            "solver": refined.solver,
            "status": refined.status,
            "objective": refined.objective,
            "exact": [f"{step['reached']} ({step['status']})" for step in refined.steps if step["step"] == "exact value"],
        }
    fast, reference = refinements["specc plan"], refinements["CLARABEL"]
    return {
        "phantom": phantom,
        "grid_mm": grid_mm,
        "beams": beams,
        "cvar_solver": cvar.solver,
        "cvar_s": cvar_s,
        "cvar_objective": cvar.objective,
        "refinements": refinements,
        "time_ratio": fast["seconds"] / reference["seconds"],
        "relative_objective": (fast["objective"] - reference["objective"]) / reference["objective"],
    }


def _print(result: dict) -> None:
    print(f"\n{result['phantom']} {result['grid_mm']:g} mm, {result['beams']} beams: CVaR plan by "
          f"{result['cvar_solver']} in {result['cvar_s']:.2f} s, objective {result['cvar_objective']:.6g}")
    print(f"{'refinement':<12} {'seconds':>8} {'solver':<12} {'status':<18} {'objective':>12}  exact values")
    for label, run in result["refinements"].items():
        print(f"{label:<12} {run['seconds']:>8.2f} {run['solver']:<12} {run['status']:<18} "
              f"{run['objective']:>12.7g}  {'; '.join(run['exact'])}")
    print(f"specc plan / CLARABEL: time {result['time_ratio']:.3f}, objective {result['relative_objective']:+.2e}")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.refine", description=__doc__.splitlines()[0])
    parser.add_argument("--phantoms", nargs="+", choices=PHANTOMS, default=list(PHANTOMS))
    parser.add_argument("--grid", type=float, default=5.0, help="dose grid spacing in mm")
    parser.add_argument("--beams", type=int, default=9)
    parser.add_argument("--json", type=Path, default=Path("refine-results.json"))
    args = parser.parse_args(argv)
    results = []
    for phantom in args.phantoms:
        results.append(refine_case(phantom, args.grid, args.beams))
        _print(results[-1])
    report = {"runs": results}
    write_json(args.json, report)
    return report


if __name__ == "__main__":
    main()
