"""Benchmark: re-solving after a weight or level change, warm and without recompiling.

    python -m benchmarks.resolve            # the 5 mm C-shape (TG-119 protocol), about a minute
    python -m benchmarks.resolve --large    # the clinical-size case of benchmarks.run
    python -m benchmarks.resolve --prostate # 5 mm prostate, a protocol with limits of every kind
    python -m benchmarks.resolve --tiny     # the CI configuration (seconds)
    python -m benchmarks.resolve --session  # as `specc plan --watch` re-plans (any size flag too)

The issue's target: a re-solve after changing a weight or a limit costs no recompilation and
at most 20% of the first solve. The program is compiled once, as `specc plan` compiles it;
each change is applied to one term (on the C-shape the core's overdose penalty, which the
plan leans on most; on the prostate one term of each kind, hard limits included) and solved
twice, warm (the same `FirstOrderSolver`, from the first plan) and cold (a new solver on the
same compiled program), in one process, so the ratios compare runs on the same machine
minutes apart.
It prints, per change, the first solve's time, the warm and the cold re-solve's time and
L-BFGS-B iterations, warm / first, and how far the warm and cold objectives differ (both
are certified by the same KKT test). Results also go to a JSON file, with the date, commit,
machine and load (`benchmarks.run.provenance`).

`--session` measures what a planner tuning a protocol waits for instead: each change planned
by a `PlanSession` after its first plan (as `specc plan --watch` does: the compile keeps the
rows, the solve starts from the last plan) against a fresh `specc plan` of the changed
protocol, stage by stage (compile, solve, evaluate, report).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.run import LARGE, STANDARD, TINY, BenchmarkCase, finish_provenance, provenance, write_json
from specc.protocol.units import Dose
from specc.terms import TermBase

# A change: the changed term, or None for a term it does not touch.
Change = Callable[[TermBase], TermBase | None]


def _weight(kind: str, structure: str, factor: float) -> Change:
    def change(term: TermBase) -> TermBase | None:
        if term.kind != kind or term.structures() != (structure,):
            return None
        return term.model_copy(update={"weight": term.weight * factor})
    return change


def _level(kind: str, structure: str, shift_gy: float) -> Change:
    def change(term: TermBase) -> TermBase | None:
        if term.kind != kind or term.structures() != (structure,):
            return None
        return term.model_copy(update={"dose": Dose(gy=term.dose.gy + shift_gy)})
    return change


# (label, change): weights and levels as a planner tunes them.
CHANGES: list[tuple[str, Change]] = [
    ("weight x1.05", _weight("quadratic_overdose", "Core", 1.05)),
    ("weight x1.5", _weight("quadratic_overdose", "Core", 1.5)),
    ("weight x4", _weight("quadratic_overdose", "Core", 4.0)),
    ("level -0.5 Gy", _level("quadratic_overdose", "Core", -0.5)),
]
PROSTATE_CHANGES: list[tuple[str, Change]] = [
    ("rectum gEUD weight x2", _weight("geud", "Rectum", 2.0)),
    ("rectum DVH weight x4", _weight("dvh", "Rectum", 4.0)),
    ("PTV uniform weight x1.5", _weight("uniform_dose", "PTV", 1.5)),
    ("body overdose weight x4", _weight("quadratic_overdose", "Body", 4.0)),
    ("body level -5 Gy", _level("quadratic_overdose", "Body", -5.0)),
    ("PTV hard max -2 Gy", _level("max_dose", "PTV", -2.0)),
    ("left femoral head hard max -10 Gy", _level("max_dose", "FemoralHead_L", -10.0)),
]
PROSTATE = BenchmarkCase("prostate 5 mm, limits of every kind", "prostate", "benchmarks/protocols/prostate-limits.yaml",
                         5.0, 9, 5.0)


def _changed(terms: list[TermBase], change: Change) -> list[TermBase]:
    changed = [change(term) for term in terms]
    if all(term is None for term in changed):
        raise SystemExit("the protocol has no term this change applies to")
    return [new if new is not None else old for new, old in zip(changed, terms)]


def run_case(case: BenchmarkCase, changes: list[tuple[str, Change]] = CHANGES) -> dict:
    from specc.case.phantoms import build_phantom
    from specc.planning import compile_for_plan
    from specc.protocol import load_protocol
    from specc.solve.first_order import FirstOrderSolver

    built = build_phantom(case.phantom, beams=case.beams, grid_mm=case.grid_mm, beamlet_mm=case.beamlet_mm)
    started = time.perf_counter()
    compiled = compile_for_plan(load_protocol(case.protocol), built)
    compile_s = time.perf_counter() - started
    program, settings = compiled.program, compiled.settings
    terms = [term.term for term in program.terms]
    runs = []
    for label, change in changes:
        changed = _changed(terms, change)
        solver = FirstOrderSolver(program)
        started = time.perf_counter()
        first = solver.solve(settings)
        first_s = time.perf_counter() - started
        started = time.perf_counter()
        warm = solver.solve(settings, terms=changed)
        warm_s = time.perf_counter() - started
        started = time.perf_counter()
        cold = FirstOrderSolver(program).solve(settings, terms=changed)
        cold_s = time.perf_counter() - started
        statuses = {first.status, warm.status, cold.status}
        runs.append({
            "change": label, "statuses": sorted(statuses),
            "first_s": first_s, "first_iterations": first.iterations,
            "warm_s": warm_s, "warm_iterations": warm.iterations,
            "cold_s": cold_s, "cold_iterations": cold.iterations,
            "warm_over_first": warm_s / first_s, "warm_over_compile_and_first": warm_s / (compile_s + first_s),
            "warm_vs_cold_objective": (warm.objective - cold.objective) / cold.objective
            if warm.objective is not None and cold.objective else float("nan"),
        })
    return {"case": case.name, "compile_s": compile_s, "dose_entries": program.stats.dose_entries,
            "nonzeros": program.stats.nonzeros, "runs": runs}


def _changed_protocol(protocol, change: Change):
    """The protocol with `change` applied to its optimization terms (its source stays the original's)."""
    optimization = protocol.optimization
    terms = _changed(list(optimization.terms), change)
    return protocol.model_copy(update={"optimization": optimization.model_copy(update={"terms": terms})})


def run_session(case: BenchmarkCase, changes: list[tuple[str, Change]] = CHANGES) -> dict:
    import tempfile

    from specc.case.phantoms import build_phantom
    from specc.pipeline import PlanSession, plan
    from specc.protocol import load_protocol

    built = build_phantom(case.phantom, beams=case.beams, grid_mm=case.grid_mm, beamlet_mm=case.beamlet_mm)
    protocol = load_protocol(case.protocol)
    runs = []
    with tempfile.TemporaryDirectory() as folder:
        for label, change in changes:
            session = PlanSession(built, Path(folder) / "session")
            first = session.plan(protocol)
            changed = _changed_protocol(protocol, change)
            again = session.plan(changed)
            fresh = plan(changed, built, Path(folder) / "fresh")
            outcomes = {"first": first, "again": again, "fresh": fresh}
            runs.append({
                "change": label,
                "statuses": sorted({outcome.solve.status for outcome in outcomes.values()}),
                "warm": any("solved warm" in note for note in again.notes),
                **{f"{name}_s": dict(outcome.timings_s) for name, outcome in outcomes.items()},
                "again_vs_fresh_objective": (again.solve.objective - fresh.solve.objective) / fresh.solve.objective
                if again.solve.objective is not None and fresh.solve.objective else float("nan"),
            })
    return {"case": case.name, "session": True, "runs": runs}


def _compile_and_solve(timings: dict[str, float]) -> float:
    return timings["compile"] + timings["solve"]


def _print_session(result: dict) -> None:
    print(f"\n{result['case']}: each change re-planned by a PlanSession (specc plan --watch) after its first plan, "
          "against a fresh specc plan of the changed protocol; seconds")
    width = max(len(run["change"]) for run in result["runs"])
    print(f"{'change':{width}s} {'first c+s':>9s} {'re-plan c+s':>11s} {'fresh c+s':>9s} {'re-plan/first':>13s} "
          f"{'re-plan/fresh':>13s} {'report':>6s} {'vs fresh':>9s} warm status")
    for run in result["runs"]:
        first, again, fresh = (_compile_and_solve(run[f"{name}_s"]) for name in ("first", "again", "fresh"))
        print(f"{run['change']:{width}s} {first:9.2f} {again:11.2f} {fresh:9.2f} {again / first:13.2f} "
              f"{again / fresh:13.2f} {run['again_s']['report']:6.2f} {run['again_vs_fresh_objective']:9.1e} "
              f"{'yes ' if run['warm'] else 'no  '} {'/'.join(run['statuses'])}")


def _print(result: dict) -> None:
    print(f"\n{result['case']}: compiled once in {result['compile_s']:.2f} s "
          f"({result['dose_entries']} dose entries, {result['nonzeros']} nonzeros)")
    width = max(len(run["change"]) for run in result["runs"])
    print(f"{'change':{width}s} {'first s':>8s} {'it':>5s} {'warm s':>7s} {'it':>5s} {'cold s':>7s} {'it':>5s} "
          f"{'warm/first':>10s} {'warm/(compile+first)':>20s} {'warm vs cold':>12s} status")
    for run in result["runs"]:
        print(f"{run['change']:{width}s} {run['first_s']:8.2f} {run['first_iterations']:5d} {run['warm_s']:7.2f} "
              f"{run['warm_iterations']:5d} {run['cold_s']:7.2f} {run['cold_iterations']:5d} "
              f"{run['warm_over_first']:10.2f} {run['warm_over_compile_and_first']:20.2f} "
              f"{run['warm_vs_cold_objective']:12.1e} {'/'.join(run['statuses'])}")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.resolve", description=__doc__.splitlines()[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--large", action="store_true", help="the clinical-size case instead of the 5 mm one")
    size.add_argument("--prostate", action="store_true", help="the 5 mm prostate, a protocol with limits of every kind")
    size.add_argument("--tiny", action="store_true", help="the small CI case")
    parser.add_argument("--session", action="store_true", help="re-plan as `specc plan --watch` does, all stages")
    parser.add_argument("--json", type=Path, default=Path("resolve-results.json"))
    args = parser.parse_args(argv)
    case = TINY if args.tiny else LARGE if args.large else PROSTATE if args.prostate else STANDARD
    changes = PROSTATE_CHANGES if args.prostate else CHANGES
    started = provenance()  # date, commit, machine, load: the JSON says where its figures come from
    if args.session:
        result = run_session(case, changes)
        _print_session(result)
    else:
        result = run_case(case, changes)
        _print(result)
    report = finish_provenance({**started, **result})
    write_json(args.json, report)
    return report


if __name__ == "__main__":
    main()
