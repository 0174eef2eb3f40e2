"""Planes written at another precision than the slices they lie on (audit c2 F1): a contour's z, an RT Dose
frame's offset and a dose grid's outer plane are on a slice within a tenth of the slice spacing
(dicom_ct.PLANE_TOLERANCE_FRACTION), and refused beyond it with how far off they are and the tolerance."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from interop_fixtures import CtGeometry, body_hu, standard_rois, write_ct_series, write_rtdose_file, write_rtstruct

from specc.case.importers.dicom import import_dicom
from specc.case.importers.rtdose import read_rtdose
from specc.case.model import Grid
from specc.errors import CaseError

OPTIONS = dict(beams=[0], grid_mm=5, beamlet_mm=10, targets=["Target"])


def _study(folder, geometry):
    write_ct_series(folder, geometry, body_hu(geometry))
    write_rtstruct(folder / "RS.dcm", geometry, standard_rois(geometry))
    return folder


def _rewrite_contour_z(path, change) -> None:
    """Every contour point's z replaced by `change(z)`."""
    structure_set = pydicom.dcmread(path)
    for roi_contour in structure_set.ROIContourSequence:
        for contour in roi_contour.ContourSequence:
            data = [float(v) for v in contour.ContourData]
            data[2::3] = [change(z) for z in data[2::3]]
            contour.ContourData = data
    structure_set.save_as(path)


def test_contours_a_hair_off_their_slices_are_placed_on_them_and_said_so(tmp_path):
    """ContourData 0.02 mm off every slice of a 3 mm series (a system writing z to 0.01 mm after a transform):
    'between CT slices (nearest -13.5 mm)' refused the whole structure set."""
    geometry = CtGeometry(slices=8)
    exact = import_dicom(_study(tmp_path / "exact", geometry), **OPTIONS)
    shifted = _study(tmp_path / "shifted", geometry)
    _rewrite_contour_z(shifted / "RS.dcm", lambda z: round(z + 0.02, 2))

    result = import_dicom(shifted, **OPTIONS)

    assert result.case.grid == exact.case.grid
    for name, structure in exact.case.structures.items():
        assert np.array_equal(result.case.structures[name].mask, structure.mask), name
    note = next(note for note in result.notes if note.startswith("contours lying off their CT slice"))
    assert "within 0.3 mm (10% of the 3 mm spacing)" in note and "Target (0.02 mm)" in note
    assert not any("lying off" in note for note in exact.notes)


def test_contour_z_written_to_a_tenth_of_a_millimetre_on_a_thin_series_is_on_its_slices(tmp_path):
    """A 1.25 mm series at z = -15.625, -14.375, ... whose structure set writes z to 0.1 mm (-15.6, -14.4)."""
    geometry = CtGeometry(slices=10, slice_mm=1.25, origin=(-50.0, -45.0, -15.625))
    exact = import_dicom(_study(tmp_path / "exact", geometry), **OPTIONS)
    rounded = _study(tmp_path / "rounded", geometry)
    _rewrite_contour_z(rounded / "RS.dcm", lambda z: round(z, 1))

    result = import_dicom(rounded, **OPTIONS)

    for name, structure in exact.case.structures.items():
        assert np.array_equal(result.case.structures[name].mask, structure.mask), name


@pytest.mark.parametrize("fraction, off", [(0.25, "0.75"), (0.5, "1.5")])
def test_a_contour_between_slices_is_refused_saying_how_far_off_and_the_tolerance(tmp_path, fraction, off):
    geometry = CtGeometry(slices=8)
    folder = _study(tmp_path, geometry)
    structure_set = pydicom.dcmread(folder / "RS.dcm")
    contour = structure_set.ROIContourSequence[1].ContourSequence[2]  # Target, on z[4] = -3 mm
    data = [float(v) for v in contour.ContourData]
    data[2::3] = [z + fraction * geometry.slice_mm for z in data[2::3]]
    contour.ContourData = data
    structure_set.save_as(folder / "RS.dcm")
    with pytest.raises(
        CaseError,
        match=rf"RS.dcm: ROI 'Target' has a contour at z = {-3 + fraction * 3:g} mm, {off} mm from the nearest CT "
        rf"slice \(-?\d+ mm\): between CT slices, since a contour must lie within 0.3 mm \(10% of the 3 mm spacing\)",
    ):
        import_dicom(folder, **OPTIONS)


# --- RT Dose frames and grids ------------------------------------------------------------------
ORIGIN = (-20.0, -10.0, -13.125)
SPACING = (2.5, 2.0, 1.25)
SHAPE = (9, 7, 6)


