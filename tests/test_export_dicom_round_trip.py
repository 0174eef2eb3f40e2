"""The issue's acceptance path: DICOM CT + RTSTRUCT in, planned with a shipped protocol, RT Dose out,
and dicompyler-core's DVH of that RT Dose agreeing with specc's on the source RTSTRUCT."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from interop_fixtures import dicompyler_dvhcalc, write_c_shape_study

from specc.case.importers.dicom import import_dicom
from specc.evaluate.dvh import DVH
from specc.export import read_result
from specc.export.rtdose import write_rtdose

pytest.importorskip("specc.pipeline", reason="specc.plan is not written yet")

REPO = Path(__file__).resolve().parents[1]


def test_dicom_study_plans_with_the_c_shape_protocol_and_exports(tmp_path):
    import specc

    study = tmp_path / "study"
    rois = write_c_shape_study(study)
    case = import_dicom(study, beams=5, grid_mm=2.5, targets=["PTV"]).case
    case.save(tmp_path / "case.h5")

    protocol = specc.load_protocol(REPO / "protocols" / "tg119" / "c-shape.yaml")
    specc.plan(protocol, case, out_dir=tmp_path / "out")
    result = read_result(tmp_path / "out" / "result.h5")
    assert result.metadata_extra["dicom.FrameOfReferenceUID"] == pydicom.dcmread(study / "RS.dcm").ReferencedFrameOfReferenceSequence[0].FrameOfReferenceUID
    path = write_rtdose(result, tmp_path / "RD.dcm")

    dvhcalc = dicompyler_dvhcalc()
    for number, roi in enumerate(rois, start=1):
        theirs = dvhcalc.get_dvh(str(study / "RS.dcm"), str(path), number)
        ours = DVH.from_dose(result.dose_gy[case.structures[roi.name].mask], case.voxel_volume_cc)
        for their_value, our_value in ((theirs.mean, ours.mean), (theirs.max, ours.max)):
            assert abs(their_value - our_value) <= max(0.01 * our_value, 0.2), roi.name
    assert np.isfinite(result.dose_gy).all()
