"""`specc import` / `specc export` on the command line: exit codes and what they print."""

from __future__ import annotations

import json

import numpy as np
import pydicom
import pytest
from interop_fixtures import matrad_workspace, save_matrad_v5, write_portpy_folder, write_study
from typer.testing import CliRunner

import specc.cli.io  # noqa: F401  (registers the commands)
from specc.case import Case
from specc.cli.app import app
from specc.export import write_result
from specc.protocol import load_protocol

runner = CliRunner()


def test_import_dicom_then_export_rtdose(tmp_path):
    write_study(tmp_path / "study")
    result = runner.invoke(app, ["import", "dicom", str(tmp_path / "study"), "--out", str(tmp_path / "case.h5"),
                                 "--beams", "0,120,240", "--grid", "2.5", "--target", "Target"])
    assert result.exit_code == 0, result.output
    for fragment in ("Target", "Spinal Cord", "beams: 3", "nonzeros"):
        assert fragment in result.output
    case = Case.load(tmp_path / "case.h5")
    fluence = np.ones(case.n_beamlets)
    write_result(tmp_path / "result.h5", case, fluence, case.dose_on_grid(fluence, 25), 25, case_path=tmp_path / "case.h5")
    exported = runner.invoke(app, ["export", "rtdose", str(tmp_path / "result.h5"), "--out", str(tmp_path / "RD.dcm")])
    assert exported.exit_code == 0, exported.output
    assert "source study's Frame of Reference" in exported.output
    assert pydicom.dcmread(tmp_path / "RD.dcm").PatientID == "SPECC-TEST-001"


def test_export_dvh_from_the_case_when_there_is_no_record(tmp_path):
    folder = tmp_path / "P"
    write_portpy_folder(folder)
    assert runner.invoke(app, ["import", "portpy", str(folder), "--out", str(tmp_path / "case.h5")]).exit_code == 0
    case = Case.load(tmp_path / "case.h5")
    fluence = np.ones(case.n_beamlets)
    write_result(tmp_path / "result.h5", case, fluence, case.dose_on_grid(fluence, 10), 10)
    missing = runner.invoke(app, ["export", "dvh", str(tmp_path / "result.h5"), "--out", str(tmp_path / "dvh")])
    assert missing.exit_code == 1 and "--case" in missing.output
    done = runner.invoke(app, ["export", "dvh", str(tmp_path / "result.h5"), "--out", str(tmp_path / "dvh"),
                               "--case", str(tmp_path / "case.h5")])
    assert done.exit_code == 0, done.output
    tables = json.loads((tmp_path / "dvh" / "dvh.json").read_text())
    assert tables["source"] == "case structures"
    ptv = next(s for s in tables["structures"] if s["structure"] == "PTV")
    assert ptv["volume_percent"][0] == 100.0
    assert ptv["max_gy"] == pytest.approx(case.dose_on_grid(fluence, 10)[case.structures["PTV"].mask].max(), rel=1e-6)
    assert (tmp_path / "dvh" / "dvh.csv").read_text().startswith("structure,dose_gy,volume_percent,volume_cc")


def test_engine_options_are_refused_for_formats_with_their_own_matrix(tmp_path):
    path = save_matrad_v5(tmp_path / "ws.mat", matrad_workspace())
    result = runner.invoke(app, ["import", "matrad", str(path), "--out", str(tmp_path / "c.h5"), "--beams", "5"])
    assert result.exit_code == 1
    assert "has a dij (matRad's influence matrix); beams apply only to a workspace without one" in result.output
    ok = runner.invoke(app, ["import", "matrad", str(path), "--out", str(tmp_path / "c.h5")])
    assert ok.exit_code == 0, ok.output
    folder = tmp_path / "portpy"
    write_portpy_folder(folder)
    result = runner.invoke(app, ["import", "portpy", str(folder), "--out", str(tmp_path / "p.h5"), "--grid", "3"])
    assert result.exit_code == 1 and "--grid only apply to dicom import and to matrad workspaces without a dij" in result.output


def test_unknown_format_and_bad_input_exit_1_without_traceback(tmp_path):
    unknown = runner.invoke(app, ["import", "eclipse", str(tmp_path), "--out", str(tmp_path / "c.h5")])
    assert unknown.exit_code == 1 and "unknown import format 'eclipse'" in unknown.output
    empty = runner.invoke(app, ["import", "dicom", str(tmp_path), "--out", str(tmp_path / "c.h5")])
    assert empty.exit_code == 1 and "no CT images found" in empty.output
    assert "Traceback" not in empty.output


