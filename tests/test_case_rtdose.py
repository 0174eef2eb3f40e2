"""Reading another system's RT Dose: what each value means (total Gy), where it is, what is refused."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from interop_fixtures import write_rtdose_file

from specc.case.importers.rtdose import read_rtdose
from specc.case.model import Grid
from specc.errors import CaseError

ORIGIN = (-20.0, -10.0, 5.0)
SPACING = (2.5, 2.0, 3.0)
SHAPE = (9, 7, 5)


def linear_dose(shape=SHAPE, origin=ORIGIN, spacing=SPACING) -> np.ndarray:
    """20 Gy + a gradient along every axis: trilinear interpolation reproduces it exactly."""
    x, y, z = (o + s * np.arange(n) for o, s, n in zip(origin, spacing, shape))
    return 20.0 + 0.3 * x[:, None, None] + 0.2 * y[None, :, None] + 0.5 * z[None, None, :]


def test_a_plan_sum_is_read_as_the_total_in_gy_on_its_grid(tmp_path):
    dose = linear_dose()
    read = read_rtdose(write_rtdose_file(tmp_path / "RD.dcm", dose, ORIGIN, SPACING), fractions=30)
    assert read.grid == Grid(SHAPE, SPACING, ORIGIN)
    np.testing.assert_allclose(read.dose_gy, dose, rtol=1e-8)
    assert read.fractions_scaled is None and read.summation == "PLAN"
    assert read.attributes["Manufacturer"] == "OtherTPS"
    assert len(read.sha256) == 64


def test_a_session_dose_is_multiplied_by_the_fractions_and_a_fraction_groups_is_a_total(tmp_path):
    """DICOM: FRACTION_SESSION is one session (one fraction); FRACTION one fraction group, all its fractions."""
    dose = linear_dose()
    session = read_rtdose(write_rtdose_file(tmp_path / "RS.dcm", dose, ORIGIN, SPACING, summation="FRACTION_SESSION"), 28)
    np.testing.assert_allclose(session.dose_gy, 28 * dose, rtol=1e-8)
    assert session.fractions_scaled == 28
    assert any("one fraction" in note and "28 fractions" in note for note in session.notes)
    group = read_rtdose(write_rtdose_file(tmp_path / "RF.dcm", dose, ORIGIN, SPACING, summation="FRACTION"), 28)
    np.testing.assert_allclose(group.dose_gy, dose, rtol=1e-8)
    assert group.fractions_scaled is None and any("one fraction group" in note for note in group.notes)
    # The user's word that the file holds one fraction (matRad writes FRACTION for one).
    stated = read_rtdose(tmp_path / "RF.dcm", 28, per_fraction=True)
    np.testing.assert_allclose(stated.dose_gy, 28 * dose, rtol=1e-8)
    assert any("as stated (--per-fraction)" in note for note in stated.notes)


@pytest.mark.parametrize("prone, absolute", [(True, False), (False, True), (True, True)])
def test_prone_storage_and_absolute_frame_offsets_give_the_same_dose_in_patient_coordinates(tmp_path, prone, absolute):
    dose = linear_dose()
    path = write_rtdose_file(tmp_path / "RD.dcm", dose, ORIGIN, SPACING, prone=prone, absolute_offsets=absolute)
    read = read_rtdose(path, 30)
    assert read.grid == Grid(SHAPE, SPACING, ORIGIN)
    np.testing.assert_allclose(read.dose_gy, dose, rtol=1e-8)


def test_on_another_grid_the_dose_is_trilinear_and_unknown_beyond_the_dose_grid(tmp_path):
    read = read_rtdose(write_rtdose_file(tmp_path / "RD.dcm", linear_dose(), ORIGIN, SPACING), 30)
    # 1 mm voxels starting 2 mm before the dose grid along x: the first two planes have no dose.
    grid = Grid((20, 10, 8), (1.0, 1.0, 1.0), (ORIGIN[0] - 2.0, ORIGIN[1] + 0.5, ORIGIN[2] + 0.25))
    values, known = read.on_grid(grid)
    assert not known[:2].any() and np.isnan(values[:2]).all()
    assert known[2:].all()
    expected = linear_dose(grid.shape, grid.origin_mm, grid.spacing_mm)
    np.testing.assert_allclose(values[2:], expected[2:], rtol=1e-7)
    assert not read.has_grid(grid) and read.has_grid(read.grid)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"units": "RELATIVE"}, "DoseUnits RELATIVE"),
        ({"summation": "BEAM"}, "DoseSummationType BEAM is part of a plan"),
        ({"summation": "BEAM_SESSION"}, "DoseSummationType BEAM_SESSION is part of a plan"),
    ],
)
def test_doses_that_are_not_a_plans_total_in_gy_are_refused_with_the_file_named(tmp_path, change, message):
    path = write_rtdose_file(tmp_path / "RD.dcm", linear_dose(), ORIGIN, SPACING, **change)
    with pytest.raises(CaseError, match=message) as error:
        read_rtdose(path, 30)
    assert str(path) in str(error.value)


def test_non_uniform_frames_and_oblique_grids_are_refused(tmp_path):
    import pydicom

    path = write_rtdose_file(tmp_path / "RD.dcm", linear_dose(), ORIGIN, SPACING)
    dataset = pydicom.dcmread(path)
    dataset.GridFrameOffsetVector = [0, 3, 6, 10, 13]
    dataset.save_as(tmp_path / "gaps.dcm")
    with pytest.raises(CaseError, match="not uniformly spaced"):
        read_rtdose(tmp_path / "gaps.dcm", 30)
    dataset = pydicom.dcmread(path)
    dataset.ImageOrientationPatient = [0.866, 0.5, 0, -0.5, 0.866, 0]
    dataset.save_as(tmp_path / "oblique.dcm")
    with pytest.raises(CaseError, match="not axis-aligned"):
        read_rtdose(tmp_path / "oblique.dcm", 30)


def test_a_file_that_is_not_an_rt_dose_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("not DICOM")
    with pytest.raises(CaseError, match="not a readable DICOM file"):
        read_rtdose(tmp_path / "notes.txt", 30)


def test_an_rt_dose_without_number_of_frames_is_refused_naming_it(tmp_path):
    """pydicom would take as many frames as the bytes hold; the check does not guess."""
    path = write_rtdose_file(tmp_path / "RD.dcm", np.ones((4, 3, 5)), (0.0, 0.0, 0.0), (2.0, 2.0, 3.0))
    dose = pydicom.dcmread(path)
    del dose.NumberOfFrames
    dose.save_as(path)
    with pytest.raises(CaseError, match=r"RD.dcm: the RT Dose has no NumberOfFrames"):
        read_rtdose(path, fractions=30)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"NumberOfFrames": 4}, r"the pixel data holds 1260 bytes \(5 planes of Rows x Columns at BitsAllocated 32\), but "
                                r"NumberOfFrames 4 x Rows 7 x Columns 9 x BitsAllocated 32 / 8 makes 1008"),
        ({"BitsAllocated": 16, "BitsStored": 16, "HighBit": 15},
         r"the pixel data holds 1260 bytes .*BitsAllocated 16 / 8 makes 630: one of them is wrong"),
    ],
)
def test_pixel_data_longer_than_its_attributes_state_is_refused_naming_them(tmp_path, change, message):
    """pydicom decodes more bytes than NumberOfFrames x Rows x Columns x BitsAllocated state without a word,
    and the reshape into planes then failed with a traceback (audit a2 F12)."""
    path = write_rtdose_file(tmp_path / "RD.dcm", linear_dose(), ORIGIN, SPACING)
    dose = pydicom.dcmread(path)
    for keyword, value in change.items():
        setattr(dose, keyword, value)
    dose.save_as(path)
    with pytest.raises(CaseError, match=rf"RD\.dcm: {message}"):
        read_rtdose(path, fractions=30)


@pytest.mark.parametrize(
    "keyword, value, message",
    [
        ("ImagePositionPatient", ["NaN", 0, 0], r"ImagePositionPatient \[NaN, 0.0, 0.0\] is not 3 finite numbers"),
        ("ImagePositionPatient", [0, 0], r"ImagePositionPatient \[0.0, 0.0\] is not 3 finite numbers"),
        ("PixelSpacing", [0, 2.5], r"PixelSpacing \[0.0, 2.5\] must be positive"),
        ("PixelSpacing", [-2, 2.5], r"PixelSpacing \[-2.0, 2.5\] must be positive"),
        ("ImageOrientationPatient", [0, 0, 0, 0, 0, 0],
         r"ImageOrientationPatient \[0.0, 0.0, 0.0, 0.0, 0.0, 0.0\] is not a valid orientation: the row and column "
         r"direction cosines must be unit vectors"),
        ("GridFrameOffsetVector", [0, 3, "NaN", 9, 12], r"GridFrameOffsetVector value 3 of 5 is nan, not a number"),
    ],
)
def test_geometry_that_places_no_voxel_is_refused_naming_the_file_and_the_attribute(tmp_path, keyword, value, message):
    """They said 'grid origin_mm must be three finite numbers' without the file, or that an all-zero
    orientation's columns 'run along x' (audit a2 F13, F14)."""
    path = write_rtdose_file(tmp_path / "RD.dcm", linear_dose(), ORIGIN, SPACING)
    dose = pydicom.dcmread(path)
    setattr(dose, keyword, value)
    dose.save_as(path)
    with pytest.raises(CaseError, match=rf"RD\.dcm: {message}"):
        read_rtdose(path, fractions=30)


def test_a_summation_type_specc_does_not_know_is_not_called_part_of_a_plan(tmp_path):
    path = write_rtdose_file(tmp_path / "RD.dcm", linear_dose(), ORIGIN, SPACING, summation="WHATEVER")
    with pytest.raises(CaseError, match=r"RD\.dcm: DoseSummationType WHATEVER is not one specc reads: it reads a total") as error:
        read_rtdose(path, 30)
    assert "part of a plan" not in str(error.value)
