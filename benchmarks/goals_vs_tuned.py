"""Goals only vs hand-tuned: does a protocol without `optimization:` plan as well?

    python -m benchmarks.goals_vs_tuned                    # the four TG-119 phantoms, 5 mm, 9 beams
    python -m benchmarks.goals_vs_tuned --phantoms c-shape --grid 10 --beams 5

For each TG-119 phantom it plans the hand-tuned protocol (`protocols/tg119/NAME.yaml`) and
its goals-only twin (`NAME-goals.yaml`, optimization derived from goals and priorities) on
the same case, measures every goal on the full grid and prints one markdown table per
phantom plus the time of each plan. The verdict column applies the criterion of issue 5:
a goal the hand-tuned plan meets (or meets within its variation) must be met at least as
well by the goals-only plan; on a goal the hand-tuned plan fails, the goals-only value may
be worse by at most `TOLERANCE_GY` (dose metrics) or `TOLERANCE_PERCENT` (volume metrics,
percentage points; 1% of the value for volumes in cc).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.run import write_json

PHANTOMS = ("c-shape", "multi-target", "prostate", "head-neck")
PROTOCOL_FOLDER = Path("protocols/tg119")
TOLERANCE_GY = 1.0
TOLERANCE_PERCENT = 1.0
# Better status ranks higher; a goal that could not be measured ranks lowest.
_RANK = {"pass": 2, "variation": 1, "fail": 0, "not_evaluated": -1}


@dataclass(frozen=True)
class PlannedGoal:
    structure: str
    text: str  # as written (a goals-only twin may add its priority)
    metric: str
    comparator: str
    threshold: float
    unit: str
    value: float | None
    status: str  # the measured status (pass / variation / fail / not_evaluated)


@dataclass(frozen=True)
class PlanRun:
    protocol: str
    status: str
    seconds: float
    steps: list[dict]
    goals: list[PlannedGoal]


def plan_goals(protocol_path: Path, case, solver: str | None) -> PlanRun:
    """Compile, solve (by priority, exact DVH limits) and measure the goals of one protocol."""
    from specc.evaluate import evaluate_plan
    from specc.planning import compile_for_plan
    from specc.protocol import load_protocol

    started = time.perf_counter()
    compiled = compile_for_plan(load_protocol(protocol_path), case, solver)  # as `specc plan` does
    checked = compiled.solve()
    protocol, program, solve = compiled.protocol, checked.program, checked.result
    seconds = time.perf_counter() - started
    if not solve.usable:
        return PlanRun(str(protocol_path), solve.status, seconds, list(solve.steps), [])
    record = evaluate_plan(protocol, case, program.masks, solve, {}).record
    goals = [
        PlannedGoal(
            goal.structure, goal.text, goal.metric, goal.comparator, goal.threshold, goal.unit, goal.value,
            goal.measured_status,
        )
        for goal in record.goals
    ]
    return PlanRun(str(protocol_path), solve.status, seconds, list(solve.steps), goals)


def allowed_shortfall(goal: PlannedGoal) -> float:
    """How much worse than the hand-tuned value a goal it fails may be (see the module docstring)."""
    if goal.unit == "Gy":
        return TOLERANCE_GY
    if goal.unit == "%":
        return TOLERANCE_PERCENT
    return 0.01 * abs(goal.value or 0.0)


def verdict(tuned: PlannedGoal, goals_only: PlannedGoal) -> str:
    """'ok' or 'WORSE', by the criterion of the module docstring."""
    if _RANK[goals_only.status] >= _RANK[tuned.status] and tuned.status in ("pass", "variation"):
        return "ok"
    if tuned.status in ("pass", "variation") or tuned.value is None or goals_only.value is None:
        return "WORSE"
    sign = 1.0 if goals_only.comparator in ("<=", "<") else -1.0
    worse_by = sign * (goals_only.value - tuned.value)
    return "ok" if worse_by <= allowed_shortfall(tuned) + 1e-9 else "WORSE"


def _key(goal: PlannedGoal) -> tuple[str, str, str, float]:
    """The same goal in both protocols: structure, metric, comparator and threshold (not priority)."""
    return goal.structure, goal.metric, goal.comparator, goal.threshold


def _value(goal: PlannedGoal) -> str:
    return "-" if goal.value is None else f"{goal.value:.2f} {goal.unit}"


def table(phantom: str, tuned: PlanRun, goals_only: PlanRun) -> tuple[str, int]:
    """A markdown table of one phantom and the number of goals judged WORSE."""
    lines = [
        f"### {phantom}: hand-tuned {tuned.status} in {tuned.seconds:.1f} s, "
        f"goals only {goals_only.status} in {goals_only.seconds:.1f} s ({len(goals_only.steps)} log rows)",
        "",
        "| structure | goal | hand-tuned | goals only | verdict |",
        "|---|---|---|---|---|",
    ]
    worse = 0
    by_key = {_key(g): g for g in goals_only.goals}
    for goal in tuned.goals:
        twin = by_key.get(_key(goal))
        if twin is None:
            lines.append(f"| {goal.structure} | {goal.text} | {_value(goal)} {goal.status} | (no such goal) | WORSE |")
            worse += 1
            continue
        judged = verdict(goal, twin)
        worse += judged != "ok"
        lines.append(
            f"| {goal.structure} | {goal.text} | {_value(goal)} {goal.status} | {_value(twin)} {twin.status} | {judged} |"
        )
    if not goals_only.goals or not tuned.goals:
        worse += 1
        lines.append(f"| (no plan) | | {tuned.status} | {goals_only.status} | WORSE |")
    return "\n".join(lines), worse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.goals_vs_tuned", description=__doc__.splitlines()[0])
    parser.add_argument("--phantoms", nargs="+", default=list(PHANTOMS), choices=PHANTOMS)
    parser.add_argument("--grid", type=float, default=5.0, help="dose grid spacing in mm (default 5)")
    parser.add_argument("--beams", type=int, default=9, help="equispaced beams (default 9)")
    parser.add_argument("--solver", default=None, help="solver for both protocols (default: the protocol's choice)")
    parser.add_argument("--steps", action="store_true", help="also print the goals-only optimization log")
    parser.add_argument("--json", type=Path, default=None, help="also write the runs as JSON")
    arguments = parser.parse_args(argv)

    from specc.case.phantoms import build_phantom

    total_worse = 0
    runs: dict[str, dict] = {}
    print(f"TG-119 phantoms at {arguments.grid:g} mm, {arguments.beams} beams\n")
    for phantom in arguments.phantoms:
        case = build_phantom(phantom, beams=arguments.beams, grid_mm=arguments.grid)
        tuned = plan_goals(PROTOCOL_FOLDER / f"{phantom}.yaml", case, arguments.solver)
        goals_only = plan_goals(PROTOCOL_FOLDER / f"{phantom}-goals.yaml", case, arguments.solver)
        text, worse = table(phantom, tuned, goals_only)
        total_worse += worse
        print(text + "\n", flush=True)
        if arguments.steps:
            for step in goals_only.steps:
                print("  " + " | ".join(str(value) for value in step.values()))
            print()
        runs[phantom] = {"tuned": _as_dict(tuned), "goals_only": _as_dict(goals_only)}
    print(f"goals judged worse than the hand-tuned plan: {total_worse}")
    if arguments.json is not None:
        write_json(arguments.json, runs)
    return 1 if total_worse else 0


def _as_dict(run: PlanRun) -> dict:
    return {
        "protocol": run.protocol,
        "status": run.status,
        "seconds": run.seconds,
        "steps": run.steps,
        "goals": [goal.__dict__ for goal in run.goals],
    }


if __name__ == "__main__":
    raise SystemExit(main())
