"""Small DICOM CT + RTSTRUCT folders written with pydicom, for the importer and exporter tests.

The geometry is analytic (ellipse body, circular ROIs on a range of slices), so a test can
state what the importer must find without reading the importer's own output.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRLittleEndian,
    RTDoseStorage,
    RTPlanStorage,
    RTStructureSetStorage,
    generate_uid,
)

FRAME_OF_REFERENCE = generate_uid()
STUDY = generate_uid()
PATIENT_ID = "SPECC-TEST-001"


@dataclass
class CircleRoi:
    """A cylinder: circle of `radius_mm` around (cx, cy) on the slices with z in [z_low, z_high]."""

    name: str
    cx: float
    cy: float
    radius_mm: float
    z_low: float
    z_high: float
    color: tuple[int, int, int] = (255, 0, 0)


@dataclass
class CtGeometry:
    columns: int = 40
    rows: int = 36
    slices: int = 12
    pixel_mm: float = 2.5
    slice_mm: float = 3.0
    origin: tuple[float, float, float] = (-50.0, -45.0, -15.0)

    def x(self) -> np.ndarray:
        return self.origin[0] + self.pixel_mm * np.arange(self.columns)

    def y(self) -> np.ndarray:
        return self.origin[1] + self.pixel_mm * np.arange(self.rows)

    def z(self) -> np.ndarray:
        return self.origin[2] + self.slice_mm * np.arange(self.slices)


def _file_dataset(path: Path, sop_class: str) -> FileDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientID = PATIENT_ID
    ds.PatientName = "Specc^Test"
    ds.StudyInstanceUID = STUDY
    ds.StudyID = "1"
    ds.FrameOfReferenceUID = FRAME_OF_REFERENCE
    return ds


def body_hu(geometry: CtGeometry, semi_axes_mm: tuple[float, float] = (42.0, 36.0)) -> np.ndarray:
    """Water ellipse (0 HU) in air (-1000 HU), with a lung-like (-700 HU) disc; shape (x, y, z)."""
    gx, gy = np.meshgrid(geometry.x(), geometry.y(), indexing="ij")
    inside = (gx / semi_axes_mm[0]) ** 2 + (gy / semi_axes_mm[1]) ** 2 <= 1.0
    lung = (gx + 25.0) ** 2 + gy**2 <= 8.0**2
    plane = np.where(inside, 0.0, -1000.0)
    plane[lung & inside] = -700.0
    return np.repeat(plane[:, :, None], geometry.slices, axis=2)


def write_ct_series(folder: Path, geometry: CtGeometry, hu: np.ndarray, z_values: np.ndarray | None = None) -> list[Path]:
    """One file per slice; `z_values` overrides the slice positions (to build broken series)."""
    folder.mkdir(parents=True, exist_ok=True)
    series = generate_uid()
    z_values = geometry.z() if z_values is None else z_values
    paths = []
    for k, z in enumerate(z_values):
        path = folder / f"CT_{k:03d}.dcm"
        ds = _file_dataset(path, CTImageStorage)
        ds.Modality = "CT"
        ds.SeriesInstanceUID = series
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [geometry.origin[0], geometry.origin[1], float(z)]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [geometry.pixel_mm, geometry.pixel_mm]
        ds.SliceThickness = geometry.slice_mm
        ds.Rows, ds.Columns = geometry.rows, geometry.columns
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 0
        ds.RescaleSlope = 1
        ds.RescaleIntercept = -1024
        stored = np.round(hu[:, :, min(k, hu.shape[2] - 1)].T + 1024).astype(np.uint16)  # rows = y
        ds.PixelData = stored.tobytes()
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def circle_points(roi: CircleRoi, z: float, vertices: int = 64) -> list[float]:
    angles = np.linspace(0, 2 * np.pi, vertices, endpoint=False)
    points = np.column_stack([roi.cx + roi.radius_mm * np.cos(angles), roi.cy + roi.radius_mm * np.sin(angles), np.full(vertices, z)])
    return [round(float(v), 4) for v in points.ravel()]


def write_rtstruct(path: Path, geometry: CtGeometry, rois: list[CircleRoi], extra_contours: dict[str, list[list[float]]] | None = None) -> Path:
    """An RTSTRUCT with one CLOSED_PLANAR circle per CT slice inside each ROI's z range."""
    ds = _file_dataset(path, RTStructureSetStorage)
    ds.Modality = "RTSTRUCT"
    ds.SeriesInstanceUID = generate_uid()
    ds.StructureSetLabel = "test"
    frame = Dataset()
    frame.FrameOfReferenceUID = FRAME_OF_REFERENCE
    ds.ReferencedFrameOfReferenceSequence = Sequence([frame])
    ds.StructureSetROISequence = Sequence()
    ds.ROIContourSequence = Sequence()
    ds.RTROIObservationsSequence = Sequence()
    for number, roi in enumerate(rois, start=1):
        item = Dataset()
        item.ROINumber = number
        item.ReferencedFrameOfReferenceUID = FRAME_OF_REFERENCE
        item.ROIName = roi.name
        item.ROIGenerationAlgorithm = "MANUAL"
        ds.StructureSetROISequence.append(item)
        contours = Sequence()
        for z in geometry.z():
            if roi.z_low - 1e-6 <= z <= roi.z_high + 1e-6:
                contours.append(_contour(circle_points(roi, float(z))))
        for data in (extra_contours or {}).get(roi.name, []):
            contours.append(_contour(data))
        roi_contour = Dataset()
        roi_contour.ReferencedROINumber = number
        roi_contour.ROIDisplayColor = list(roi.color)
        roi_contour.ContourSequence = contours
        ds.ROIContourSequence.append(roi_contour)
        observation = Dataset()
        observation.ObservationNumber = number
        observation.ReferencedROINumber = number
        observation.RTROIInterpretedType = "ORGAN"
        observation.ROIInterpreter = ""
        ds.RTROIObservationsSequence.append(observation)
    ds.save_as(path, enforce_file_format=True)
    return path


