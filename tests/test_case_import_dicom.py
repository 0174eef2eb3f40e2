"""DICOM CT + RTSTRUCT import: geometry, rasterization rule, identifiers, and clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from interop_fixtures import (
    CircleRoi,
    CtGeometry,
    body_hu,
    circle_points,
    standard_rois,
    write_ct_series,
    write_rtstruct,
    write_study,
)

from specc.case import Case
from specc.case.importers.dicom import import_dicom
from specc.case.importers.dicom_ct import read_dicom_folder
from specc.case.importers.hu_density import hu_to_relative_electron_density
from specc.case.importers.rtstruct import RoiContours, rasterize
from specc.errors import CaseError


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("study")
    geometry, rois = write_study(folder)
    return geometry, rois, import_dicom(folder, beams=[0, 120, 240], grid_mm=2.5, targets=["Target"])


def test_structures_match_their_analytic_volumes(imported):
    geometry, rois, result = imported
    case = result.case
    assert set(case.structures) == {roi.name for roi in rois}
    for roi in rois:
        planes = np.count_nonzero((geometry.z() >= roi.z_low - 1e-6) & (geometry.z() <= roi.z_high + 1e-6))
        expected_cc = np.pi * roi.radius_mm**2 * geometry.slice_mm * planes / 1000
        got_cc = case.structures[roi.name].n_voxels * case.voxel_volume_cc
        assert got_cc == pytest.approx(expected_cc, rel=0.06), roi.name


def test_grid_planes_lie_on_the_ct_slices_and_cover_the_contours(imported):
    geometry, _, result = imported
    x, y, z = result.case.grid.axes_mm()
    np.testing.assert_allclose(z, geometry.z())  # every contoured slice is a dose plane
    assert x[0] <= -34 and x[-1] >= 34 and y[0] <= -34 and y[-1] >= 34


def test_metadata_keeps_the_identifiers_export_needs(imported):
    _, _, result = imported
    extra = result.case.metadata.extra
    ct = pydicom.dcmread(sorted(Path(extra["import.source"]).glob("CT_*.dcm"))[0])
    assert extra["dicom.PatientID"] == ct.PatientID == "SPECC-TEST-001"
    assert extra["dicom.FrameOfReferenceUID"] == ct.FrameOfReferenceUID
    assert extra["dicom.StudyInstanceUID"] == ct.StudyInstanceUID


def test_density_follows_the_hu_table(imported):
    _, _, result = imported
    case = result.case
    x, y, _ = case.grid.axes_mm()
    i, j = int(np.argmin(np.abs(x - 10))), int(np.argmin(np.abs(y)))  # water, away from the lung disc
    assert case.density[i, j, 5] == pytest.approx(1.0, abs=1e-3)
    i_lung = int(np.argmin(np.abs(x + 25)))
    assert case.density[i_lung, j, 5] == pytest.approx(float(hu_to_relative_electron_density(np.array(-700.0))), abs=0.02)
    assert case.density[0, 0, 0] < 0.01  # air in the corner of the box


def test_every_structure_voxel_is_a_row_and_the_case_saves(imported, tmp_path):
    _, _, result = imported
    result.case.save(tmp_path / "case.h5")
    loaded = Case.load(tmp_path / "case.h5")
    assert loaded.content_hash() == result.case.content_hash()
    assert loaded.influence.nnz > 0
    assert "import.format" in loaded.metadata.extra


def test_report_lists_structures_grid_beams_and_nonzeros(imported):
    _, _, result = imported
    text = "\n".join(result.summary_lines())
    for fragment in ("External", "Target", "Spinal Cord", "beams: 3", "nonzeros", "grid:"):
        assert fragment in text


def test_rasterization_takes_voxel_centres_inside_with_holes_by_even_odd():
    square = np.array([[0.0, 0.0], [4.0, 0.0], [4.0, 4.0], [0.0, 4.0]])
    hole = np.array([[1.6, 1.6], [2.4, 1.6], [2.4, 2.4], [1.6, 2.4]])
    roi = RoiContours(number=1, name="Ring", color="#ffffff", planes={0.0: [square, hole]})
    axis = np.arange(-0.5, 5.0, 1.0)  # centres -0.5, 0.5, ..., 4.5
    mask = rasterize(roi, axis, axis, np.array([-3.0, 0.0, 1.0, 3.0]), slice_mm=3.0)
    # The hole (1.6..2.4) contains no voxel centre: the ring covers the same centres as the square.
    inside = (axis > 0) & (axis < 4)
    expected = inside[:, None] & inside[None, :]
    np.testing.assert_array_equal(mask[:, :, 1], expected)
    np.testing.assert_array_equal(mask[:, :, 2], expected)  # within half a slice of the contour
    assert not mask[:, :, 0].any() and not mask[:, :, 3].any()  # beyond half a slice: nothing


def test_a_hole_removes_the_centres_inside_it():
    square = np.array([[0.0, 0.0], [4.0, 0.0], [4.0, 4.0], [0.0, 4.0]])
    hole = np.array([[1.0, 1.0], [3.0, 1.0], [3.0, 3.0], [1.0, 3.0]])
    roi = RoiContours(number=1, name="Ring", color="#ffffff", planes={0.0: [square, hole]})
    axis = np.arange(0.5, 4.0, 1.0)  # centres 0.5 .. 3.5
    mask = rasterize(roi, axis, axis, np.array([0.0]), slice_mm=2.0)[:, :, 0]
    assert mask.sum() == 16 - 4
    assert not mask[1:3, 1:3].any()


def _prism(name: str, polygon: np.ndarray, planes=(0.0, 5.0, 10.0)) -> RoiContours:
    return RoiContours(number=1, name=name, color="#ffffff", planes={z: [polygon] for z in planes})


@pytest.mark.parametrize("winding", [1, -1])
def test_centres_on_contour_edges_and_slice_borders_are_counted_once(winding):
    """A 10 x 10 mm square on three 5 mm slices is 1.5 cc. On a 2.5 mm grid, centres lie on its edges
    and on the borders of its slices, a half slice beyond its first and last planes: each border
    belongs to one side (half-open: x and z from the lower one, y from the upper one, as matplotlib
    takes y), whichever way the contour winds, so the grid counts the true volume instead of an
    extra row, column or plane at both sides."""
    square = np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 10.0], [0.0, 10.0]])[::winding]
    axis = np.arange(-5.0, 15.1, 2.5)  # -5, -2.5, 0, ..., 15: on the edges at 0 and 10
    z = np.arange(-5.0, 15.1, 2.5)  # on the slice borders -2.5, 2.5, 7.5, 12.5
    mask = rasterize(_prism("Box", square), axis, axis, z, slice_mm=5.0)
    volume_mm3 = mask.sum() * 2.5**3
    assert abs(volume_mm3 - 1500.0) < 10.0 * 10.0 * 2.5  # within a voxel layer of the truth (here: exact)
    np.testing.assert_array_equal(axis[mask.any(axis=(1, 2))], [0.0, 2.5, 5.0, 7.5])
    np.testing.assert_array_equal(axis[mask.any(axis=(0, 2))], [2.5, 5.0, 7.5, 10.0])
    np.testing.assert_array_equal(z[mask.any(axis=(0, 1))], [-2.5, 0.0, 2.5, 5.0, 7.5, 10.0])


def test_structures_that_share_an_edge_share_no_voxel_centre():
    """Two halves of a square cut along its diagonal, and two squares side by side: every centre on
    the square is in exactly one of them, whichever edge (straight or diagonal) it lies on."""
    axis = np.arange(-5.0, 25.1, 2.5)
    z = np.array([0.0])
    halves = [np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 10.0]]), np.array([[0.0, 0.0], [10.0, 10.0], [0.0, 10.0]])]
    beside = [np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 10.0], [0.0, 10.0]]),
              np.array([[10.0, 0.0], [20.0, 0.0], [20.0, 10.0], [10.0, 10.0]])]
    for parts, whole in ((halves, np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 10.0], [0.0, 10.0]])),
                         (beside, np.array([[0.0, 0.0], [20.0, 0.0], [20.0, 10.0], [0.0, 10.0]]))):
        masks = [rasterize(_prism("Part", part, (0.0,)), axis, axis, z, slice_mm=5.0) for part in parts]
        assert not (masks[0] & masks[1]).any()
        np.testing.assert_array_equal(masks[0] | masks[1], rasterize(_prism("Whole", whole, (0.0,)), axis, axis, z, 5.0))


# --- malformed input ---------------------------------------------------------------------------
def _study_with(tmp_path, geometry, z_values=None, rois=None, extra_contours=None):
    write_ct_series(tmp_path, geometry, body_hu(geometry), z_values=z_values)
    write_rtstruct(tmp_path / "RS.dcm", geometry, rois or standard_rois(geometry), extra_contours)
    return tmp_path


def test_missing_slice_is_reported_with_its_position(tmp_path):
    geometry = CtGeometry(slices=8)
    z = np.delete(geometry.z(), 4)
    folder = _study_with(tmp_path, geometry, z_values=z)
    with pytest.raises(CaseError, match=r"1 CT slice\(s\) missing between z = -6 mm .* and z = 0 mm"):
        read_dicom_folder(folder)


def test_non_uniform_slice_spacing_is_refused(tmp_path):
    geometry = CtGeometry(slices=6)
    z = geometry.z().copy()
    z[3:] += 1.3
    folder = _study_with(tmp_path, geometry, z_values=z)
    with pytest.raises(CaseError, match="non-uniform CT slice spacing"):
        read_dicom_folder(folder)


def test_slices_a_little_off_uniform_planes_import_on_the_fitted_spacing_with_a_note(tmp_path):
    """Slice positions with a scanner's jitter (0.05 mm on 3 mm slices) were refused as a non-uniform series
    (0.01 mm allowed), and the slice spacing was the first gap alone: placed on uniform slices fitted over the
    series, with a note; a slice a third of a spacing off stays refused."""
    geometry = CtGeometry(slices=8)
    z = geometry.z() + np.array([0.0, 0.05, -0.04, 0.03, 0.0, -0.05, 0.02, 0.0])
    folder = read_dicom_folder(_study_with(tmp_path / "jitter", geometry, z_values=z))
    assert folder.ct.spacing_mm[2] == pytest.approx(3.0)
    assert folder.ct.slice_offset_mm == pytest.approx(0.05, abs=1e-3)
    assert any("CT slices are not exactly evenly spaced: each lies within 0.05 mm of uniform slices of 3 mm" in note
               for note in folder.notes)
    exact = read_dicom_folder(_study_with(tmp_path / "exact", geometry))
    assert not any("evenly spaced" in note for note in exact.notes)
    z = geometry.z().copy()
    z[4] += 1.0
    with pytest.raises(CaseError, match=r"non-uniform CT slice spacing: the slice at z = -2 mm \(CT_004.dcm\) lies 1 mm from "
                                        r"uniform slices of 3 mm, more than 0.3 mm \(10% of the 3 mm spacing\)"):
        read_dicom_folder(_study_with(tmp_path / "off", geometry, z_values=z))


def test_a_contour_on_a_jittered_slice_lies_on_that_slice_not_on_its_fitted_plane(tmp_path):
    """Review R1 F2: a slice 0.25 mm off the uniform planes (accepted) whose contour is written 0.1 mm beyond the
    slice's own z was refused as 'between CT slices', measured from the fitted plane (0.35 mm) and naming a slice
    position (-3 mm) that no file holds; the contour lies on the slice it was drawn on, placed on its plane."""
    geometry = CtGeometry(slices=8)
    z = geometry.z().copy()
    z[4] += 0.25
    write_ct_series(tmp_path, geometry, body_hu(geometry), z_values=z)
    write_rtstruct(tmp_path / "RS.dcm", geometry, standard_rois(geometry))
    structure_set = pydicom.dcmread(tmp_path / "RS.dcm")
    for roi in structure_set.ROIContourSequence:
        for contour in roi.ContourSequence:
            data = [float(value) for value in contour.ContourData]
            if abs(data[2] - geometry.z()[4]) < 1e-6:
                data[2::3] = [z[4] + 0.1] * (len(data) // 3)
            contour.ContourData = data
    structure_set.save_as(tmp_path / "RS.dcm")
    imported = import_dicom(tmp_path, beams=[0], grid_mm=5, beamlet_mm=10, targets=["Target"])
    assert any("placed on it" in note and "(0.1 mm)" in note for note in imported.notes)


def test_contour_outside_the_ct_is_refused(tmp_path):
    geometry = CtGeometry(slices=6)
    far = CircleRoi("Far", 100.0, 0.0, 5.0, 0, 0)
    data = circle_points(far, float(geometry.z()[2]))
    folder = _study_with(tmp_path, geometry, extra_contours={"Target": [data]})
    with pytest.raises(CaseError, match=r"ROI 'Target' has a contour point \(105, 0, -9\) mm outside the CT images"):
        import_dicom(folder, targets=["Target"])


def test_contour_beyond_the_last_slice_is_refused(tmp_path):
    geometry = CtGeometry(slices=6)
    data = circle_points(CircleRoi("X", 0, 0, 5, 0, 0), float(geometry.z()[-1] + 3 * geometry.slice_mm))
    folder = _study_with(tmp_path, geometry, extra_contours={"External": [data]})
    with pytest.raises(CaseError, match="'External' has a contour at z = 9 mm, outside the CT slices"):
        import_dicom(folder, targets=["Target"])


def test_a_structure_set_of_another_frame_of_reference_is_refused(tmp_path):
    geometry = CtGeometry(slices=6)
    folder = _study_with(tmp_path, geometry)
    rs = pydicom.dcmread(folder / "RS.dcm")
    rs.ReferencedFrameOfReferenceSequence[0].FrameOfReferenceUID = "1.2.3.4"
    rs.save_as(folder / "RS.dcm")
    with pytest.raises(CaseError, match="Frame of Reference 1.2.3.4"):
        import_dicom(folder, targets=["Target"])


def test_an_roi_of_another_frame_of_reference_is_refused_without_the_set_wide_sequence(tmp_path):
    """ReferencedFrameOfReferenceSequence is optional; each ROI's ReferencedFrameOfReferenceUID is not."""
    geometry = CtGeometry(slices=6)
    folder = _study_with(tmp_path, geometry)
    rs = pydicom.dcmread(folder / "RS.dcm")
    del rs.ReferencedFrameOfReferenceSequence
    rs.StructureSetROISequence[1].ReferencedFrameOfReferenceUID = "1.2.3.4"
    rs.save_as(folder / "RS.dcm")
    ct_frame = pydicom.dcmread(folder / "CT_000.dcm").FrameOfReferenceUID
    name = rs.StructureSetROISequence[1].ROIName
    with pytest.raises(CaseError, match=rf"RS.dcm: ROI '{name}' is in Frame of Reference 1.2.3.4 .*the CT series is in {ct_frame}"):
        import_dicom(folder, targets=["Target"])


