"""The ablation's rows, on runs faked in place of the child processes (the tiny ablation itself runs in
tests/test_benchmarks_smoke.py)."""

from __future__ import annotations

import math
import types
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse


def test_a_run_stopped_at_the_time_limit_reads_as_the_lower_bound_benchmarks_run_gives_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    """A run the time limit stopped had its child's seconds (303, spawn and imports included) as its total, and
    its 'x default' divided them by the default's total, which holds no start-up: it has no total now (its parts
    are unknown) and its time is the child's seconds less the largest start-up beside it (14 - 10 s), printed with
    '>' as `benchmarks.run` prints a stopped baseline, and over the default's YAML-to-plan as a lower bound."""
    import benchmarks.ablation as ablation
    import specc.case.phantoms
    from benchmarks.run import TINY

    stopped = "exact rounds (to ftol)"

    def child(target, args: tuple, time_limit_s: float) -> tuple[dict | None, float]:
        if args[2] == stopped:
            return None, 303.0
        return {"method": args[2], "status": "optimal", "load_s": 1.0, "compile_s": 2.0,
                "solve_s": 5.0, "evaluate_s": 2.0, "total_s": 9.0, "yaml_to_plan_s": 10.0, "peak_memory_mb": 100.0,
                "objective": 1.5, "objective_every_voxel": 1.5}, 14.0

    built = types.SimpleNamespace(influence=scipy.sparse.csr_matrix((4, 3)), n_beamlets=3, save=lambda path: None)
    monkeypatch.setattr(specc.case.phantoms, "build_phantom", lambda *args, **kwargs: built)
    monkeypatch.setattr(ablation, "in_child", child)
    result = ablation.run_case(TINY, tmp_path, [ablation.DEFAULT, stopped], 1, 300.0)
    rows = {row["ablation"]: row for row in result["rows"]}

    row = rows[stopped]
    assert math.isnan(row["total_s"]) and row["until_stopped_s"] == pytest.approx(299.0)
    assert row["total_over_default"] == pytest.approx(29.9)
    line = ablation._row(row)
    assert f">{299.0:7.2f} >{29.9:8.2f}" in line and "303" not in line
    default = rows[ablation.DEFAULT]
    assert default["total_over_default"] == 1.0 and "until_stopped_s" not in default
    assert f" {9.0:7.2f}  {1.0:8.2f}" in ablation._row(default)


def test_a_row_with_a_stopped_repeat_has_no_total_and_bounds_its_time_by_every_repeat() -> None:
    """Over repeats, a row's total was the median of the finished runs' totals and the stopped one's seconds:
    now a row with a run without a plan has no total, and its time is the median of each run's YAML-to-plan or,
    without a plan, its time until stopped (each at most the run's own, so the median is a lower bound)."""
    from benchmarks.ablation import _summary

    finished = [{"status": "optimal", "compile_s": 2.0, "solve_s": solve, "evaluate_s": 2.0,
                 "total_s": 4.0 + solve, "yaml_to_plan_s": 5.0 + solve} for solve in (5.0, 7.0)]
    stopped = {"status": "time limit (benchmark)", "yaml_to_plan_s": None, "total_s": math.nan,
               "until_stopped_s": 299.0}
    row = _summary("exact rounds (to ftol)", [*finished, stopped])
    assert math.isnan(row["total_s"]) and row["until_stopped_s"] == 12.0  # the median of 10, 12 and 299
    assert row["status"] == "optimal/time limit (benchmark)"
    assert _summary("exact rounds (to ftol)", finished)["total_s"] == 10.0


def test_the_held_beamlets_switch_reads_a_set_of_no_free_beamlet_as_converged(monkeypatch: pytest.MonkeyPatch) -> None:
    """The ablation that hands L-BFGS-B every variable hands it only fixed ones on a working set of no free beamlet,
    where scipy answers without `nit` or `status`: the switch reads that as converged after no iteration (as the
    code before the twenty-fourth pass did), where the solver itself returns before calling scipy."""
    import benchmarks.ablation as ablation
    from specc.solve.first_order import augmented_lagrangian

    for name in ("_movable", "minimize"):  # the switch replaces these for good, as in its child: restored here
        monkeypatch.setattr(augmented_lagrangian, name, getattr(augmented_lagrangian, name))
    ablation._every_variable_to_lbfgsb()
    fixed = np.zeros(3)
    program = types.SimpleNamespace(bounds=lambda: (fixed, fixed), operator=types.SimpleNamespace(nonzeros=12), size=3)
    loop = augmented_lagrangian._Rounds(program, augmented_lagrangian.Tolerances())
    assert len(loop.free) == 3  # handed every variable, none of which can move

    result, reason = loop.inner(lambda z: (float(z @ z), 2.0 * z), np.ones(3), budget=100)

    assert (result.nit, result.status, reason, loop.iterations) == (0, 0, None, 0)
    assert np.array_equal(result.x, fixed)


def test_without_the_reference_no_reference_run_is_made_and_the_table_says_why_there_is_no_gap(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """At the large size the tight reference runs to its time limit and gives no gap: a one-row run spent 20 of its
    22 minutes on it. `--no-reference` leaves it out: no child runs it, the table has no row for it and says why
    no row has a gap."""
    import benchmarks.ablation as ablation
    import specc.case.phantoms
    from benchmarks.run import TINY

    asked: list[str] = []

    def child(target: object, args: tuple, time_limit_s: float) -> tuple[dict | None, float]:
        asked.append(args[2])
        return {"method": args[2], "status": "optimal", "load_s": 1.0, "compile_s": 2.0, "solve_s": 5.0,
                "evaluate_s": 2.0, "total_s": 9.0, "yaml_to_plan_s": 10.0, "peak_memory_mb": 100.0,
                "objective": 1.5, "objective_every_voxel": 1.5}, 14.0

    built = types.SimpleNamespace(influence=scipy.sparse.csr_matrix((4, 3)), n_beamlets=3, save=lambda path: None)
    monkeypatch.setattr(specc.case.phantoms, "build_phantom", lambda *args, **kwargs: built)
    monkeypatch.setattr(ablation, "in_child", child)
    monkeypatch.setattr(ablation, "SIZES", {"tiny": (TINY,)})
    report = ablation.main(["--tiny", "--no-reference", "--only", "no working sets",
                            "--json", str(tmp_path / "a.json")])

    assert asked == [ablation.DEFAULT, "no working sets"]
    (result,) = report["cases"]
    assert [row["ablation"] for row in result["rows"]] == [ablation.DEFAULT, "no working sets"]
    assert result["reference"] is None and all("gap_every_voxel" not in row for row in result["rows"])
    assert "no reference (--no-reference)" in capsys.readouterr().out

    asked.clear()
    with_reference = ablation.run_case(TINY, tmp_path, [ablation.DEFAULT], 1, 300.0)
    assert asked == [ablation.DEFAULT, ablation.REFERENCE]
    assert with_reference["reference"] == ablation.REFERENCE
    assert [row["gap_every_voxel"] for row in with_reference["rows"]] == [0.0, 0.0]
    assert list(with_reference["runs"]) == [ablation.DEFAULT]  # the ablations' runs; the reference is its row
