"""A DICOM folder sorted into one CT series and one RT Structure Set.

Only what the case needs is read, and every geometric assumption the importer makes is
checked here with an error naming the file: one axial CT series with rows along x and columns
along y (ImageOrientationPatient [±1,0,0,0,±1,0]: head-first or feet-first, supine or prone),
equal rows/columns/pixel spacing on every slice, and uniformly spaced slices with none missing. Files of other modalities are listed in the import report, never read.

A file without the Part-10 header (no 128-byte preamble and 'DICM' prefix, as older systems and
some anonymisers write them) is read when it is a DICOM dataset all the same: it starts with a
group 0002 or 0008 element, and it names its SOPClassUID and Modality. Anything else in the folder
(a README, a .json) is listed as skipped, with why, in the import report and in the error when
nothing of use was found.
"""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from scipy.ndimage import map_coordinates

from specc.case.model import Grid
from specc.errors import CaseError

# Positions and spacings in DICOM are decimal strings; agree to a micrometre.
POSITION_TOLERANCE_MM = 1e-3
# A plane written at another precision than the slice it lies on (a contour's z to 0.1 mm beside
# ImagePositionPatient's 0.001 mm, a dose frame after a coordinate transform) is on that slice when it
# lies within this fraction of the spacing between slices: 0.1 mm rounding on 1 mm slices passes, a
# contour a quarter or half a slice away (drawn on another series) does not.
PLANE_TOLERANCE_FRACTION = 0.1
# Slices further than this from uniform planes (above the decimals scanners write) are noted.
SLICE_OFFSET_NOTED_MM = 10 * POSITION_TOLERANCE_MM
# How far from 1 a direction cosine vector's length may be (DS values written to a few decimals).
UNIT_TOLERANCE = 1e-3
AIR_HU = -1000.0

# DICOM attributes kept in the case metadata so that an exported RT Dose or RT Plan joins the
# source study (and an RT Plan is refused for a patient position its beam angles are not for).
IDENTIFYING_ATTRIBUTES = (
    "PatientID",
    "PatientName",
    "PatientBirthDate",
    "PatientSex",
    "StudyInstanceUID",
    "StudyID",
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "ReferringPhysicianName",
    "FrameOfReferenceUID",
    "SeriesInstanceUID",
    "PositionReferenceIndicator",
    "PatientPosition",
)


@dataclass
class CtSeries:
    """HU values on the CT grid, arrays indexed [i, j, k] = (x, y, z) in patient LPS."""

    hu: np.ndarray
    origin_mm: tuple[float, float, float]
    spacing_mm: tuple[float, float, float]
    identifiers: dict[str, str]
    files: list[Path]
    # The largest distance of a slice from the uniform planes the grid places it on (within
    # `plane_tolerance_mm`; noted when above the positions' own precision).
    slice_offset_mm: float = 0.0
    # Each slice's own z (ImagePositionPatient), where it differs from the uniform plane it is placed on:
    # a contour lies on the slice it was drawn on, not on the fitted plane. None: the uniform planes.
    slice_z_mm: np.ndarray | None = None

    def slice_positions_mm(self) -> np.ndarray:
        """The z of each slice as its file states it (the uniform planes when they agree)."""
        return self.axis_mm(2) if self.slice_z_mm is None else self.slice_z_mm

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.hu.shape)  # type: ignore[return-value]

    def axis_mm(self, axis: int) -> np.ndarray:
        """Coordinates of voxel centres along one axis."""
        return self.origin_mm[axis] + self.spacing_mm[axis] * np.arange(self.hu.shape[axis])

    @property
    def grid(self) -> Grid:
        """The images' own voxel grid (slices on their uniform planes): what the dose engine's rays cross."""
        return Grid(shape=self.shape, spacing_mm=self.spacing_mm, origin_mm=self.origin_mm)

    def on_grid(self, grid: Grid) -> np.ndarray:
        """HU at a grid's voxel centres: trilinear, air beyond the images (where nothing was scanned)."""
        return resample(self.hu, self.origin_mm, self.spacing_mm, grid, AIR_HU)