def test_portpy_criteria_command_writes_a_valid_protocol(tmp_path):
    criteria = {"disease_site": "Lung", "protocol_name": "Lung_2Gy_30Fx", "pres_per_fraction_gy": 2,
                "num_of_fractions": 30, "criteria": [
                    {"type": "max_dose", "parameters": {"structure_name": "CORD"}, "constraints": {"limit_dose_gy": 50}}]}
    (tmp_path / "c.json").write_text(json.dumps(criteria))
    result = runner.invoke(app, ["import", "portpy-criteria", str(tmp_path / "c.json"), "--out", str(tmp_path / "p.yaml")])
    assert result.exit_code == 0, result.output
    protocol = load_protocol(tmp_path / "p.yaml")
    assert protocol.prescription.levels[0].target == "PTV"


@pytest.fixture(scope="module")
def small_study(tmp_path_factory):
    folder = tmp_path_factory.mktemp("beams") / "study"
    write_study(folder)
    return folder


def _import_beams(study, out, beams: str):
    return runner.invoke(app, ["import", "dicom", str(study), "--out", str(out), "--beams", beams, "--grid", "5",
                               "--target", "Target", "--exclude", "Spinal Cord"])


@pytest.mark.parametrize("beams", ["90 deg", "90deg", "90°", "90,"])
def test_one_gantry_angle_is_given_with_its_unit(small_study, tmp_path, beams):
    result = _import_beams(small_study, tmp_path / "c.h5", beams)
    assert result.exit_code == 0, result.output
    assert [beam.gantry_deg for beam in Case.load(tmp_path / "c.h5").beams] == [90.0]


def test_a_whole_number_is_a_count_and_a_list_is_angles(small_study, tmp_path):
    assert _import_beams(small_study, tmp_path / "n.h5", "3").exit_code == 0
    assert [beam.gantry_deg for beam in Case.load(tmp_path / "n.h5").beams] == [0.0, 120.0, 240.0]
    assert _import_beams(small_study, tmp_path / "a.h5", "0,72 deg").exit_code == 0
    assert [beam.gantry_deg for beam in Case.load(tmp_path / "a.h5").beams] == [0.0, 72.0]


@pytest.mark.parametrize(("beams", "angles"), [("0 deg, 72 deg", [0.0, 72.0]), ("0 deg,72°", [0.0, 72.0]),
                                               ("90 deg,", [90.0])])
def test_each_angle_of_a_list_may_carry_its_unit(small_study, tmp_path, beams, angles):
    """Review s19/r3 L4: the unit was taken only from the end of the whole text, so '0 deg,72 deg' was refused."""
    result = _import_beams(small_study, tmp_path / "c.h5", beams)
    assert result.exit_code == 0, result.output
    assert [beam.gantry_deg for beam in Case.load(tmp_path / "c.h5").beams] == angles


def test_minus_zero_is_gantry_zero(small_study, tmp_path):
    assert _import_beams(small_study, tmp_path / "c.h5", "-0 deg").exit_code == 0
    assert [f"{beam.gantry_deg:g}" for beam in Case.load(tmp_path / "c.h5").beams] == ["0"]


@pytest.mark.parametrize(
    ("beams", "message"),
    [
        ("0", "the number of beams must be at least 1; one beam at a gantry angle is --beams '0 deg'"),
        ("45.0", "expected a number of beams (a whole number) or gantry angles, got '45.0'; one beam at a gantry angle "
                 "is --beams '45.0 deg'"),
        ("deg", "'deg' is not a gantry angle (degrees, e.g. '72' or '72 deg')"),
        ("0,abc", "'abc' in '0,abc' is not a gantry angle"),
        ("nan deg", "'nan deg' is not a gantry angle: angles are finite numbers of degrees, 0 to less than 360"),
        ("inf,", "'inf' in 'inf,' is not a gantry angle: angles are finite numbers of degrees"),
        (",", "no gantry angle in ','"),
        ("400,-30", "gantry angles are 0 to less than 360 deg (IEC 61217); got 400 (the same direction is 40), -30 "
                    "(the same direction is 330)"),
    ],
)
def test_beams_that_are_neither_a_count_nor_angles_say_how_to_give_one_angle(small_study, tmp_path, beams, message):
    result = _import_beams(small_study, tmp_path / "c.h5", beams)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert message in " ".join(result.output.split())


def test_the_importers_own_beam_rule_refuses_non_finite_angles_and_reads_minus_zero_as_zero() -> None:
    """The command line refused nan / inf and read -0 as 0 (56d1f38), but a library call (import_dicom(beams=...), a
    pln's angles) reached the engine's rule, which said 'got nan (the same direction is nan)' and kept gantry -0."""
    import pytest

    from specc.case.importers.engine_case import _beams
    from specc.errors import CaseError

    for bad in (float("nan"), float("inf")):
        with pytest.raises(CaseError, match=r"gantry angles are finite numbers of degrees, 0 to less than 360; got"):
            _beams([bad], (0.0, 0.0, 0.0), [])
    (beam,) = _beams([-0.0], (0.0, 0.0, 0.0), [-0.0])
    assert str(beam.gantry_deg) == "0.0" and str(beam.couch_deg) == "0.0"