def _contour(data: list[float]) -> Dataset:
    contour = Dataset()
    contour.ContourGeometricType = "CLOSED_PLANAR"
    contour.NumberOfContourPoints = len(data) // 3
    contour.ContourData = data
    return contour


def standard_rois(geometry: CtGeometry) -> list[CircleRoi]:
    """Body, a target and an organ at risk that together span most of the series."""
    z = geometry.z()
    return [
        CircleRoi("External", 0.0, 0.0, 34.0, z[0], z[-1], (0, 255, 0)),
        CircleRoi("Target", 5.0, 3.0, 12.0, z[2], z[-3], (255, 0, 0)),
        CircleRoi("Spinal Cord", 5.0, 24.0, 5.0, z[0], z[-1], (255, 255, 0)),
    ]


def write_study(folder: Path, geometry: CtGeometry | None = None) -> tuple[CtGeometry, list[CircleRoi]]:
    geometry = geometry or CtGeometry()
    rois = standard_rois(geometry)
    write_ct_series(folder, geometry, body_hu(geometry))
    write_rtstruct(folder / "RS.dcm", geometry, rois)
    return geometry, rois


def write_c_shape_study(folder: Path) -> list[CircleRoi]:
    """A DICOM study a TG-119 C-shape protocol plans (External, PTV, Core): CT and RTSTRUCT, 8 slices."""
    geometry = CtGeometry(slices=8)
    z = geometry.z()
    rois = [
        CircleRoi("External", 0.0, 0.0, 34.0, z[0], z[-1], (0, 255, 0)),
        CircleRoi("PTV", 0.0, 0.0, 14.0, z[1], z[-2], (255, 0, 0)),
        CircleRoi("Core", 0.0, 22.0, 5.0, z[0], z[-1], (0, 0, 255)),
    ]
    write_ct_series(folder, geometry, body_hu(geometry))
    write_rtstruct(folder / "RS.dcm", geometry, rois)
    return rois


