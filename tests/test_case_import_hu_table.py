"""--hu-table files: every row checked where it stands (file:line), nothing dropped or scaled silently (audit s19/b1 F2)."""

from __future__ import annotations

import numpy as np
import pytest

from specc.case.importers.hu_density import beyond_table_notes, read_hu_table
from specc.errors import CaseError


def _table(tmp_path, text: str):
    path = tmp_path / "hu.csv"
    path.write_text(text)
    return path


@pytest.mark.parametrize(("text", "message"), [
    *((f"HU,RED\n-1000,0.001\n0,{value}\n3000,2.8\n", rf"hu\.csv:3: .*must be finite numbers, got 0, {value}")
      for value in ("nan", "inf", "-inf")),  # a value that is not finite, at its line
    # a third column is refused, not dropped
    ("HU,mass density,RED\n-1000,0.0012,0.001\n0,1.0,1.0\n",
     r"hu\.csv:2: 3 columns .*an HU table has two.*not mass density"),
    # densities in percent, at their line
    ("HU,RED\n-1000,0.1\n0,100\n3000,280\n", r"hu\.csv:3: relative electron density 100 is above 10.*percent"),
    # CT numbers with water at 1000 (HU + 1000): 0 would be air
    ("0,0.001\n1000,1.0\n2200,1.7\n", r"hu\.csv: the table gives relative electron density 0.001 at 0 HU"),
], ids=["nan", "inf", "-inf", "third column", "percent", "not water at 0 HU"])
def test_a_table_that_cannot_be_read_as_written_is_refused_at_its_line(tmp_path, text: str, message: str):
    with pytest.raises(CaseError, match=message):
        read_hu_table(_table(tmp_path, text))


def test_a_header_after_comment_lines_and_a_trailing_comma_are_read(tmp_path):
    path = _table(tmp_path, "# scanner A, 120 kV\n\nHU,RED\n-1000,0.001,\n0,1\n3000,2.8\n")
    assert read_hu_table(path) == ((-1000.0, 0.001), (0.0, 1.0), (3000.0, 2.8))


def test_a_second_header_line_is_still_an_error(tmp_path):
    path = _table(tmp_path, "HU,RED\nHU,RED\n-1000,0.001\n0,1\n")
    with pytest.raises(CaseError, match=r"hu\.csv:2: expected 'HU, relative electron density'"):
        read_hu_table(path)


def test_ct_numbers_beyond_the_ends_are_noted_only_beyond_scanner_padding():
    table = ((-1000.0, 0.001), (0.0, 1.0), (3000.0, 2.8))
    assert beyond_table_notes(np.array([-1024.0, 0.0, 3000.0]), table) == []  # -1024 is air padding
    notes = beyond_table_notes(np.array([-1024.0, 0.0, 3100.0, 8000.0]), table)
    assert len(notes) == 1 and "2 CT voxels (50.0%) lie above the HU table's last row (3000 HU), up to 8000 HU" in notes[0]