def test_a_folder_without_structure_set_or_target_says_what_is_missing(tmp_path):
    geometry = CtGeometry(slices=4)
    write_ct_series(tmp_path, geometry, body_hu(geometry))
    with pytest.raises(CaseError, match="no RT Structure Set"):
        import_dicom(tmp_path)
    write_rtstruct(tmp_path / "RS.dcm", geometry, standard_rois(geometry)[:1])
    with pytest.raises(CaseError, match="--target"):
        import_dicom(tmp_path)


def test_structures_without_volume_are_listed_not_dropped(tmp_path):
    geometry = CtGeometry(slices=6)
    rois = standard_rois(geometry) + [CircleRoi("Marker", 0, 0, 1, 99, 99)]  # no contour on any slice
    folder = _study_with(tmp_path, geometry, rois=rois)
    result = import_dicom(folder, beams=3, targets=["Target"])
    assert "Marker" not in result.case.structures
    assert any(item.startswith("ROI Marker: no contours") for item in result.not_imported)
    assert "Marker" in result.case.metadata.extra["import.not_imported"]


def test_a_feet_first_ct_keeps_its_position_and_says_the_angles_are_not_a_machines(tmp_path):
    write_study(tmp_path)
    for path in tmp_path.glob("CT_*.dcm"):
        image = pydicom.dcmread(path)
        image.PatientPosition = "FFS"
        image.save_as(path)
    imported = import_dicom(tmp_path, beams=[0], grid_mm=5, beamlet_mm=10, targets=["Target"])
    assert imported.case.metadata.extra["dicom.PatientPosition"] == "FFS"
    assert any("patient position is FFS" in note and "no RT Plan" in note for note in imported.notes)