# --- matRad workspaces -----------------------------------------------------------------------
def matrad_workspace(with_stf: bool = True, objectives: str | None = None, organs: bool = False) -> dict:
    """A small matRad workspace: CT 10 x 8 x 6 voxels of 2 mm, dose grid of 4 mm, 2 beams.

    dij.physicalDose{1} entry for dose voxel (ix, iy, iz) and bixel b is
    (1 + ix + 10 iy + 100 iz) * (b + 1) / 1000, so a test can check the voxel order from
    the coordinates alone. PTV is the CT box x in [-6, 6), y in [-4, 4), z in [-2, 4) mm.
    `objectives` ("current" or "old"): cst{i,6} filled by `matrad_objectives` in that format,
    a third, IGNORED structure (Couch) and a pln with 30 fractions; cst{i,5}.Priority is the
    row number (PTV 1, Body 2, Couch 3), so Body's functions lose the PTV's voxels in matRad.
    `organs` (with `objectives`) adds three OARs and sets the priorities as matRad's examples
    do (PTV 1, organs 2, Body 4, Couch 5): Rectum (x >= 2 mm: shares voxels with the PTV and,
    on the dose grid too, with Bladder wall), "Bladder wall" (x <= 4, y >= 3 mm: shares CT voxels
    with the PTV at y = 3 mm, none on the dose grid), both of priority 2 with objectives, and
    Marker (x <= -7 mm, priority 1, no objectives: it takes no voxel from Body in matRad).
    """
    import scipy.sparse as sp

    ct_dims = (8, 10, 6)  # [Ny Nx Nz]
    res = 2.0
    ct_x = -9.0 + res * np.arange(10)
    ct_y = -7.0 + res * np.arange(8)
    ct_z = -5.0 + res * np.arange(6)
    dose_x = ct_x[::2] + 0.5  # 4 mm grid; every dose centre has one nearest CT centre
    dose_y = ct_y[::2] + 0.5
    dose_z = ct_z[::2] + 0.5
    dose_dims = (len(dose_y), len(dose_x), len(dose_z))

    gx, gy, gz = np.meshgrid(ct_x, ct_y, ct_z, indexing="xy")  # arrays shaped [y, x, z]
    ptv = (gx >= -6) & (gx < 6) & (gy >= -4) & (gy < 4) & (gz >= -2) & (gz < 4)
    body = np.ones(ct_dims, dtype=bool)
    def indices(mask):
        return (np.flatnonzero(mask.ravel(order="F")) + 1).astype(np.float64).reshape(-1, 1)

    ptv_idx, body_idx = indices(ptv), indices(body)

    n_bixels = 6
    n_dose = int(np.prod(dose_dims))
    iy, ix, iz = np.unravel_index(np.arange(n_dose), dose_dims, order="F")
    base = (1 + ix + 10 * iy + 100 * iz) / 1000.0
    dense = base[:, None] * (np.arange(n_bixels) + 1)[None, :]
    dense[iz == 0, :] = 0.0  # an empty slab: those rows have no dose
    physical = sp.csc_matrix(dense)

    def cell(*items):
        c = np.empty((1, len(items)), dtype=object)
        for i, item in enumerate(items):
            c[0, i] = item
        return c

    rows = [("PTV", "TARGET", ptv_idx, [1.0, 0.0, 0.0], 1), ("Body", "OAR", body_idx, [0.0, 1.0, 0.0], 2)]
    if objectives is not None:
        rows.append(("Couch", "IGNORED", body_idx, [0.0, 0.0, 1.0], 3))
    if organs:
        rows[1:3] = [(*row[:4], priority) for row, priority in zip(rows[1:3], (4, 5))]
        rows += [
            ("Rectum", "OAR", indices(gx >= 2), [0.5, 0.25, 0.0], 2),
            ("Bladder wall", "OAR", indices((gx <= 4) & (gy >= 3)), [1.0, 1.0, 0.0], 2),
            ("Marker", "OAR", indices(gx <= -7), [0.5, 0.5, 0.5], 1),
        ]
    cst = np.empty((len(rows), 6), dtype=object)
    for row, (name, kind, idx, color, priority) in enumerate(rows):
        cst[row, 0] = float(row)
        cst[row, 1] = name
        cst[row, 2] = kind
        cst[row, 3] = cell(idx)
        cst[row, 4] = {"Priority": float(priority), "visibleColor": np.array([color])}
        cst[row, 5] = cell() if objectives is None else matrad_objectives(objectives)[name]
    ct = {
        "cubeDim": np.array([ct_dims], dtype=np.float64),
        "resolution": {"x": res, "y": res, "z": res},
        "x": ct_x[None, :], "y": ct_y[None, :], "z": ct_z[None, :],
        "numOfCtScen": 1.0,
        "cube": cell(np.ones(ct_dims)),
    }
    dij = {
        "doseGrid": {"dimensions": np.array([dose_dims], dtype=np.float64),
                     "resolution": {"x": 4.0, "y": 4.0, "z": 4.0},
                     "x": dose_x[None, :], "y": dose_y[None, :], "z": dose_z[None, :]},
        "physicalDose": cell(physical),
        "numOfBeams": 2.0,
        "totalNumOfBixels": float(n_bixels),
        "beamNum": np.array([[1, 1, 1, 2, 2, 2]], dtype=np.float64).T,
        "rayNum": np.array([[1, 2, 3, 1, 2, 3]], dtype=np.float64).T,
        "bixelNum": np.ones((n_bixels, 1)),
        "numOfFractions": 30.0,
    }
    workspace = {"ct": ct, "cst": cst, "dij": dij}
    if objectives is not None:
        workspace["pln"] = {"numOfFractions": 30.0, "propOpt": {"quantityOpt": "physicalDose"}}
    if with_stf:
        workspace["stf"] = [
            {"gantryAngle": float(g), "couchAngle": 0.0, "bixelWidth": 5.0, "radiationMode": "photons",
             "SAD": 1000.0, "isoCenter": np.array([[0.0, 0.0, 1.0]]), "numOfRays": 3.0,
             "ray": [{"rayPos_bev": np.array([[x, 0.0, 2.5]]), "energy": 6.0} for x in (-5.0, 0.0, 5.0)]}
            for g in (0.0, 180.0)
        ]
    return workspace


