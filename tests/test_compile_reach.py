"""Target voxels no beamlet reaches and beams that give no dose: notes of the compile stage
(an error for a target no beamlet reaches at all), on the synthetic case with rows or columns emptied."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

import specc
from evaluate_fakes import protocol, synthetic_case
from specc.case import Case
from specc.compile import compile_protocol
from specc.errors import CompileError

GOALS = {"Target": ["D95% >= 57 Gy"], "Organ": ["Max <= 30 Gy"]}
TERMS = [
    "{kind: quadratic_underdose, structure: Target, dose: 60 Gy, weight: 10}",
    "{kind: quadratic_overdose, structure: Organ, dose: 30 Gy, weight: 1}",
]


def _emptied(case: Case, rows: np.ndarray | None = None, columns: np.ndarray | None = None) -> Case:
    """The case with the influence entries of `rows` / `columns` removed (no dose there)."""
    keep = sp.diags(np.ones(case.influence.shape[0], np.float32)).tolil()
    if rows is not None:
        keep[rows, rows] = 0
    influence = (keep.tocsr() @ case.influence).tocsr()
    if columns is not None:
        scale = np.ones(case.n_beamlets, np.float32)
        scale[columns] = 0
        influence = (influence @ sp.diags(scale)).tocsr()
    influence.eliminate_zeros()
    return dataclasses.replace(case, influence=influence.astype(np.float32))


def _target_rows(case: Case) -> np.ndarray:
    return case.rows(case.structures["Target"].mask)


def test_a_sound_case_has_no_reach_note() -> None:
    notes = compile_protocol(protocol(GOALS, terms=TERMS), synthetic_case()).notes
    assert not [note for note in notes if "no dose" in note]


def test_target_voxels_no_beamlet_reaches_are_a_note_with_count_share_and_causes() -> None:
    case = synthetic_case()
    rows = _target_rows(case)
    notes = compile_protocol(protocol(GOALS, terms=TERMS), _emptied(case, rows=rows[:10])).notes
    share = f"{100 * 10 / len(rows):.1f}%"
    [note] = [note for note in notes if note.startswith("Target:")]
    assert f"10 of its {len(rows)} voxels ({share} of the target) receive no dose from any beamlet" in note
    assert "column-major over [Ny Nx Nz]" in note and "cut short of the target" in note


def test_an_organ_beside_the_fields_may_have_rows_without_dose() -> None:
    case = synthetic_case()
    organ = case.rows(case.structures["Organ"].mask)
    notes = compile_protocol(protocol(GOALS, terms=TERMS), _emptied(case, rows=organ[:5])).notes
    assert not [note for note in notes if "no dose" in note]


def test_a_target_no_beamlet_reaches_at_all_is_an_error_naming_it() -> None:
    case = synthetic_case()
    with pytest.raises(CompileError, match=r"protocols/test.yaml:\d+:3: structures\.Target: "
                                           r"target 'Target': none of its \d+ voxels"):
        compile_protocol(protocol(GOALS, terms=TERMS), _emptied(case, rows=_target_rows(case)))


def test_beams_whose_beamlets_give_no_dose_are_named_with_their_counts() -> None:
    case = synthetic_case()
    whole = case.beamlets.of_beam(2)
    part = case.beamlets.of_beam(3)[:4]
    notes = compile_protocol(protocol(GOALS, terms=TERMS), _emptied(case, columns=np.concatenate([whole, part]))).notes
    [note] = [note for note in notes if note.startswith("influence columns without dose")]
    assert f"beam 2 (gantry 120°): all {len(whole)} beamlets (the whole beam gives no dose)" in note
    assert f"beam 3 (gantry 240°): 4 of its {len(case.beamlets.of_beam(3))} beamlets" in note
    assert "beam 1 " not in note


def test_the_notes_reach_the_terminal_and_plan_json(tmp_path: Path) -> None:
    case = synthetic_case()
    broken = _emptied(case, rows=_target_rows(case)[:10], columns=case.beamlets.of_beam(2))
    outcome = specc.plan(protocol(GOALS, terms=TERMS), broken, out_dir=tmp_path)
    recorded = json.loads((tmp_path / "plan.json").read_text())["notes"]
    for start in ("Target: 10 of its", "influence columns without dose: beam 2"):
        assert any(note.startswith(start) for note in outcome.notes)
        assert any(note.startswith(start) for note in recorded)


def test_an_isocentre_outside_the_dose_grid_is_noted():
    """audit b2 N7: a spacing written in cm (1 mm for 10 mm) planned without a word, the PTV 0.17 cc and every
    beam's isocentre 160 mm beyond the grid; the grid as built has its isocentres inside and no such note."""
    case = synthetic_case()
    program = compile_protocol(protocol(GOALS, terms=TERMS), case)
    assert not any("isocentre outside the dose grid" in note for note in program.notes)
    shrunk = dataclasses.replace(case, grid=dataclasses.replace(case.grid, spacing_mm=tuple(
        spacing / 10 for spacing in case.grid.spacing_mm)))
    notes = [note for note in compile_protocol(protocol(GOALS, terms=TERMS), shrunk).notes
             if note.startswith("isocentre outside the dose grid")]
    assert len(notes) == 1 and "a spacing in cm written as mm" in notes[0]