def _linear_dose() -> np.ndarray:
    x, y, z = (o + s * np.arange(n) for o, s, n in zip(ORIGIN, SPACING, SHAPE))
    return 20.0 + 0.3 * x[:, None, None] + 0.2 * y[None, :, None] + 0.5 * z[None, None, :]


def _dose_with_offsets(tmp_path, offsets) -> pydicom.Dataset:
    path = write_rtdose_file(tmp_path / "RD.dcm", _linear_dose(), ORIGIN, SPACING, absolute_offsets=True)
    dataset = pydicom.dcmread(path)
    dataset.GridFrameOffsetVector = offsets
    dataset.save_as(path)
    return path


def test_absolute_frame_offsets_written_to_a_tenth_of_a_millimetre_are_read_on_their_planes(tmp_path):
    """-13.125, -11.875, ... written -13.1, -11.9, ...: gaps of 1.2 and 1.3 mm were 'not uniformly spaced'."""
    exact_z = ORIGIN[2] + SPACING[2] * np.arange(SHAPE[2])
    path = _dose_with_offsets(tmp_path, [round(z, 1) for z in exact_z])

    read = read_rtdose(path, 30)

    assert read.grid.shape == SHAPE
    np.testing.assert_allclose(read.grid.origin_mm, ORIGIN, atol=1e-9)  # ImagePositionPatient places the first
    # uniform planes from the first to the last frame as written: each within the rounding of a true plane
    assert np.abs(read.grid.axes_mm()[2] - exact_z).max() <= 0.05 + 1e-9
    np.testing.assert_allclose(read.dose_gy, _linear_dose(), rtol=1e-8)
    assert any("0.025 mm apart, within 0.124 mm (10% of the 1.24 mm spacing) of the frames" in note for note in read.notes)
    # the spacing as the file gives it: from the first frame to the last, 6.2 mm in 5 gaps
    assert any("frames lie up to 0.04 mm from uniform planes of 1.24 mm" in note for note in read.notes)


def test_a_frame_a_quarter_of_the_spacing_off_its_plane_is_refused_saying_how_far(tmp_path):
    offsets = list(SPACING[2] * np.arange(SHAPE[2]))
    offsets[3] += 0.25 * SPACING[2]
    path = _dose_with_offsets(tmp_path, offsets)
    with pytest.raises(CaseError, match=r"RD.dcm: RT Dose frames are not uniformly spaced .*frame 4 at z = -9.0625 mm "
                                        r"lies 0.312 mm from its plane of 1.25 mm frames, beyond 0.125 mm \(10% of the "
                                        r"1.25 mm spacing\)"):
        read_rtdose(path, 30)


def test_a_first_offset_beyond_the_tolerance_of_the_position_is_refused_saying_how_far(tmp_path):
    exact_z = ORIGIN[2] + SPACING[2] * np.arange(SHAPE[2])
    path = _dose_with_offsets(tmp_path, list(exact_z + 0.3))
    with pytest.raises(CaseError, match=r"GridFrameOffsetVector starts at -12.825 mm and ImagePositionPatient's z is "
                                        r"-13.125 mm \(0.3 mm apart, beyond 0.125 mm \(10% of the 1.25 mm spacing\) "
                                        r"of the frames\)"):
        read_rtdose(path, 30)


@pytest.mark.parametrize("beyond_mm, known", [(0.02, True), (0.3, False)])
def test_a_grid_plane_a_hair_beyond_the_dose_grids_last_plane_lies_on_it(tmp_path, beyond_mm, known):
    """A case or prior-dose grid whose last plane is 0.02 mm beyond the RT Dose's (written at another precision)
    took no dose there: the plane lies on the dose grid's; a quarter of a frame beyond has no dose, as before."""
    read = read_rtdose(write_rtdose_file(tmp_path / "RD.dcm", _linear_dose(), ORIGIN, SPACING), 30)
    last_z = ORIGIN[2] + SPACING[2] * (SHAPE[2] - 1)
    grid = Grid((SHAPE[0], SHAPE[1], 2), SPACING, (ORIGIN[0], ORIGIN[1], last_z - SPACING[2] + beyond_mm))
    values, inside = read.on_grid(grid)
    assert inside[:, :, 0].all()
    assert bool(inside[:, :, 1].all()) is known and bool(inside[:, :, 1].any()) is known
    if known:
        np.testing.assert_allclose(values[:, :, 1], _linear_dose()[:, :, -1], rtol=1e-8)