def matrad_objectives(form: str) -> dict[str, object]:
    """cst{i,6} of PTV, Body, Couch and the organs in matRad's current form (a cell column of `struct(obj)`: className,
    parameters, penalty, robustness) or its old one (matRad <= 2.1: a struct array with type, dose, volume,
    EUD, penalty; unused fields NaN). Both state the same plan where the old types can, and each has its own
    untranslatable functions: current a non-convex EUD constraint and an LET objective, old an exact DVH
    constraint and a non-convex max EUD constraint; one Body objective carries a robustness setting.
    A plan exists: PTV dose between 25 and 80 Gy, Body V60Gy <= 40% and mean <= 50 Gy can hold together.
    """
    if form == "current":
        def objective(name, parameters, penalty, robustness="none"):
            return {"className": name, "parameters": _cell_row(parameters), "penalty": float(penalty),
                    "robustness": robustness}

        def constraint(name, parameters):
            return {"className": name, "parameters": _cell_row(parameters), "robustness": "none"}

        functions = {
            "PTV": [
                objective("DoseObjectives.matRad_SquaredDeviation", [60.0], 800),
                objective("DoseObjectives.matRad_MinDVH", [57.0, 95.0], 100),
                objective("DoseObjectives.matRad_EUD", [60.0, -10.0], 10),
                constraint("DoseConstraints.matRad_MinMaxDose", [25.0, 80.0, 1.0]),
            ],
            "Body": [
                objective("DoseObjectives.matRad_SquaredOverdosing", [30.0], 300, robustness="STOCH"),
                objective("DoseObjectives.matRad_MaxDVH", [40.0, 30.0], 50),
                objective("DoseObjectives.matRad_MeanDose", [0.0, 1.0], 1),
                objective("DoseObjectives.matRad_EUD", [0.0, 3.5], 1),
                constraint("DoseConstraints.matRad_MinMaxMeanDose", [0.0, 50.0]),
                constraint("DoseConstraints.matRad_MinMaxDVH", [60.0, 0.0, 40.0]),
                constraint("DoseConstraints.matRad_MinMaxEUD", [0.5, 0.0, 40.0]),
                objective("LETdObjectives.matRad_SquaredOverdosingLETd", [5.0], 1),
            ],
            "Couch": [objective("DoseObjectives.matRad_SquaredOverdosing", [10.0], 1)],
            "Rectum": [objective("DoseObjectives.matRad_SquaredOverdosing", [45.0], 30),
                       objective("DoseObjectives.matRad_MaxDVH", [50.0, 20.0], 10)],
            "Bladder wall": [objective("DoseObjectives.matRad_SquaredOverdosing", [45.0], 30)],
        }
        cells = {name: _cell_column(items) for name, items in functions.items()}
        return {**cells, "Marker": np.empty((0, 0), dtype=object)}

    def old(kind, dose, penalty=np.nan, volume=np.nan, eud=np.nan, robustness="none"):
        return {"type": kind, "dose": float(dose), "penalty": float(penalty), "EUD": float(eud),
                "volume": float(volume), "robustness": robustness}

    return {
        "PTV": [
            old("square deviation", 60, penalty=800),
            old("min DVH objective", 57, penalty=100, volume=95),
            old("EUD", 60, penalty=10, eud=-10),
            old("min dose constraint", 25),
            old("max dose constraint", 80),
            old("exact DVH constraint", 60, volume=50),
        ],
        "Body": [
            old("square overdosing", 30, penalty=300, robustness="COWC"),
            old("max DVH objective", 40, penalty=50, volume=30),
            old("mean", 0, penalty=1),
            old("EUD", 0, penalty=1, eud=3.5),
            old("max mean dose constraint", 50),
            old("max DVH constraint", 60, volume=40),
            old("max EUD constraint", 40, eud=0.5),
        ],
        "Couch": [old("square overdosing", 10, penalty=1)],
        "Rectum": [old("square overdosing", 45, penalty=30), old("max DVH objective", 50, penalty=10, volume=20)],
        "Bladder wall": [old("square overdosing", 45, penalty=30)],
        "Marker": np.zeros((0, 0)),
    }


