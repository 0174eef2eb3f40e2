"""Benchmark: what each technique of the fast path contributes, each switched off in turn.

    python -m benchmarks.ablation            # the 5 mm C-shape, about a minute
    python -m benchmarks.ablation --large    # the clinical-size case of benchmarks.run (minutes)
    python -m benchmarks.ablation --tiny     # the CI configuration
    python -m benchmarks.ablation --repeats 3 --only "no working sets"

The default is the plan as `specc plan` makes it (`benchmarks.run`'s "specc fast path":
compiled for the plan, solved, the sample checked on every voxel). Each ablation runs the
same plan with one technique switched off, in a spawned process of its own (its peak memory
is its own; the switch never leaks into another run), and prints the figures of
`benchmarks.run` plus the run's time over the default's from the same command. Runs are
interleaved over the repeats, so machine load falls on all of them alike, and the table
gives each one's median. A switch replaces one name in the module that owns the technique
(listed in `ABLATIONS`), which must exist: a renamed function makes this benchmark fail,
never silently measure the default. Results also go to a JSON file.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.run import (
    EVERY_VOXEL, LARGE, STANDARD, TINY, BenchmarkCase, _commit, _run_method, in_child, write_json,
)

DEFAULT = "default (as specc plan)"
FAST_PATH = "specc fast path"


def _replace(owner: object, name: str, value: object) -> None:
    """Set `owner.name`, which must exist: setting a name the code no longer has would measure the default."""
    if not hasattr(owner, name):
        raise AttributeError(f"{owner!r} has no {name!r}: the ablation no longer switches anything off")
    setattr(owner, name, value)


def _no_working_sets() -> None:
    """A first solve on the whole program to the certificate (tenth pass: working sets)."""
    from specc.solve.first_order import augmented_lagrangian, solver

    _replace(solver, "minimize_from_scratch", lambda program, z, tolerances:
             augmented_lagrangian.minimize_augmented_lagrangian(program, z, tolerances))


def _no_threads() -> None:
    """Every product as one block on one thread (seventh pass: products on threads)."""
    from specc.case import products

    _replace(products, "BLOCK_NONZEROS", 2**62)


def _no_row_merging() -> None:
    """Every selected voxel its own dose entry, identical rows not merged (first and fourth passes)."""
    import numpy as np

    from specc.compile import voxels

    _replace(voxels, "_group_identical_rows", lambda influence, rows, offsets=None: np.arange(len(rows), dtype=np.int64))


def _fixed_memory() -> None:
    """20 L-BFGS pairs whatever the program's size (eleventh pass: memory from the program)."""
    from specc.solve.first_order import augmented_lagrangian

    _replace(augmented_lagrangian, "_history", lambda program: 20)


def _float64_matrix() -> None:
    """The influence matrix in float64, products in float64 (ninth pass: float32 with float64 anchors)."""
    import numpy as np

    from specc.case import Case

    load = Case.load

    def load_in_float64(path, *args, **kwargs):
        case = load(path, *args, **kwargs)
        case.influence = case.influence.astype(np.float64)
        return case

    _replace(Case, "load", load_in_float64)


# name -> (method of benchmarks.run, switch applied in the child before it runs)
ABLATIONS: dict[str, tuple[str, Callable[[], None] | None]] = {
    DEFAULT: (FAST_PATH, None),
    "no sampling (every voxel)": (EVERY_VOXEL, None),
    "no working sets": (FAST_PATH, _no_working_sets),
    "no product threads": (FAST_PATH, _no_threads),
    "no identical-row merging": (FAST_PATH, _no_row_merging),
    "20 L-BFGS pairs": (FAST_PATH, _fixed_memory),
    "float64 matrix": (FAST_PATH, _float64_matrix),
    "no fast path (CLARABEL 1e-6)": ("CLARABEL 1e-6 (no fast path)", None),
}


def _run_ablation(case_path: str, protocol: str, name: str, queue: multiprocessing.Queue) -> None:
    method, switch = ABLATIONS[name]
    if switch is not None:
        switch()
    _run_method(case_path, protocol, method, queue)


def _measure(case_path: str, protocol: str, name: str, time_limit_s: float) -> dict:
    run, seconds = in_child(_run_ablation, (case_path, protocol, name), time_limit_s)
    if run is None:
        return {"ablation": name, "status": "time limit (benchmark)", "total_s": seconds}
    return {"ablation": name, **run}


