"""Who and where a specc DICOM object belongs to: patient, study, Frame of Reference, equipment.

RT Dose and RT Plan are exported by separate commands, yet a planning system links them only
when they share a study and a Frame of Reference. When the case came from DICOM they join the
source study (the identifiers the importer kept under `dicom.*`); otherwise the study and
Frame of Reference UIDs are derived from the case's content hash, so every object exported
from plans on one case lands in one study, however many commands wrote them.

Every UID specc derives is a hash of what the object holds (`derived_uid`), so exporting the
same plan with the same options writes the same UIDs, and an export whose content differs
(another machine name, another study) writes other ones: a SOP Instance UID names one content,
in one series (the series UID is derived from it). Dates are never the export's clock: an
object of one plan carries the plan's creation time (`plan_created`), in UTC; a study derived
from the case has no date, since every plan on the case shares it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from pydicom.datadict import dictionary_VM
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from specc import __version__
from specc.export.result_file import PlanResult
from specc.export.staging import NOTHING_EXPORTED, ExportError

# DICOM identifiers the dicom importer keeps in CaseMetadata.extra, under this prefix.
DICOM_METADATA_PREFIX = "dicom."
# Value representations whose text may go beyond ASCII when SpecificCharacterSet allows it.
_EXTENDED_TEXT_VRS = frozenset({"SH", "LO", "ST", "LT", "UT", "UC", "PN"})
UNICODE_CHARACTER_SET = "ISO_IR 192"  # UTF-8
# The most characters a value of each text VR holds (DICOM PS3.5 6.2); PN: per component group.
_TEXT_LIMITS = {"AE": 16, "CS": 16, "SH": 16, "LO": 64, "PN": 64, "ST": 1024, "LT": 10240}


@dataclass(frozen=True)
class DicomIdentity:
    """The source study's identifiers when the case came from DICOM, else derived from the case."""

    identifiers: dict[str, str]
    case_id: str
    case_sha256: str

    @classmethod
    def of(cls, result: PlanResult) -> DicomIdentity:
        identifiers = {
            key[len(DICOM_METADATA_PREFIX) :]: value
            for key, value in result.metadata_extra.items()
            if key.startswith(DICOM_METADATA_PREFIX)
        }
        return cls(identifiers, result.case_id, result.case_sha256)

    @property
    def linked(self) -> bool:
        """Whether the objects join a source CT's study and Frame of Reference."""
        return "FrameOfReferenceUID" in self.identifiers and "StudyInstanceUID" in self.identifiers

    @property
    def structure_set_uid(self) -> str | None:
        return self.identifiers.get("StructureSetSOPInstanceUID") or None

    def derived_uid(self, purpose: str, *sources: str) -> str:
        """A UID that every export of the same content reproduces (pydicom hashes the sources)."""
        return generate_uid(entropy_srcs=["specc", purpose, self.case_sha256, *sources])

    def object_uid(self, purpose: str, *sources: str) -> str:
        """The SOP Instance UID of an object of one plan (RT Plan, RT Dose): derived from its
        content (`sources`) and from the study it joins, so that the same content filed in another
        study (the source CT's, the one `specc export dicom` writes) is another object."""
        study = [f"{key}={value}" for key, value in sorted(self.identifiers.items())]
        return self.derived_uid(purpose, *sources, *study)

    def new_dataset(
        self, path: Path, sop_class_uid: str, sop_instance_uid: str, modality: str, created: dt.datetime | None = None
    ) -> FileDataset:
        """A file dataset with the SOP common, patient, study, series, Frame of Reference and equipment modules.

        `created`: when the content was made (`plan_created`), written as its Content Date and
        Time; None for an object that belongs to no one plan (a derived study's CT), which then
        has none. The series is derived from the SOP Instance UID: one object, one series."""
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = sop_class_uid
        meta.MediaStorageSOPInstanceUID = sop_instance_uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID = sop_class_uid
        ds.SOPInstanceUID = sop_instance_uid
        if not self.linked:  # every date in the object is specc's own, in UTC
            ds.TimezoneOffsetFromUTC = "+0000"
        ds.Modality = modality
        ds.Manufacturer = "specc"
        ds.SoftwareVersions = __version__
        if created is not None:
            ds.ContentDate, ds.ContentTime = dicom_date_time(created)
        ds.InstanceNumber = 1
        self._fill_patient_and_study(ds)
        ds.SeriesInstanceUID = self.derived_uid("series", sop_instance_uid)
        ds.SeriesNumber = 1
        return ds

    def _fill_patient_and_study(self, ds: Dataset) -> None:
        known = self.identifiers
        ds.PatientID = known.get("PatientID", self.case_id)
        ds.PatientName = known.get("PatientName", self.case_id)
        ds.PatientBirthDate = known.get("PatientBirthDate", "")
        ds.PatientSex = known.get("PatientSex", "")
        ds.StudyInstanceUID = known.get("StudyInstanceUID") or self.derived_uid("study")
        ds.StudyID = known.get("StudyID", "")
        ds.StudyDate = known.get("StudyDate", "")
        ds.StudyTime = known.get("StudyTime", "")
        ds.AccessionNumber = known.get("AccessionNumber", "")
        ds.ReferringPhysicianName = known.get("ReferringPhysicianName", "")
        ds.FrameOfReferenceUID = known.get("FrameOfReferenceUID") or self.derived_uid("frame of reference")
        ds.PositionReferenceIndicator = known.get("PositionReferenceIndicator", "")