def _cell_row(items) -> np.ndarray:
    cell = np.empty((1, len(items)), dtype=object)
    for i, item in enumerate(items):
        cell[0, i] = item
    return cell


def _cell_column(items) -> np.ndarray:
    cell = np.empty((len(items), 1), dtype=object)
    for i, item in enumerate(items):
        cell[i, 0] = item
    return cell


def _to_scipy(value):
    """Turn lists of dicts into MATLAB struct arrays for scipy.io.savemat."""
    if isinstance(value, dict):
        return {k: _to_scipy(v) for k, v in value.items()}
    if isinstance(value, list):
        names = list(value[0])
        array = np.empty((1, len(value)), dtype=[(n, object) for n in names])
        for i, item in enumerate(value):
            for n in names:
                array[0, i][n] = _to_scipy(item[n])
        return array
    if isinstance(value, np.ndarray) and value.dtype == object:
        out = np.empty(value.shape, dtype=object)
        for index in np.ndindex(value.shape):
            out[index] = _to_scipy(value[index])
        return out
    return value


def save_matrad_v5(path: Path, workspace: dict) -> Path:
    import scipy.io

    scipy.io.savemat(path, {k: _to_scipy(v) for k, v in workspace.items()}, format="5", oned_as="row")
    return path


def save_matrad_v73(path: Path, workspace: dict) -> Path:
    """MATLAB v7.3 layout (HDF5): arrays transposed, cells and struct arrays as references."""
    import h5py
    import scipy.sparse as sp

    with h5py.File(path, "w") as f:
        refs = f.create_group("#refs#")
        counter = [0]

        def new_name() -> str:
            counter[0] += 1
            return f"r{counter[0]}"

        def write(group, name, value):
            if isinstance(value, dict):
                sub = group.create_group(name)
                sub.attrs["MATLAB_class"] = np.bytes_("struct")
                for key, item in value.items():
                    write(sub, key, item)
            elif isinstance(value, list):  # struct array: each field a dataset of references
                sub = group.create_group(name)
                sub.attrs["MATLAB_class"] = np.bytes_("struct")
                for key in value[0]:
                    targets = []
                    for item in value:
                        ref_name = new_name()
                        write(refs, ref_name, item[key])
                        targets.append(refs[ref_name].ref)
                    sub.create_dataset(key, data=np.array(targets, dtype=h5py.ref_dtype).reshape(len(value), 1))
            elif isinstance(value, str):
                ds = group.create_dataset(name, data=np.array([ord(c) for c in value], dtype=np.uint16).reshape(-1, 1))
                ds.attrs["MATLAB_class"] = np.bytes_("char")
            elif sp.issparse(value):
                csc = sp.csc_matrix(value)
                sub = group.create_group(name)
                sub.attrs["MATLAB_class"] = np.bytes_("double")
                sub.attrs["MATLAB_sparse"] = np.uint64(csc.shape[0])
                sub.create_dataset("data", data=csc.data)
                sub.create_dataset("ir", data=csc.indices.astype(np.uint64))
                sub.create_dataset("jc", data=csc.indptr.astype(np.uint64))
            elif isinstance(value, np.ndarray) and value.dtype == object:
                targets = np.empty(value.shape, dtype=h5py.ref_dtype)
                for index in np.ndindex(value.shape):
                    ref_name = new_name()
                    write(refs, ref_name, value[index])
                    targets[index] = refs[ref_name].ref
                ds = group.create_dataset(name, data=targets.T)
                ds.attrs["MATLAB_class"] = np.bytes_("cell")
            else:
                array = np.atleast_2d(np.asarray(value, dtype=np.float64))
                ds = group.create_dataset(name, data=array.T)
                ds.attrs["MATLAB_class"] = np.bytes_("double")

        for key, value in workspace.items():
            write(f, key, value)
    return path