def run_case(case: BenchmarkCase, folder: Path, names: list[str], repeats: int, time_limit_s: float) -> dict:
    from specc.case.phantoms import build_phantom

    built = build_phantom(case.phantom, beams=case.beams, grid_mm=case.grid_mm, beamlet_mm=case.beamlet_mm)
    case_path = folder / f"{case.phantom}-{case.grid_mm:g}.h5"
    built.save(case_path)
    size = {"rows": built.influence.shape[0], "beamlets": built.n_beamlets, "nonzeros": int(built.influence.nnz)}
    del built
    runs: dict[str, list[dict]] = {name: [] for name in names}
    for _ in range(repeats):
        for name in names:
            runs[name].append(_measure(str(case_path), case.protocol, name, time_limit_s))
    rows = [_summary(name, measured) for name, measured in runs.items()]
    default = next((row for row in rows if row["ablation"] == DEFAULT), None)
    optimum = next((row["objective_every_voxel"] for row in rows
                    if row["ablation"] == "no sampling (every voxel)" and row["status"] == "optimal"), None)
    for row in rows:
        if default is not None and row.get("total_s") and default.get("total_s"):
            row["total_over_default"] = row["total_s"] / default["total_s"]
        if optimum and row.get("objective_every_voxel") is not None:
            row["gap_every_voxel"] = (row["objective_every_voxel"] - optimum) / abs(optimum)
    return {"case": case.name, "protocol": case.protocol, "size": size, "repeats": repeats, "rows": rows,
            "runs": runs}


def _summary(name: str, measured: list[dict]) -> dict:
    """The median of each timing over the repeats; the plan's figures from the first run (they repeat)."""
    first = measured[0]
    row = {"ablation": name, "status": "/".join(sorted({run["status"] for run in measured}))}
    for key in ("compile_s", "solve_s", "evaluate_s", "total_s", "peak_memory_mb"):
        values = [run[key] for run in measured if key in run]
        if values:
            row[key] = statistics.median(values)
    for key in ("objective", "objective_every_voxel", "iterations", "program_size", "solver"):
        if key in first:
            row[key] = first[key]
    return row


def _print(result: dict) -> None:
    size = result["size"]
    print(f"\n{result['case']} ({result['protocol']}): {size['rows']} rows, {size['beamlets']} beamlets, "
          f"{size['nonzeros']} nonzeros; medians of {result['repeats']} run(s); 'every voxel': the plan's objective "
          "on every voxel, 'gap': its distance to the every-voxel run's")
    print(f"{'ablation':30} {'status':12} {'entries':>8} {'compile':>8} {'solve':>8} {'total':>8} {'x default':>9} "
          f"{'peak MB':>8} {'iterations':>10} {'every voxel':>12} {'gap':>9}")
    nan = float("nan")
    for row in result["rows"]:
        iterations = row.get("iterations")
        entries = row["program_size"][0] if row.get("program_size") else ""
        print(f"{row['ablation']:30} {row['status'][:12]:12} {entries:>8} {row.get('compile_s', nan):8.2f} "
              f"{row.get('solve_s', nan):8.2f} "
              f"{row.get('total_s', nan):8.2f} {row.get('total_over_default', nan):9.2f} "
              f"{row.get('peak_memory_mb', nan):8.0f} {iterations if iterations is not None else '':>10} "
              f"{row.get('objective_every_voxel') or nan:12.6g} {row.get('gap_every_voxel', nan):9.1e}")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ablation", description=__doc__.splitlines()[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--large", action="store_true", help="the clinical-size case instead of the 5 mm one")
    size.add_argument("--tiny", action="store_true", help="the small CI case")
    parser.add_argument("--only", nargs="+", choices=[name for name in ABLATIONS if name != DEFAULT], default=None,
                        help="these ablations (the default always runs)")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each, interleaved; the table gives medians")
    parser.add_argument("--time-limit", type=float, default=600.0, help="seconds per run")
    parser.add_argument("--json", type=Path, default=Path("ablation-results.json"))
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    case = TINY if args.tiny else LARGE if args.large else STANDARD
    names = [DEFAULT, *(args.only or [name for name in ABLATIONS if name != DEFAULT])]
    with tempfile.TemporaryDirectory() as folder:
        result = run_case(case, Path(folder), names, args.repeats, args.time_limit)
    report = {"date": time.strftime("%Y-%m-%d %H:%M"), "commit": _commit(), "cpus": multiprocessing.cpu_count(),
              **result}
    _print(result)
    write_json(args.json, report)
    return report


if __name__ == "__main__":
    main()