def _store_flipped(folder: Path, geometry: CtGeometry, orientation: list[int], position: str) -> None:
    """Re-store each CT slice as a scanner does for a prone or feet-first patient: pixels in the
    orientation's order, ImagePositionPatient at the first stored pixel's centre."""
    flip_x, flip_y = orientation[0] < 0, orientation[4] < 0
    for path in folder.glob("CT_*.dcm"):
        image = pydicom.dcmread(path)
        pixels = image.pixel_array  # rows along y, columns along x
        image.PixelData = np.ascontiguousarray(pixels[:: -1 if flip_y else 1, :: -1 if flip_x else 1]).tobytes()
        image.ImagePositionPatient = [
            float(geometry.x()[-1 if flip_x else 0]), float(geometry.y()[-1 if flip_y else 0]), image.ImagePositionPatient[2]
        ]
        image.ImageOrientationPatient = orientation
        image.PatientPosition = position
        image.save_as(path)


@pytest.mark.parametrize("position, orientation", [("HFP", [-1, 0, 0, 0, -1, 0]), ("FFS", [-1, 0, 0, 0, 1, 0])])
def test_a_prone_or_feet_first_ct_is_read_in_patient_coordinates(tmp_path, position, orientation):
    """The same patient stored flipped gives the grid, densities and structures of its head-first supine images."""
    write_study(tmp_path / "supine")
    geometry, _ = write_study(tmp_path / "flipped")
    _store_flipped(tmp_path / "flipped", geometry, orientation, position)
    options = dict(beams=[0], grid_mm=5, beamlet_mm=10, targets=["Target"])
    supine, flipped = (import_dicom(tmp_path / name, **options) for name in ("supine", "flipped"))
    assert flipped.case.grid == supine.case.grid
    np.testing.assert_allclose(flipped.case.density, supine.case.density, atol=1e-6)
    for name, structure in supine.case.structures.items():
        assert np.array_equal(flipped.case.structures[name].mask, structure.mask), name
    assert any(f"patient position is {position}" in note for note in flipped.notes)