def plan_created(result: PlanResult) -> dt.datetime | None:
    """When the plan was made (plan.json `created`, UTC): the date of every object exported from
    it, however often it is exported; None for a result written without its plan record."""
    record = result.record
    return dt.datetime.fromisoformat(record.created) if record is not None else None


def dicom_date_time(moment: dt.datetime) -> tuple[str, str]:
    """DA and TM values of `moment` in UTC (the objects say so with Timezone Offset From UTC)."""
    utc = moment.astimezone(dt.timezone.utc)
    return utc.strftime("%Y%m%d"), utc.strftime("%H%M%S")


def sop_reference(sop_class_uid: str, sop_instance_uid: str) -> Dataset:
    """An item of a Referenced ... Sequence: which object, of which class."""
    reference = Dataset()
    reference.ReferencedSOPClassUID = sop_class_uid
    reference.ReferencedSOPInstanceUID = sop_instance_uid
    return reference


def monochrome_pixels(ds: Dataset, bits: int, signed: bool) -> None:
    """The image pixel attributes of one grey value per pixel (CT numbers, doses)."""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = bits
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = int(signed)


def save(ds: FileDataset, path: Path) -> Path:
    """Write `ds`, declaring UTF-8 when any text is not ASCII (a source patient's 'Müller^Jörg', a
    structure's name): without SpecificCharacterSet a reader must take the text as ASCII, and
    pydicom would encode it as Latin-1, which no reader could tell apart."""
    _check_text_lengths(ds, f"{ds.SOPClassUID.name} ", "")
    if _has_non_ascii_text(ds):
        ds.SpecificCharacterSet = UNICODE_CHARACTER_SET
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def check_text_value(vr: str, text: str) -> str | None:
    """What keeps `text` from being one value of a `vr` attribute, or None where it fits: more characters
    than the VR holds (LO 64, SH 16, ...; a PN 64 per component group), or a backslash, which DICOM reads
    as a value separator (ST and LT, never multi-valued, may hold one). pydicom writes either with a
    warning only, and a reader would cut the value or read it as several. The one home of these limits:
    the command line checks --machine with it before anything is written."""
    if "\\" in text and vr not in ("ST", "LT"):
        return "holds a backslash, which DICOM reads as a value separator"
    limit = _TEXT_LIMITS[vr]
    longest = max(len(part) for part in (text.split("=") if vr == "PN" else [text]))  # PN: up to three groups
    if longest > limit:
        return (
            f"is {longest} characters, more than the {limit} of DICOM's {vr}{' component group' if vr == 'PN' else ''}"
        )
    return None


def _check_text_lengths(ds: Dataset, what: str, prefix: str) -> None:
    """Refuse a text value `check_text_value` refuses. Values are specc's own text and the case's names."""
    for element in ds:
        keyword = f"{prefix}{element.keyword or element.tag}"
        if element.VR == "SQ":
            for index, item in enumerate(element.value):
                _check_text_lengths(item, what, f"{keyword}[{index}].")
            continue
        if element.VR not in _TEXT_LIMITS or element.value is None:
            continue
        if element.VM > 1 and dictionary_VM(element.tag) == "1":  # pydicom split the one value at its backslash
            values = [chr(92).join(map(str, element.value))]
        else:
            values = list(element.value) if element.VM > 1 else [element.value]
        for value in values:
            problem = check_text_value(element.VR, str(value))
            if problem is not None:
                raise ExportError(f"{what}{keyword} {str(value)!r} {problem}; {NOTHING_EXPORTED}")


def _has_non_ascii_text(ds: Dataset) -> bool:
    """Whether some text value of `ds` or of an item of its sequences is not ASCII."""
    for element in ds.iterall():
        if element.VR not in _EXTENDED_TEXT_VRS or element.value is None:
            continue
        values = element.value if element.VM > 1 else [element.value]
        if any(not str(value).isascii() for value in values):
            return True
    return False