def dicompyler_dvhcalc():
    """dicompyler-core's dvhcalc; 0.5.6 imports `read_file`, which pydicom 3 renamed `dcmread`."""
    import pydicom
    import pydicom.dicomio

    if not hasattr(pydicom.dicomio, "read_file"):
        pydicom.dicomio.read_file = pydicom.dcmread
    from dicompylercore import dvhcalc

    return dvhcalc


# --- PortPy folders ------------------------------------------------------------------------------
def write_portpy_folder(folder: Path, *, with_coordinates: bool = False) -> dict:
    """A PortPy patient: CT 8 x 6 x 4 voxels (x, y, z) of 2 mm, dose voxels of 2 x 2 x 1 CT voxels.

    The CT column x index 7 lies outside the calculation box. Dose voxel numbers run in a
    shuffled order so the importer must use the map. Influence of dose voxel centred at
    (x, y, z) mm for beamlet b of beam k is (1000 + x + 10 y + 100 z) * (b + 1) * (k + 1) / 1e4.
    Returns the expected facts a test checks against.
    """
    import json

    import h5py

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "Beams").mkdir(exist_ok=True)
    nx, ny, nz = 8, 6, 4
    spacing = np.array([2.0, 2.0, 2.0])
    origin = np.array([-7.0, -5.0, -3.0])
    hu = np.zeros((nz, ny, nx), dtype=np.float32)
    hu[:, :, 0] = -1000.0

    block = np.full((nz, ny, nx), -1, dtype=np.int64)
    blocks = [(bx, by, z) for bx in range(3) for by in range(3) for z in range(nz)]  # x blocks 0..2 cover CT x 0..5
    # plus block bx=3 covering CT x 6 only (x 7 outside the box)
    blocks += [(3, by, z) for by in range(3) for z in range(nz)]
    rng = np.random.default_rng(0)
    numbers = rng.permutation(len(blocks))
    centres = np.zeros((len(blocks), 3))
    for number, (bx, by, z) in zip(numbers, blocks):
        xs = [2 * bx, 2 * bx + 1] if bx < 3 else [6]
        for x in xs:
            block[z, 2 * by : 2 * by + 2, x] = number
        centres[number] = [origin[0] + spacing[0] * (2 * bx + 0.5), origin[1] + spacing[1] * (2 * by + 0.5), origin[2] + spacing[2] * z]
    ptv = np.zeros((nz, ny, nx), dtype=np.uint8)
    ptv[1:3, 2:4, 2:5] = 1  # x 2..4: block 1 fully (x 2, 3), block 2 half (x 4)
    body = np.ones((nz, ny, nx), dtype=np.uint8)

    with h5py.File(folder / "CT_Data.h5", "w") as f:
        f.create_dataset("ct_hu_3d", data=hu)
    (folder / "CT_MetaData.json").write_text(json.dumps({
        "resolution_xyz_mm": spacing.tolist(), "origin_xyz_mm": origin.tolist(), "size_xyz": [nx, ny, nz],
        "ct_hu_3d_File": "CT_Data.h5/ct_hu_3d"}))
    with h5py.File(folder / "StructureSet_Data.h5", "w") as f:
        f.create_dataset("PTV", data=ptv)
        f.create_dataset("BODY", data=body)
    (folder / "StructureSet_MetaData.json").write_text(json.dumps([
        {"name": "PTV", "volume_cc": float(ptv.sum() * 8e-3), "structure_mask_3d_File": "StructureSet_Data.h5/PTV"},
        {"name": "BODY", "volume_cc": float(body.sum() * 8e-3), "structure_mask_3d_File": "StructureSet_Data.h5/BODY"},
    ]))
    with h5py.File(folder / "OptimizationVoxels_Data.h5", "w") as f:
        f.create_dataset("ct_to_dose_voxel_map", data=block)
        f.create_dataset("voxel_coordinate_XYZ_mm", data=centres)
    voxel_meta = {"ct_voxel_resolution_xyz_mm": spacing.tolist(), "dose_voxel_resolution_xyz_mm": [4.0, 4.0, 2.0],
                  "ct_origin_xyz_mm": origin.tolist(), "ct_to_dose_voxel_map_File": "OptimizationVoxels_Data.h5/ct_to_dose_voxel_map"}
    if with_coordinates:
        voxel_meta["voxel_coordinate_XYZ_mm_File"] = "OptimizationVoxels_Data.h5/voxel_coordinate_XYZ_mm"
    (folder / "OptimizationVoxels_MetaData.json").write_text(json.dumps(voxel_meta))

    ids = [0, 1]
    for k in ids:
        n_beamlets = 4
        rows = np.repeat(np.arange(len(blocks)), n_beamlets)
        cols = np.tile(np.arange(n_beamlets), len(blocks))
        c = centres[rows]
        values = (1000 + c[:, 0] + 10 * c[:, 1] + 100 * c[:, 2]) * (cols + 1) * (k + 1) / 1e4
        with h5py.File(folder / "Beams" / f"Beam_{k}_Data.h5", "w") as f:
            f.create_dataset("inf_matrix_sparse", data=np.column_stack([rows, cols, values]).astype(np.float64))
            f.create_dataset("beamlets/id", data=np.arange(n_beamlets))
            f.create_dataset("beamlets/position_x_mm", data=np.array([-3.75, -1.25, 1.25, 3.75]))
            f.create_dataset("beamlets/position_y_mm", data=np.zeros(n_beamlets))
            f.create_dataset("beamlets/width_mm", data=np.full(n_beamlets, 2.5))
            f.create_dataset("beamlets/height_mm", data=np.full(n_beamlets, 2.5))
        name = f"Beam_{k}_Data.h5"
        (folder / "Beams" / f"Beam_{k}_MetaData.json").write_text(json.dumps({
            "ID": k, "gantry_angle": 90.0 * k, "collimator_angle": 0.0, "couch_angle": 0.0, "energy_MV": "6",
            "iso_center": {"x_mm": 1.0, "y_mm": 2.0, "z_mm": 3.0}, "SAD_mm": 1000.0,
            "beamlets": {"id_File": f"{name}/beamlets/id", "position_x_mm_File": f"{name}/beamlets/position_x_mm",
                         "position_y_mm_File": f"{name}/beamlets/position_y_mm", "width_mm_File": f"{name}/beamlets/width_mm",
                         "height_mm_File": f"{name}/beamlets/height_mm"},
            "influenceMatrixSparse_File": f"{name}/inf_matrix_sparse", "influenceMatrixSparse_tol": 0.0}))
    (folder / "PlannerBeams.json").write_text(json.dumps({"IDs": ids}))
    return {"outside_cc": float(body[:, :, 7].sum() * 8e-3)}


