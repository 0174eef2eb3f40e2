"""CT numbers (HU) to relative electron density, for the built-in dose engine.

The engine scales depth by electron density relative to water. Real calibration curves are
scanner-specific; this default is a generic piecewise-linear curve through the nominal
values of the tissue inserts of a CIRS 062M-type electron-density phantom (documented in
docs/formats/dicom.md). A clinic should pass its own curve (`--hu-table FILE.csv`).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from specc.errors import CaseError

# (HU, relative electron density): air, lung (inhale, exhale), adipose, water, muscle,
# liver, trabecular bone, dense bone, and a cap for metal-free bone beyond the phantom.
DEFAULT_HU_TABLE: tuple[tuple[float, float], ...] = (
    (-1000.0, 0.001),
    (-800.0, 0.190),
    (-500.0, 0.489),
    (-100.0, 0.949),
    (0.0, 1.000),
    (40.0, 1.043),
    (60.0, 1.052),
    (240.0, 1.117),
    (1200.0, 1.695),
    (3000.0, 2.800),
)


def hu_to_relative_electron_density(
    hu: np.ndarray, table: tuple[tuple[float, float], ...] = DEFAULT_HU_TABLE
) -> np.ndarray:
    """Interpolate the table linearly; values beyond its ends are clamped to the end values."""
    points = np.asarray(table, dtype=np.float64)
    return np.interp(hu, points[:, 0], points[:, 1]).astype(np.float32)


# A relative electron density above this is no tissue or implant a CT calibration reaches (cortical bone
# ~1.7-1.8, titanium ~3.7, steel ~6.7): a table beyond it is in other units (percent, water = 100).
MAX_PLAUSIBLE_DENSITY = 10.0
# Relative electron density of water is 1 by definition; a table far from it at 0 HU is not one.
WATER_DENSITY_RANGE = (0.9, 1.1)
# CT numbers this far beyond a table's first or last row are noted (scanner padding of -1024 is not).
HU_BEYOND_TABLE_NOTED = 50.0


def read_hu_table(path: str | Path) -> tuple[tuple[float, float], ...]:
    """Read a two-column CSV (HU, relative electron density), with or without a header line.

    Every row is checked where it stands (file:line): two numbers, finite, the density
    non-negative and at most MAX_PLAUSIBLE_DENSITY; a third column is refused, not dropped, since
    calibration exports often hold HU, mass density and RED, and the wrong column would be taken.
    """
    path = Path(path)
    rows: list[tuple[float, float]] = []
    seen_line = False  # a header is allowed on the first line that is not blank or a comment
    try:
        with path.open(newline="") as handle:
            for line_no, row in enumerate(csv.reader(handle), start=1):
                if not row or not "".join(row).strip() or row[0].strip().startswith("#"):
                    continue
                header_allowed, seen_line = not seen_line, True
                fields = [field.strip() for field in row]
                while fields and not fields[-1]:
                    fields.pop()  # a trailing comma
                try:
                    values = [float(field) for field in fields]
                except ValueError:
                    values = []
                if len(values) != 2:
                    if header_allowed and not rows and len(values) == 0:
                        continue  # header line
                    raise CaseError(_row_error(path, line_no, row))
                rows.append(_checked_row(path, line_no, values[0], values[1]))
    except OSError as error:
        raise CaseError(f"{path}: cannot read HU table ({error.strerror})") from None
    if len(rows) < 2:
        raise CaseError(f"{path}: an HU table needs at least two rows")
    hus = [hu for hu, _ in rows]
    if any(b <= a for a, b in zip(hus, hus[1:])):
        raise CaseError(f"{path}: HU values must be strictly increasing")
    water = float(hu_to_relative_electron_density(np.array(0.0), tuple(rows)))
    low, high = WATER_DENSITY_RANGE
    if not low <= water <= high:
        raise CaseError(
            f"{path}: the table gives relative electron density {water:.3g} at 0 HU, where water is 1 by definition "
            f"(accepted {low:g}-{high:g}): are its first column CT numbers other than HU (water = 1000), or its "
            "second another quantity?"
        )
    return tuple(rows)


def _row_error(path: Path, line_no: int, row: list[str]) -> str:
    if len([field for field in row if field.strip()]) > 2:
        return (
            f"{path}:{line_no}: {len(row)} columns ({', '.join(row)}); an HU table has two, 'HU, relative electron "
            "density': keep only the relative electron density column (not mass density)"
        )
    return f"{path}:{line_no}: expected 'HU, relative electron density', got {row}"


def _checked_row(path: Path, line_no: int, hu: float, density: float) -> tuple[float, float]:
    if not (math.isfinite(hu) and math.isfinite(density)):
        raise CaseError(f"{path}:{line_no}: HU and relative electron density must be finite numbers, got {hu:g}, {density:g}")
    if density < 0:
        raise CaseError(f"{path}:{line_no}: relative electron density {density:g} is negative")
    if density > MAX_PLAUSIBLE_DENSITY:
        raise CaseError(
            f"{path}:{line_no}: relative electron density {density:g} is above {MAX_PLAUSIBLE_DENSITY:g}, more than any "
            "tissue or implant (steel is about 6.7): is it in percent (water = 100)? Water is 1"
        )
    return hu, density


HU_TABLE_KEY = "import.hu_table"  # where `metadata.extra` records the table a case's CT was converted with


def hu_table_record(table: tuple[tuple[float, float], ...]) -> str:
    """The table as the case metadata records it ('HU:RED' pairs), so the calibration can be traced."""
    return "; ".join(f"{hu:g}:{density:g}" for hu, density in table)


def hu_table_said(table: tuple[tuple[float, float], ...]) -> str:
    """The table an import converted its CT numbers with, as its notes name it (one wording for every importer)."""
    whose = "the default" if table == DEFAULT_HU_TABLE else "a user"
    return (f"{whose} HU table ({len(table)} rows, {table[0][0]:g} to {table[-1][0]:g} HU; recorded in the metadata "
            f"as {HU_TABLE_KEY})")


def recorded_hu_table(extra: dict[str, str]) -> tuple[tuple[float, float], ...] | None:
    """The table `hu_table_record` wrote into a case's metadata, None where none was recorded (a phantom, a
    case written before it was recorded): what a CT written back from the densities is converted with."""
    if HU_TABLE_KEY not in extra:
        return None
    return tuple((float(hu), float(density)) for hu, density in
                 (pair.split(":") for pair in extra[HU_TABLE_KEY].split("; ")))


def beyond_table_notes(hu: np.ndarray, table: tuple[tuple[float, float], ...]) -> list[str]:
    """Notes on CT numbers beyond the table's ends (more than HU_BEYOND_TABLE_NOTED): they get the end's density."""
    notes = []
    (first_hu, first_density), (last_hu, last_density) = table[0], table[-1]
    below = int(np.count_nonzero(hu < first_hu - HU_BEYOND_TABLE_NOTED))
    above = int(np.count_nonzero(hu > last_hu + HU_BEYOND_TABLE_NOTED))
    if below:
        notes.append(
            f"{below} CT voxels ({below / hu.size:.1%}) lie below the HU table's first row ({first_hu:g} HU), "
            f"down to {float(hu.min()):g} HU: they are given its density, {first_density:g} (air or lung among them "
            "counts as that)"
        )
    if above:
        notes.append(
            f"{above} CT voxels ({above / hu.size:.1%}) lie above the HU table's last row ({last_hu:g} HU), up to "
            f"{float(hu.max()):g} HU: they get its density {last_density:g}"
        )
    return notes