def present_attributes(dataset: Dataset, keywords: Sequence[str]) -> dict[str, str]:
    """The attributes of `keywords` the dataset has with a value, as text."""
    return {keyword: str(dataset.get(keyword)) for keyword in keywords if dataset.get(keyword) not in (None, "")}


def resample(
    values: np.ndarray, origin_mm: Sequence[float], spacing_mm: Sequence[float], grid: Grid, outside: float
) -> np.ndarray:
    """Image `values` (x, y, z; first voxel centre at `origin_mm`) at `grid`'s voxel centres,
    trilinear, `outside` beyond the image."""
    axes = grid.axes_mm()
    index = np.meshgrid(*[(axes[a] - origin_mm[a]) / spacing_mm[a] for a in range(3)], indexing="ij")
    return map_coordinates(values, index, order=1, mode="constant", cval=outside)


@dataclass
class DicomFolder:
    """What a folder held: the CT series, the structure set and the files not used."""

    ct: CtSeries | None  # None only when read with `require_ct=False` and the folder has no CT
    structure_set: Dataset
    structure_set_file: Path
    unused: list[str] = field(default_factory=list)
    # Files of the other DICOM modalities (RTDOSE, RTPLAN, ...) by modality, with the headers read
    # while sorting (everything but pixel data): a plan check reads them.
    by_modality: dict[str, list[tuple[Path, Dataset]]] = field(default_factory=dict)
    headerless: list[Path] = field(default_factory=list)  # read without the Part-10 preamble and 'DICM' prefix

    @property
    def notes(self) -> list[str]:
        """What the import report says of how the folder's files were read."""
        notes = []
        if self.headerless:
            notes.append(
                f"{len(self.headerless)} file(s) have no DICOM Part-10 header (no preamble and 'DICM' prefix), read "
                f"as DICOM datasets: {_listed([path.name for path in self.headerless])}"
            )
        if self.ct is not None and self.ct.slice_offset_mm > SLICE_OFFSET_NOTED_MM:
            spacing = self.ct.spacing_mm[2]
            notes.append(
                f"CT slices are not exactly evenly spaced: each lies within {self.ct.slice_offset_mm:.3g} mm of "
                f"uniform slices of {spacing:.4g} mm (allowed: {plane_tolerance_text(spacing)}), on which the case "
                "places them"
            )
        return notes


def plane_tolerance_mm(spacing_mm: float) -> float:
    """How far a plane may lie from the slice it is on (PLANE_TOLERANCE_FRACTION of the spacing)."""
    return PLANE_TOLERANCE_FRACTION * spacing_mm


def plane_tolerance_text(spacing_mm: float) -> str:
    """The tolerance as a message states it: its value and what it is a fraction of."""
    return f"{plane_tolerance_mm(spacing_mm):.3g} mm ({PLANE_TOLERANCE_FRACTION:.0%} of the {spacing_mm:g} mm spacing)"


