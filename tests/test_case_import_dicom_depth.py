"""Depths of the built-in engine on an imported CT: traced through the CT itself (its resolution, its whole
extent), not the dose grid around the contours (audit s19/b1 F1, F4), and the HU table recorded with the case."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from interop_fixtures import CircleRoi, CtGeometry, write_ct_series, write_rtstruct

from specc.case.engine import PencilBeamModel, compute_influence
from specc.case.importers.dicom import import_dicom
from specc.case.importers.engine_case import scanned_density
from specc.case.importers.hu_density import DEFAULT_HU_TABLE, hu_table_record
from specc.case.model import Beam, Grid

# A square water box (|x|, |y| <= 40 mm, 0 HU) in air, its CT pixels 2.5 mm on a lattice symmetric about 0.
GEOMETRY = CtGeometry(columns=41, rows=41, slices=5, pixel_mm=2.5, slice_mm=5.0, origin=(-50.0, -50.0, -10.0))
HALF_WIDTH_MM = 40.0
TARGET = CircleRoi("Target", 0.0, 0.0, 12.0, -5.0, 5.0, (255, 0, 0))  # no dose-grid centre on its edge
BODY = CircleRoi("Body", 0.0, 0.0, 39.0, -10.0, 10.0, (0, 255, 0))


def _water_box(folder: Path, rois: list[CircleRoi], couch_hu: float | None = None, geometry: CtGeometry = GEOMETRY) -> Path:
    gx, gy = np.meshgrid(geometry.x(), geometry.y(), indexing="ij")
    plane = np.where((np.abs(gx) <= HALF_WIDTH_MM) & (np.abs(gy) <= HALF_WIDTH_MM), 0.0, -1000.0)
    if couch_hu is not None:  # a slab under the posterior surface, outside every contour
        plane[(gy > HALF_WIDTH_MM + 1) & (gy < HALF_WIDTH_MM + 9)] = couch_hu
    write_ct_series(folder, geometry, np.repeat(plane[:, :, None], geometry.slices, axis=2))
    write_rtstruct(folder / "RS.dcm", geometry, rois)
    return folder


def _target_dose_per_beam(imported) -> dict[float, float]:
    case = imported.case
    mask = case.structures["Target"].mask
    doses = {}
    for beam in case.beams:
        weights = (case.beamlets.beam_id == beam.id).astype(float)
        doses[beam.gantry_deg] = float(case.dose_on_grid(weights, 1)[mask].mean())
    return doses


def test_tissue_in_front_of_the_contours_counts_without_a_body_contour(tmp_path):
    """Only the target contoured: the 30 mm of water between the surface and the target's box still attenuate."""
    with_body = import_dicom(_water_box(tmp_path / "body", [BODY, TARGET]), beams=[0.0], grid_mm=5.0, targets=["Target"])
    target_only = import_dicom(_water_box(tmp_path / "target", [TARGET]), beams=[0.0], grid_mm=5.0, targets=["Target"])
    assert target_only.case.grid.shape[1] < with_body.case.grid.shape[1]  # the dose grid is the target's box only
    assert _target_dose_per_beam(target_only)[0.0] == pytest.approx(_target_dose_per_beam(with_body)[0.0], rel=0.005)
    assert any("over its whole extent" in note and "vacuum" in note for note in target_only.notes)


def test_a_couch_outside_every_contour_attenuates_the_posterior_beam(tmp_path):
    plain = import_dicom(_water_box(tmp_path / "plain", [BODY, TARGET]), beams=[180.0], grid_mm=5.0, targets=["Target"])
    couch = import_dicom(_water_box(tmp_path / "couch", [BODY, TARGET], couch_hu=0.0), beams=[180.0], grid_mm=5.0,
                         targets=["Target"])
    ratio = _target_dose_per_beam(couch)[180.0] / _target_dose_per_beam(plain)[180.0]
    # 7.5 mm of water (three 2.5 mm pixels, y 42.5 to 47.5 mm) more depth, through the documented attenuation
    # (0.0039 / mm) and the depth's inverse square unchanged: exp(-0.0039 x 7.5) = 0.971.
    assert ratio == pytest.approx(np.exp(-0.0039 * 7.5), abs=0.004)


def test_the_depth_dose_on_a_coarse_grid_follows_the_model_at_the_cts_surface(tmp_path):
    """The surface lies where the CT puts it (y = -40 mm), not between the 10 mm dose grid's centres around it
    (y = -49 mm, air, and -39 mm, water): density sampled there made the surface a ramp 4 mm in front of the CT's
    (1.6% less dose; opposed beams 3% apart in the audit)."""
    geometry = CtGeometry(columns=50, rows=50, slices=5, pixel_mm=2.0, slice_mm=5.0, origin=(-49.0, -49.0, -10.0))
    loose_body = CircleRoi("Body", 0.0, 0.0, 48.0, -10.0, 10.0)  # drawn beyond the skin, into the air
    imported = import_dicom(_water_box(tmp_path / "box", [loose_body, TARGET], geometry=geometry), beams=[0.0],
                            grid_mm=10.0, targets=["Target"])
    case, beam = imported.case, imported.case.beams[0]
    x, y, z = case.grid.axes_mm()
    assert y[:2] == pytest.approx([-49.0, -39.0])
    i, k = int(np.argmin(np.abs(x - beam.isocenter_mm[0]))), int(np.argmin(np.abs(z - beam.isocenter_mm[2])))
    dose = case.dose_on_grid(np.ones(case.n_beamlets), 1)[i, :, k]
    axis = (y > -HALF_WIDTH_MM + 15) & (y < HALF_WIDTH_MM)  # beyond the build-up, inside the box
    model = PencilBeamModel()
    t = beam.sad_mm + y[axis] - beam.isocenter_mm[1]
    expected = model.depth_dose(y[axis] + HALF_WIDTH_MM) * (beam.sad_mm / t) ** 2
    np.testing.assert_allclose(dose[axis] / expected, 1.0, atol=0.004)