# --- a hand-made case ----------------------------------------------------------------------------
def small_case(extra: dict[str, str] | None = None):
    """A 4 x 3 x 2 case with one structure and two beamlets, its matrix written out by hand."""
    import scipy.sparse as sp

    from specc.case import Beam, Beamlets, Case, CaseMetadata, Grid, Structure

    grid = Grid(shape=(4, 3, 2), spacing_mm=(2.0, 3.0, 4.0), origin_mm=(-3.0, -1.5, 10.0))
    mask = np.zeros(grid.shape, dtype=bool)
    mask[1:3, :, :] = True
    rows = np.flatnonzero(mask.ravel())
    influence = sp.csr_matrix(np.arange(1, len(rows) * 2 + 1, dtype=np.float32).reshape(len(rows), 2) / 100)
    return Case(
        case_id="tiny",
        grid=grid,
        voxel_indices=rows,
        influence=influence,
        beams=[Beam(id=1, gantry_deg=0.0)],
        beamlets=Beamlets(beam_id=[1, 1], x_mm=[-2.5, 2.5], y_mm=[0.0, 0.0], width_mm=[5.0, 5.0], height_mm=[5.0, 5.0]),
        structures={"Target": Structure("Target", mask)},
        metadata=CaseMetadata(source="test", dose_engine="none", extra=extra or {}),
    )


