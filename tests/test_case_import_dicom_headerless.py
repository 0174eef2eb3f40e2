"""DICOM files without the Part-10 header (audit c2 F2): no 128-byte preamble and 'DICM' prefix, as older
systems and some anonymisers write them. They are read when they are DICOM datasets naming a SOPClassUID
and a Modality; other files stay skipped, and an error that finds nothing to import says how many were
skipped and why."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from interop_fixtures import write_rtdose_file, write_study
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import MediaStorageDirectoryStorage, generate_uid

from specc.case.importers.dicom import import_dicom
from specc.case.importers.rtdose import read_rtdose
from specc.errors import CaseError

OPTIONS = dict(beams=[0], grid_mm=5, beamlet_mm=10, targets=["Target"])


def _strip_header(path, keep_meta: bool) -> None:
    """Rewrite `path` without preamble and 'DICM' prefix: with its file meta group, or as a bare
    implicit-VR little-endian dataset (no transfer syntax written anywhere)."""
    dataset = pydicom.dcmread(path)
    dataset.preamble = None
    if keep_meta:
        dataset.save_as(path, enforce_file_format=False)
    else:
        del dataset.file_meta
        dataset.save_as(path, enforce_file_format=False, implicit_vr=True, little_endian=True)
    assert path.read_bytes()[128:132] != b"DICM"


def _not_dicom_files(folder) -> None:
    (folder / "README.txt").write_text("CT of the phantom, exported 2019.\n")
    (folder / "plan.json").write_text('{"fractions": 30}')
    # starts as a dataset does (group 0008) but is none
    (folder / "junk.bin").write_bytes(b"\x08\x00\x05\x00" + bytes(range(256)) * 4)


@pytest.mark.parametrize("keep_meta", [True, False], ids=["file-meta", "bare-dataset"])
def test_ct_and_structure_set_without_the_part10_header_import_as_with_it(tmp_path, keep_meta):
    """Every CT slice was skipped as 'not a DICOM file', and the import said only 'no CT images found'."""
    write_study(tmp_path / "headed")
    write_study(tmp_path / "bare")
    stripped = sorted((tmp_path / "bare").glob("*.dcm"))
    for path in stripped:
        _strip_header(path, keep_meta)
    _not_dicom_files(tmp_path / "bare")

    headed, bare = (import_dicom(tmp_path / name, **OPTIONS) for name in ("headed", "bare"))

    assert bare.case.grid == headed.case.grid
    np.testing.assert_array_equal(bare.case.density, headed.case.density)
    for name, structure in headed.case.structures.items():
        assert np.array_equal(bare.case.structures[name].mask, structure.mask), name
    assert any(note.startswith(f"{len(stripped)} file(s) have no DICOM Part-10 header") for note in bare.notes)
    assert "file README.txt: not a DICOM file" in bare.not_imported
    assert "file plan.json: not a DICOM file" in bare.not_imported
    assert any(item.startswith("file junk.bin: no DICOM header, and") for item in bare.not_imported)


def test_a_folder_with_nothing_to_import_says_how_many_files_were_skipped_and_why(tmp_path):
    _not_dicom_files(tmp_path)
    directory = FileDataset(str(tmp_path / "DICOMDIR"), {}, file_meta=FileMetaDataset(), preamble=b"\0" * 128)
    directory.file_meta.MediaStorageSOPClassUID = MediaStorageDirectoryStorage
    directory.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    directory.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    directory.FileSetID = "TEST"
    directory.save_as(tmp_path / "DICOMDIR", enforce_file_format=True)
    with pytest.raises(CaseError) as error:
        import_dicom(tmp_path, **OPTIONS)
    message = str(error.value)
    assert message.startswith(f"{tmp_path}: no CT images found; 4 file(s) in it not used: ")
    for item in ("DICOMDIR: modality unknown is not used by the importer", "README.txt: not a DICOM file",
                 "plan.json: not a DICOM file", "junk.bin: no DICOM header, and"):
        assert item in message


def test_an_rt_dose_without_the_part10_header_is_read(tmp_path):
    dose = np.arange(4 * 3 * 2, dtype=float).reshape(4, 3, 2) + 10.0
    path = write_rtdose_file(tmp_path / "RD.dcm", dose, (0.0, 0.0, 0.0), (2.0, 2.0, 3.0))
    _strip_header(path, keep_meta=False)
    np.testing.assert_allclose(read_rtdose(path, 30).dose_gy, dose, rtol=1e-8)