def test_a_voxel_on_the_cts_first_or_last_slice_gets_the_dose_of_one_in_the_middle(tmp_path):
    """Review s19/r3 M1: the density was vacuum just past the outermost slice centres, and a voxel on an end slice
    takes its depth partly from a ray up to half a dose voxel beyond it: with Body and Target on every slice, the end
    slices got 16% and 12% more dose than the middle ones 71 mm deep (0.881 and 0.852 against 0.762)."""
    body, target = CircleRoi("Body", 0.0, 0.0, 39.0, -10.0, 10.0), CircleRoi("Target", 0.0, 0.0, 12.0, -10.0, 10.0)
    imported = import_dicom(_water_box(tmp_path / "box", [body, target]), beams=[0.0], grid_mm=3.0, targets=["Target"])
    case = imported.case
    x, y, z = case.grid.axes_mm()
    assert z.tolist() == [-10.0, -5.0, 0.0, 5.0, 10.0]  # the CT's slices, all contoured
    dose = case.dose_on_grid(np.ones(case.n_beamlets), 1)[np.argmin(np.abs(x)), np.argmin(np.abs(y - 30.0))]
    assert dose[[0, -1]] == pytest.approx([dose[2]] * 2, rel=0.005)
    assert any("z -15 to 15" in note and "slices continued 5 mm past theirs" in note for note in imported.notes)


def test_the_end_slices_continue_by_a_dose_plane_thicker_than_a_slice():
    """A dose grid of 6 mm planes over 1 mm slices: its rays are up to 3 mm apart, so one slice of continuation
    left the last slice's voxels 12% hot; the end slices continue by one dose-grid plane there."""
    ct = Grid(shape=(81, 81, 21), spacing_mm=(2.5, 2.5, 1.0), origin_mm=(-100.0, -100.0, -10.0))
    x, y, _ = ct.axes_mm()
    box = ((np.abs(x)[:, None] <= 90) & (np.abs(y)[None, :] <= 90)).astype(np.float32)
    water = np.repeat(box[:, :, None], ct.shape[2], axis=2)
    dose_grid = Grid(shape=(31, 31, 7), spacing_mm=(6.0, 6.0, 6.0), origin_mm=(-90.0, -90.0, -20.0))
    gx, gy, gz = dose_grid.axes_mm()
    target = np.broadcast_to(((np.abs(gx)[:, None] <= 12) & (np.abs(gy)[None, :] <= 60))[:, :, None], dose_grid.shape)
    influence = compute_influence(scanned_density(water, ct, dose_grid), dose_grid,
                                  [Beam(id=1, gantry_deg=0.0, isocenter_mm=(0.0, 0.0, 0.0))], target, target)
    dose = np.zeros(dose_grid.shape).ravel()
    dose[influence.voxel_indices] = influence.matrix @ np.ones(influence.matrix.shape[1])
    column = dose.reshape(dose_grid.shape)[np.argmin(np.abs(gx)), np.argmin(np.abs(gy - 50.0))]
    last_slice, middle = int(np.flatnonzero(gz == 10.0)[0]), int(np.flatnonzero(gz == 4.0)[0])  # 140 mm deep
    assert column[last_slice] == pytest.approx(column[middle], rel=0.005)


def test_the_hu_table_used_is_recorded_in_the_metadata(tmp_path):
    table = ((-1000.0, 0.0), (-100.0, 0.95), (0.0, 1.0), (3000.0, 2.5))
    imported = import_dicom(_water_box(tmp_path / "box", [BODY, TARGET]), beams=[0.0], grid_mm=10.0,
                            targets=["Target"], hu_table=table)
    assert imported.case.metadata.extra["import.hu_table"] == "-1000:0; -100:0.95; 0:1; 3000:2.5"
    default = import_dicom(tmp_path / "box", beams=[0.0], grid_mm=10.0, targets=["Target"])
    assert default.case.metadata.extra["import.hu_table"] == hu_table_record(DEFAULT_HU_TABLE)


def test_ct_numbers_below_the_tables_first_row_are_noted(tmp_path):
    table = ((-100.0, 0.95), (0.0, 1.0), (3000.0, 2.8))
    imported = import_dicom(_water_box(tmp_path / "box", [BODY, TARGET]), beams=[0.0], grid_mm=10.0,
                            targets=["Target"], hu_table=table)
    below = [note for note in imported.notes if "below the HU table's first row (-100 HU)" in note]
    assert len(below) == 1 and "down to -1000 HU" in below[0] and "0.95" in below[0]
    plain = import_dicom(tmp_path / "box", beams=[0.0], grid_mm=10.0, targets=["Target"])
    assert not [note for note in plain.notes if "HU table's first row" in note]