def test_a_ct_turned_in_its_plane_is_refused_with_the_reason(tmp_path):
    write_study(tmp_path)
    path = sorted(tmp_path.glob("CT_*.dcm"))[0]
    image = pydicom.dcmread(path)
    image.ImageOrientationPatient = [0, 1, 0, 1, 0, 0]
    image.save_as(path)
    with pytest.raises(CaseError, match=rf"{path.name}: ImageOrientationPatient .*: the rows run along y, not x"):
        read_dicom_folder(tmp_path)



@pytest.mark.parametrize("orientation, lengths", [([0, 0, 0, 0, 0, 0], "0 and 0"), ([2, 0, 0, 0, 1, 0], "2 and 1")])
def test_a_ct_orientation_that_is_not_unit_vectors_is_not_a_valid_orientation(tmp_path, orientation, lengths):
    """An all-zero ImageOrientationPatient was said to 'run along x' (its largest component, the first), the RT
    Dose import's old wording (audit a2 F14); it is refused as no orientation, by the same check as an RT Dose."""
    write_study(tmp_path)
    path = sorted(tmp_path.glob("CT_*.dcm"))[0]
    image = pydicom.dcmread(path)
    image.ImageOrientationPatient = orientation
    image.save_as(path)
    with pytest.raises(CaseError, match=rf"{path.name}: ImageOrientationPatient \[.*\] is not a valid orientation: "
                                        rf"the row and column direction cosines must be unit vectors, their lengths "
                                        rf"are {lengths}") as error:
        read_dicom_folder(tmp_path)
    assert "run along" not in str(error.value)

def test_a_compressed_ct_that_cannot_be_decoded_says_what_to_install(tmp_path):
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGLosslessSV1

    write_study(tmp_path)
    path = sorted(tmp_path.glob("CT_*.dcm"))[0]
    image = pydicom.dcmread(path)
    image.file_meta.TransferSyntaxUID = JPEGLosslessSV1
    image.PixelData = encapsulate([b"\xff\xd8\xff\xc3 not a real JPEG \xff\xd9"])
    image["PixelData"].VR = "OB"
    image.save_as(path, enforce_file_format=True)
    with pytest.raises(CaseError, match=rf"(?s){path.name}: cannot decode the CT pixel data .*it is compressed \(JPEG Lossless.*install a decoder"):
        import_dicom(tmp_path, beams=[0], grid_mm=5, beamlet_mm=10, targets=["Target"])
