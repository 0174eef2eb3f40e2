"""Benchmark: robust optimization against a PTV margin, on the TG-119 prostate.

    python -m benchmarks.robust            # 5 mm grid, 9 beams (the table in docs/robustness.md)
    python -m benchmarks.robust --tiny     # the CI configuration: 10 mm, 5 beams (seconds)

Four plans of one case, each planned as `specc plan` plans it (in this process, one after the
other) and each checked with the same 5 mm setup error on the prostate, the CTV:

* margin: protocols/tg119/prostate.yaml (PTV = prostate + 6 mm), the prostate's two goals added;
* nominal: protocols/tg119/prostate-robust.yaml (no PTV) without its hard DVH limit, checked only;
* robust: the same with `optimize: true`;
* robust + DVH: the shipped prostate-robust.yaml as it is.

With `--random-error SD` (mm) every plan is checked with random errors of that SD as well
(each scenario on the blurred dose, and the blurred dose alone), and two more plans are made:
"robust, random" and "robust + DVH, random", the robust two with the random errors optimized too.
With `--worst-case` one more: "robust, worst case", the robust plan with `objective: worst_case`
(its quadratic penalties at their worst scenario; solved by CLARABEL), and with random errors its
random twin too.

It prints, per plan, the solver and status, compile and solve seconds, the prostate's D95% and
minimum (nominal / worst scenario), the rectum's and bladder's D30% and D10%; JSON too.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from benchmarks.run import BenchmarkCase, write_json

ROBUST = "protocols/tg119/prostate-robust.yaml"
MARGIN = "protocols/tg119/prostate.yaml"
STANDARD = BenchmarkCase("prostate 5 mm", "prostate", ROBUST, 5.0, 9, 5.0)
TINY = BenchmarkCase("prostate 10 mm (CI)", "prostate", ROBUST, 10.0, 5, 10.0)
CTV = "Prostate"
CTV_GOALS = ("D95% >= 75.6 Gy", "Min >= 72 Gy")
ORGAN_GOALS = (("Rectum", "D30% <= 70 Gy"), ("Rectum", "D10% <= 75 Gy"), ("Bladder", "D30% <= 70 Gy"),
               ("Bladder", "D10% <= 75 Gy"))


def variants(random_error_mm: float | None = None, worst_case: bool = False):
    """The protocols, by name, and the robustness section every plan is checked with (module docstring)."""
    from specc.protocol import Goal, load_protocol
    from specc.protocol.models import Robustness
    from specc.protocol.units import Length

    robust = load_protocol(ROBUST)
    assert robust.robustness is not None and robust.optimization is not None
    without_dvh = robust.optimization.model_copy(
        update={"terms": [term for term in robust.optimization.terms if term.kind != "dvh"]}
    )
    averaged = robust.model_copy(update={"optimization": without_dvh})
    nominal = averaged.model_copy(update={"robustness": robust.robustness.model_copy(update={"optimize": False})})
    margin = load_protocol(MARGIN)
    margin = margin.model_copy(
        update={
            "goals": [*margin.goals, *(Goal.parse(text, CTV) for text in CTV_GOALS)],
            "robustness": Robustness(setup_error=robust.robustness.setup_error, structures=[CTV]),
        }
    )
    plans = {"margin": margin, "nominal": nominal, "robust": averaged, "robust + DVH": robust}
    check = Robustness(setup_error=robust.robustness.setup_error, structures=[CTV])
    if random_error_mm is not None:
        check = check.model_copy(update={"random_error": [Length(mm=random_error_mm)] * 3})
        randomised = check.model_copy(update={"optimize": True})
        plans["robust, random"] = averaged.model_copy(update={"robustness": randomised})
        plans["robust + DVH, random"] = robust.model_copy(update={"robustness": randomised})
    if worst_case:
        for name in [name for name in ("robust", "robust, random") if name in plans]:
            section = plans[name].robustness.model_copy(update={"objective": "worst_case"})
            plans[name + ", worst case"] = plans[name].model_copy(update={"robustness": section})
    return plans, check


def run_case(case: BenchmarkCase, random_error_mm: float | None = None, worst_case: bool = False) -> dict:
    from specc.case.phantoms import build_phantom
    from specc.case.shifts import beams_isocentre
    from specc.evaluate.robustness import robustness_record
    from specc.export import read_result
    from specc.pipeline import plan

    built = build_phantom(case.phantom, beams=case.beams, grid_mm=case.grid_mm, beamlet_mm=case.beamlet_mm)
    masks = {name: structure.mask for name, structure in built.structures.items()}
    plans, check = variants(random_error_mm, worst_case)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name, protocol in plans.items():
            out = Path(folder) / name.replace(" ", "").replace(",", "")
            outcome = plan(protocol, built, out)
            record = outcome.record
            row: dict = {"plan": name, "solver": outcome.solve.solver, "status": outcome.solve.status,
                         "compile_s": outcome.timings_s.get("compile"), "solve_s": outcome.timings_s.get("solve")}
            if record is not None and record.robustness is not None:
                # Every plan checked with the same errors, whatever it was optimized for.
                same_check = robustness_record(
                    protocol.model_copy(update={"robustness": check}), read_result(out / "result.h5").dose_gy, masks,
                    built.grid, built.voxel_volume_cc, record.converged, built.voxel_indices,
                    isocentre_mm=beams_isocentre(built.beams),
                )
                worst = {goal.text: goal for goal in same_check.goals if goal.structure == CTV}
                row["ctv"] = {text: [worst[text].nominal, worst[text].worst] for text in CTV_GOALS}
                values = {(goal.structure, goal.text): goal.value for goal in record.goals}
                row["organs"] = {f"{structure} {text}": values[(structure, text)] for structure, text in ORGAN_GOALS}
            rows.append(row)
    errors = "5 mm" + (f" systematic and {random_error_mm:g} mm random" if random_error_mm is not None else "")
    return {"case": case.name, "setup_error": errors, "rows": rows}


def _print(result: dict) -> None:
    print(f"{result['case']}, each plan checked with a {result['setup_error']} setup error on the {CTV} (CTV)")
    header = f"{'plan':<32} {'status (solver)':<26} {'compile s':>9} {'solve s':>8}"
    header += "".join(f" | {text + ' nom/worst':>27}" for text in CTV_GOALS)
    header += "".join(f" | {structure + ' ' + text.split()[0]:>14}" for structure, text in ORGAN_GOALS)
    print(header)
    for row in result["rows"]:
        line = f"{row['plan']:<32} {row['status'] + ' (' + row['solver'] + ')':<26} "
        line += f"{row['compile_s'] or 0:>9.2f} {row['solve_s'] or 0:>8.2f}"
        if "ctv" in row:
            line += "".join(f" | {nominal:>13.2f} / {worst:>6.2f} Gy" for nominal, worst in row["ctv"].values())
            line += "".join(f" | {value:>11.2f} Gy" for value in row["organs"].values())
        print(line)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.robust", description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="the small CI case")
    parser.add_argument("--random-error", type=float, metavar="SD_MM",
                        help="check every plan with random errors of this SD too, and optimize two plans for them")
    parser.add_argument("--worst-case", action="store_true",
                        help="also the robust plan with objective: worst_case (minimax; solved by CLARABEL)")
    parser.add_argument("--json", type=Path, default=Path("robust-results.json"))
    args = parser.parse_args(argv)
    result = run_case(TINY if args.tiny else STANDARD, args.random_error, args.worst_case)
    _print(result)
    write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
