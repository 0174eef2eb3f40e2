"""CT numbers (HU) to relative electron density, for the built-in dose engine.

The engine scales depth by electron density relative to water. Real calibration curves are
scanner-specific; this default is a generic piecewise-linear curve through the nominal
values of the tissue inserts of a CIRS 062M-type electron-density phantom (documented in
docs/formats/dicom.md). A clinic should pass its own curve (`--hu-table FILE.csv`).
"""

from __future__ import annotations

import csv
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


def read_hu_table(path: str | Path) -> tuple[tuple[float, float], ...]:
    """Read a two-column CSV (HU, relative electron density), with or without a header line."""
    path = Path(path)
    rows: list[tuple[float, float]] = []
    try:
        with path.open(newline="") as handle:
            for line_no, row in enumerate(csv.reader(handle), start=1):
                if not row or row[0].strip().startswith("#"):
                    continue
                try:
                    rows.append((float(row[0]), float(row[1])))
                except (ValueError, IndexError):
                    if line_no == 1 and not rows:
                        continue  # header line
                    raise CaseError(f"{path}:{line_no}: expected 'HU, relative electron density', got {row}") from None
    except OSError as error:
        raise CaseError(f"{path}: cannot read HU table ({error.strerror})") from None
    if len(rows) < 2:
        raise CaseError(f"{path}: an HU table needs at least two rows")
    hus = [hu for hu, _ in rows]
    if any(b <= a for a, b in zip(hus, hus[1:])):
        raise CaseError(f"{path}: HU values must be strictly increasing")
    if any(density < 0 for _, density in rows):
        raise CaseError(f"{path}: relative electron densities must be non-negative")
    return tuple(rows)