def read_dicom(path: Path, *, stop_before_pixels: bool = False, data: bytes | None = None) -> Dataset:
    """A DICOM file (`data`: its bytes, already read), with or without the Part-10 header.

    Without the preamble and 'DICM' prefix pydicom reads a file only when forced, and forced it
    reads any bytes as some dataset: such a file is taken only when it starts as a dataset does
    (a group 0002 or 0008 element) and names a SOPClassUID and a Modality; its transfer syntax,
    when it has no file meta to say it, is the encoding pydicom found. Raises InvalidDicomError
    (with the reason) for anything else.
    """
    source = io.BytesIO(data) if data is not None else path
    try:
        return pydicom.dcmread(source, stop_before_pixels=stop_before_pixels)
    except InvalidDicomError:
        pass
    head = data[:2] if data is not None else _first_bytes(path, 2)
    if len(head) < 2 or int.from_bytes(head, "little") not in (0x0002, 0x0008):
        raise InvalidDicomError("not a DICOM file")
    if isinstance(source, io.BytesIO):
        source.seek(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns of every element it guesses; the checks below decide
        try:
            dataset = pydicom.dcmread(source, stop_before_pixels=stop_before_pixels, force=True)
            sop_class, modality = str(dataset.get("SOPClassUID", "")), str(dataset.get("Modality", ""))
        except Exception as error:  # forced, pydicom parses arbitrary bytes and fails in many ways
            raise InvalidDicomError(f"no DICOM header, and not a DICOM dataset without one ({error})") from None
    if not (UID(sop_class).is_valid and re.fullmatch(r"[A-Z0-9_ ]{1,16}", modality)):
        raise InvalidDicomError("no DICOM header, and no SOPClassUID and Modality to read it as a dataset without one")
    if "TransferSyntaxUID" not in getattr(dataset, "file_meta", {}):
        implicit, little = dataset.original_encoding
        dataset.file_meta = FileMetaDataset()
        dataset.file_meta.TransferSyntaxUID = (
            ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian if little else ExplicitVRBigEndian
        )
    return dataset


def _first_bytes(path: Path, count: int) -> bytes:
    with path.open("rb") as handle:
        return handle.read(count)


def _listed(items: list[str], separator: str = ", ", shown: int = 5) -> str:
    """Up to `shown` items, and how many more."""
    more = f"{separator}and {len(items) - shown} more" if len(items) > shown else ""
    return separator.join(items[:shown]) + more


def _skipped(unused: list[str]) -> str:
    """The files not used, for an error that finds nothing to import: how many, and why each."""
    return f"; {len(unused)} file(s) in it not used: {_listed(unused, '; ')}" if unused else ""


def read_dicom_folder(folder: str | Path, require_ct: bool = True) -> DicomFolder:
    """Sort a folder (recursively) into its CT series and RT Structure Set.

    `require_ct=False`: a folder without CT images is read too (a plan export of structures
    and dose only, which a plan check can judge); a folder with several series is still refused.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise CaseError(f"{folder}: not a folder of DICOM files")
    ct_slices: dict[str, list[tuple[Path, Dataset]]] = {}
    structure_sets: list[tuple[Path, Dataset]] = []
    unused: list[str] = []
    by_modality: dict[str, list[tuple[Path, Dataset]]] = {}
    headerless: list[Path] = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        try:
            dataset = read_dicom(path, stop_before_pixels=True)
        except InvalidDicomError as error:
            unused.append(f"{path.name}: {error}")
            continue
        except OSError as error:
            unused.append(f"{path.name}: cannot be read ({error.strerror or error})")
            continue
        if getattr(dataset, "preamble", None) is None:  # read by `read_dicom` without the Part-10 header
            headerless.append(path)
        modality = str(dataset.get("Modality", ""))
        if modality == "CT":
            ct_slices.setdefault(str(dataset.get("SeriesInstanceUID", "")), []).append((path, dataset))
        elif modality == "RTSTRUCT":
            structure_sets.append((path, dataset))
        else:
            hint = " (another system's plan: judge it with `specc check`)" if modality in ("RTDOSE", "RTPLAN") else ""
            unused.append(f"{path.name}: modality {modality or 'unknown'} is not used by the importer{hint}")
            by_modality.setdefault(modality, []).append((path, dataset))
    if not ct_slices and require_ct:
        raise CaseError(f"{folder}: no CT images found{_skipped(unused)}")
    if len(ct_slices) > 1:
        counts = ", ".join(f"{uid} ({len(files)} slices)" for uid, files in ct_slices.items())
        raise CaseError(f"{folder}: more than one CT series ({counts}); put one series per folder")
    if not structure_sets:
        raise CaseError(
            f"{folder}: no RT Structure Set (RTSTRUCT) found" + ("" if ct_slices else " (and no CT images)") + _skipped(unused)
        )
    if len(structure_sets) > 1:
        names = ", ".join(path.name for path, _ in structure_sets)
        raise CaseError(f"{folder}: more than one RT Structure Set ({names}); keep the one to import")
    ct = _read_ct_series(next(iter(ct_slices.values()))) if ct_slices else None
    rs_path, rs_header = structure_sets[0]
    return DicomFolder(
        ct=ct, structure_set=read_dicom(rs_path), structure_set_file=rs_path, unused=unused,
        by_modality=by_modality, headerless=headerless,
    )


def _read_ct_series(slices: list[tuple[Path, Dataset]]) -> CtSeries:
    for path, header in slices:
        for keyword in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "Rows", "Columns"):
            if keyword not in header:
                raise CaseError(f"{path}: CT image has no {keyword}")
    first_path, first = slices[0]
    signs = axis_signs(first.ImageOrientationPatient, first_path, "CT image")
    for path, header in slices[1:]:
        if axis_signs(header.ImageOrientationPatient, path, "CT image") != signs:
            raise CaseError(
                f"{path}: ImageOrientationPatient {[float(v) for v in header.ImageOrientationPatient]} differs "
                f"from {first_path.name}'s; one series has one orientation"
            )
    geometry = (int(first.Rows), int(first.Columns), tuple(float(v) for v in first.PixelSpacing))
    for path, header in slices[1:]:
        other = (int(header.Rows), int(header.Columns), tuple(float(v) for v in header.PixelSpacing))
        if other != geometry:
            raise CaseError(
                f"{path}: rows/columns/pixel spacing {other} differ from {first_path.name} {geometry}"
            )
    ordered = sorted(slices, key=lambda item: float(item[1].ImagePositionPatient[2]))
    z = np.array([float(h.ImagePositionPatient[2]) for _, h in ordered])
    spacing_z, jitter = _uniform_slice_spacing(z, [path for path, _ in ordered]) if len(z) > 1 else (0.0, 0.0)
    for path, header in ordered[1:]:
        xy = [float(v) for v in header.ImagePositionPatient[:2]]
        if not np.allclose(xy, [float(v) for v in first.ImagePositionPatient[:2]], atol=POSITION_TOLERANCE_MM):
            raise CaseError(f"{path}: ImagePositionPatient x/y {xy} differ from the other slices (tilted series)")

    rows, columns, (row_spacing, column_spacing) = geometry
    hu = np.empty((columns, rows, len(ordered)), dtype=np.float32)
    for k, (path, _) in enumerate(ordered):
        image = read_dicom(path)
        try:
            pixels = image.pixel_array.astype(np.float32)
        except Exception as error:  # pydicom raises many types for undecodable pixel data
            raise undecodable(path, "CT", image, error) from None
        slope = float(image.get("RescaleSlope", 1.0))
        intercept = float(image.get("RescaleIntercept", 0.0))
        hu[:, :, k] = (pixels * slope + intercept).T  # pixel rows are y, columns are x

    if len(z) == 1:
        spacing_z = float(first.get("SliceThickness", 0) or 0)
    if spacing_z <= 0:
        raise CaseError(f"{first_path}: a single CT slice with no SliceThickness has no slice spacing")
    # ImagePositionPatient is the first stored pixel's centre; a flipped axis starts at its far end.
    origin = [float(first.ImagePositionPatient[0]), float(first.ImagePositionPatient[1]), float(z[0])]
    for axis, (sign, spacing) in enumerate(zip(signs, (column_spacing, row_spacing))):
        if sign < 0:
            hu = np.flip(hu, axis=axis)
            origin[axis] -= spacing * (hu.shape[axis] - 1)
    identifiers = present_attributes(first, IDENTIFYING_ATTRIBUTES)
    return CtSeries(
        hu=np.ascontiguousarray(hu),
        origin_mm=(origin[0], origin[1], origin[2]),
        spacing_mm=(column_spacing, row_spacing, spacing_z),
        identifiers=identifiers,
        files=[path for path, _ in ordered],
        slice_offset_mm=jitter,
        slice_z_mm=z if jitter > 0.0 else None,
    )


def axis_signs(orientation: Sequence[object], path: Path, what: str) -> tuple[float, float]:
    """Which way (+1, -1) an axial image's rows run along x and its columns along y, in patient LPS.

    A patient lying prone or feet first is imaged flipped (head-first prone [-1,0,0,0,-1,0],
    feet-first supine [-1,0,0,0,1,0]), but its positions are patient coordinates like any other:
    reading it is a matter of direction. Rows or columns along another axis (a non-axial image, one
    turned in its plane) or between axes (oblique) would need a resampling: refused, saying which.
    """
    directions = np.array([float(v) for v in orientation])
    if directions.shape != (6,):
        raise CaseError(f"{path}: ImageOrientationPatient {directions.tolist()} does not have six values")
    # Direction cosines are unit vectors; without this an all-zero orientation's largest component is its
    # first, and it would be said to run along x.
    lengths = np.linalg.norm(directions.reshape(2, 3), axis=1)
    if not np.all(np.abs(lengths - 1) <= UNIT_TOLERANCE):
        raise CaseError(
            f"{path}: ImageOrientationPatient {directions.tolist()} is not a valid orientation: the row and column "
            f"direction cosines must be unit vectors, their lengths are {lengths[0]:g} and {lengths[1]:g}"
        )
    signs = []
    for direction, axis, label in ((directions[:3], 0, "rows"), (directions[3:], 1, "columns")):
        along = int(np.argmax(np.abs(direction)))
        sign = float(np.sign(direction[along]))
        if not np.allclose(direction, sign * np.eye(3)[along], atol=1e-4):
            raise CaseError(
                f"{path}: ImageOrientationPatient {directions.tolist()} is not axis-aligned ({label} along "
                f"{direction.tolist()}); oblique {what}s are not supported"
            )
        if along != axis:
            raise CaseError(
                f"{path}: ImageOrientationPatient {directions.tolist()}: the {label} run along {'xyz'[along]}, "
                f"not {'xy'[axis]}; only axial {what}s with rows along x and columns along y are supported "
                "(in either direction: head-first or feet-first, supine or prone)"
            )
        signs.append(sign)
    return signs[0], signs[1]


def _uniform_slice_spacing(z: np.ndarray, paths: list[Path]) -> tuple[float, float]:
    """The series' slice spacing, fitted over all slices (first to last: jitter in single gaps does not
    scale the whole series), and the largest distance of a slice from those uniform planes. Slices must
    lie within `plane_tolerance_mm` of them (positions written to 0.1 mm on a 1.25 mm series, a scanner's
    jitter), as contours must lie on their slices; a gap of a whole number of spacings is a missing slice."""
    gaps = np.diff(z)
    duplicate = np.flatnonzero(gaps < POSITION_TOLERANCE_MM)
    if duplicate.size:
        i = int(duplicate[0])
        raise CaseError(f"{paths[i + 1]}: two CT slices at z = {z[i]:g} mm ({paths[i].name}, {paths[i + 1].name})")
    typical = float(np.median(gaps))
    tolerance = plane_tolerance_mm(typical)
    for i, gap in enumerate(gaps):
        multiple = round(gap / typical)
        if abs(gap - typical) <= tolerance or multiple < 2 or abs(gap - multiple * typical) > tolerance:
            continue
        raise CaseError(
            f"{paths[i + 1].parent}: {multiple - 1} CT slice(s) missing between "
            f"z = {z[i]:g} mm ({paths[i].name}) and z = {z[i + 1]:g} mm ({paths[i + 1].name})"
        )
    spacing = float(z[-1] - z[0]) / (len(z) - 1)
    off = np.abs(z - (z[0] + spacing * np.arange(len(z))))
    worst = int(np.argmax(off))
    if off[worst] > plane_tolerance_mm(spacing):
        raise CaseError(
            f"{paths[worst].parent}: non-uniform CT slice spacing: the slice at z = {z[worst]:g} mm "
            f"({paths[worst].name}) lies {off[worst]:.3g} mm from uniform slices of {spacing:.4g} mm, more than "
            f"{plane_tolerance_text(spacing)}; resample the series to uniform slices first"
        )
    return spacing, float(off[worst])


def undecodable(path: Path, what: str, dataset: Dataset, error: Exception) -> CaseError:
    """Why pixel data cannot be read, with what to do when it is compressed."""
    syntax = dataset.file_meta.get("TransferSyntaxUID") if hasattr(dataset, "file_meta") else None
    compressed = syntax is not None and getattr(syntax, "is_compressed", False)
    advice = (
        f"; it is compressed ({syntax.name}): install a decoder (pip install pylibjpeg pylibjpeg-libjpeg "
        "pylibjpeg-openjpeg) or export uncompressed" if compressed else ""
    )
    return CaseError(f"{path}: cannot decode the {what} pixel data ({error}){advice}")