# --- plans from other systems: RT Dose and RT Plan ---------------------------------------------
def write_rtdose_file(
    path: Path,
    dose_gy: np.ndarray,
    origin: tuple[float, float, float],
    spacing: tuple[float, float, float],
    *,
    summation: str = "PLAN",
    units: str = "GY",
    prone: bool = False,
    absolute_offsets: bool = False,
    plan_uid: str | None = None,
    frame_uid: str | None = None,
    manufacturer: str = "OtherTPS",
    beam_number: int | None = None,
) -> Path:
    """`dose_gy` indexed [x, y, z] (LPS voxel centres from `origin`) as an RT Dose as a TPS writes it.

    `prone`: stored head-first prone (rows along -x, columns along -y), the first pixel at the
    highest x and y; `absolute_offsets`: GridFrameOffsetVector as z positions (the older form);
    `beam_number`: the plan's beam this dose is of (a BEAM dose), in the plan reference.
    """
    ds = _file_dataset(path, RTDoseStorage)
    ds.Modality = "RTDOSE"
    ds.Manufacturer = manufacturer
    ds.SeriesInstanceUID = generate_uid()
    if frame_uid is not None:
        ds.FrameOfReferenceUID = frame_uid
    values = np.asarray(dose_gy, dtype=np.float64)
    nx, ny, nz = values.shape
    x0, y0, z0 = origin
    if prone:
        values = values[::-1, ::-1, :]
        x0, y0 = x0 + (nx - 1) * spacing[0], y0 + (ny - 1) * spacing[1]
        ds.ImageOrientationPatient = [-1, 0, 0, 0, -1, 0]
    else:
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.ImagePositionPatient = [x0, y0, z0]
    ds.PixelSpacing = [spacing[1], spacing[0]]
    ds.Rows, ds.Columns, ds.NumberOfFrames = ny, nx, nz
    offsets = [k * spacing[2] for k in range(nz)]
    ds.GridFrameOffsetVector = [z0 + offset for offset in offsets] if absolute_offsets else offsets
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 32
    ds.HighBit = 31
    ds.PixelRepresentation = 0
    ds.DoseUnits = units
    ds.DoseType = "PHYSICAL"
    ds.DoseSummationType = summation
    scaling = max(float(values.max()), 1e-9) / 4e9
    ds.DoseGridScaling = f"{scaling:.9e}"
    stored = np.rint(np.transpose(values, (2, 1, 0)) / float(f"{scaling:.9e}"))
    ds.PixelData = stored.astype("<u4").tobytes()
    if plan_uid is not None:
        reference = Dataset()
        reference.ReferencedSOPClassUID = RTPlanStorage
        reference.ReferencedSOPInstanceUID = plan_uid
        if beam_number is not None:
            beam, group = Dataset(), Dataset()
            beam.ReferencedBeamNumber = beam_number
            group.ReferencedFractionGroupNumber = 1
            group.ReferencedBeamSequence = Sequence([beam])
            reference.ReferencedFractionGroupSequence = Sequence([group])
        ds.ReferencedRTPlanSequence = Sequence([reference])
    ds.save_as(path, enforce_file_format=True)
    return path


def write_rtplan(
    path: Path, fractions: int, label: str = "Plan1", approval: str = "APPROVED",
    isocentre: tuple[float, float, float] | None = None, beams: tuple[int, ...] = (),
) -> str:
    """A minimal RT Plan with one fraction group delivering `beams` (and two beams at `isocentre`);
    returns its SOPInstanceUID."""
    ds = _file_dataset(path, RTPlanStorage)
    ds.Modality = "RTPLAN"
    ds.SeriesInstanceUID = generate_uid()
    ds.RTPlanLabel = label
    ds.ApprovalStatus = approval
    group = Dataset()
    group.FractionGroupNumber = 1
    group.NumberOfFractionsPlanned = fractions
    if beams:
        group.NumberOfBeams = len(beams)
        group.ReferencedBeamSequence = Sequence()
        for number in beams:
            item = Dataset()
            item.ReferencedBeamNumber = number
            group.ReferencedBeamSequence.append(item)
    ds.FractionGroupSequence = Sequence([group])
    if isocentre is not None:
        ds.BeamSequence = Sequence()
        for number, gantry in ((1, 0.0), (2, 180.0)):
            point = Dataset()
            point.ControlPointIndex = 0
            point.GantryAngle = gantry
            point.IsocenterPosition = list(isocentre)
            beam = Dataset()
            beam.BeamNumber = number
            beam.ControlPointSequence = Sequence([point])
            ds.BeamSequence.append(beam)
    ds.save_as(path, enforce_file_format=True)
    return str(ds.SOPInstanceUID)
