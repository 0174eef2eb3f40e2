"""Goals under patient setup errors: the dose shifted rigidly, the worst scenario judged."""

from __future__ import annotations

import json

import numpy as np
import pytest

from evaluate_fakes import synthetic_case
from specc.evaluate.dvh import DVH
from specc.case.shifts import Displacement, DisplacedVoxels
from specc.evaluate.robustness import robustness_record
from specc.protocol import ProtocolError, parse_protocol_text

HEADER = """specc: 1
name: robust
site: test
version: 1.0.0
structures:
  Target: {role: target}
  Organ: {role: oar}
  Body: {role: other}
prescription:
  fractions: 30
  levels: [{target: Target, dose: 60 Gy}]
goals:
  Target: ["Mean >= 15 Gy", "Max <= 100 Gy"]
  Organ: ["Mean <= 5 Gy"]
"""


def _protocol(robustness: str):
    return parse_protocol_text(HEADER + robustness, "protocols/robust.yaml")


def test_a_patient_shift_gives_each_voxel_the_dose_that_far_away_and_the_worst_is_judged() -> None:
    case = synthetic_case()
    masks = {name: structure.mask for name, structure in case.structures.items()}
    x, y, z = np.meshgrid(*case.grid.axes_mm(), indexing="ij")
    dose = 20.0 + x + 0.5 * z  # a linear dose (Gy): trilinear interpolation is exact for it
    protocol = _protocol('robustness: {setup_error: ["5 mm", "0 mm", "2 mm"]}\n')
    record = robustness_record(protocol, dose, masks, case.grid, case.voxel_volume_cc, True, case.voxel_indices)
    assert record.scenarios_mm == [(5.0, 0.0, 0.0), (-5.0, 0.0, 0.0), (0.0, 0.0, 2.0), (0.0, 0.0, -2.0)]
    assert record.structures == ["Target"]  # the prescription targets by default
    mean = next(goal for goal in record.goals if goal.text == "Mean >= 15 Gy")
    inside = masks["Target"]  # the sphere of radius 15 mm sits 2 voxels and more from every edge
    assert mean.nominal == pytest.approx(dose[inside].mean())
    # patient moved +5 mm in x: its voxels sit where the dose is 5 Gy higher
    np.testing.assert_allclose(mean.scenario_values, np.array([5.0, -5.0, 1.0, -1.0]) + mean.nominal, rtol=1e-9)
    assert mean.worst == pytest.approx(mean.nominal - 5.0) and mean.worst_scenario == 1  # lowest for a lower bound
    highest = next(goal for goal in record.goals if goal.text == "Max <= 100 Gy")
    assert highest.worst_scenario == 0 and highest.worst == max(highest.scenario_values)  # highest for an upper bound
    assert [goal.status for goal in record.goals] == ["pass", "pass"]


def test_voxels_displaced_past_the_grid_edge_are_noted_as_reading_the_edge_dose() -> None:
    """Audit s18/a2 F1: a structure displaced past the grid's edge read the edge voxel's dose (as nominal) and
    neither robustness.notes nor any plan note said so."""
    case = synthetic_case()  # Target on x indices 5-10 of 16 (5 mm): 30 mm is 6 voxels
    masks = {name: structure.mask for name, structure in case.structures.items()}
    dose = np.full(case.grid.shape, 10.0)
    protocol = _protocol('robustness: {setup_error: ["30 mm", "0 mm", "5 mm"]}\n')
    every_voxel = np.arange(case.grid.n_voxels)  # every voxel a dose row: no note of voxels moved off the rows
    record = robustness_record(protocol, dose, masks, case.grid, case.voxel_volume_cc, True, every_voxel)
    target = masks["Target"]
    high, low = int(np.count_nonzero(target[10:])), int(np.count_nonzero(target[:6]))  # moved past index 15 / below 0
    assert high and low and not target[:5].any()
    assert record.notes == [
        f"Target: some of its {int(target.sum())} voxels are displaced past the dose grid's edge and read the edge "
        f"voxel's dose: {high} in Target (x +30 mm), {low} in Target (x -30 mm). No dose is computed beyond the grid, "
        "so a dose falling off there is not seen and those scenarios' values may be optimistic; a grid reaching past "
        "the structure by the setup error avoids it"
    ]  # the 5 mm shifts along z stay inside


def test_a_composites_prior_course_stays_with_the_anatomy_and_only_this_plans_dose_moves() -> None:
    """This plan 1 Gy/mm along x, the prior course 2 Gy/mm: with the patient 5 mm off in this course,
    a voxel receives this plan's dose 5 mm away (+5 Gy) and the prior dose where it is (+0 Gy), not
    the composite 5 mm away (+15 Gy). With random errors too, only this plan's dose is blurred (a
    linear dose is its own blur away from the grid's edges)."""
    case = synthetic_case()
    masks = {name: structure.mask for name, structure in case.structures.items()}
    x, _, _ = np.meshgrid(*case.grid.axes_mm(), indexing="ij")
    own, prior = 20.0 + x, 40.0 + 2.0 * x
    protocol = _protocol('robustness: {setup_error: ["5 mm", "0 mm", "0 mm"], random_error: 2 mm}\n')
    record = robustness_record(protocol, own + prior, masks, case.grid, case.voxel_volume_cc, True,
                               case.voxel_indices, fixed_gy=prior)
    mean = next(goal for goal in record.goals if goal.text == "Mean >= 15 Gy")
    assert mean.nominal == pytest.approx((own + prior)[masks["Target"]].mean())
    np.testing.assert_allclose(mean.scenario_values, np.array([0.0, 5.0, -5.0]) + mean.nominal, rtol=1e-9)
    assert "the prior course's dose stays with the anatomy" in record.model


def test_a_goal_failed_in_one_scenario_fails_and_an_unconverged_plan_is_labelled() -> None:
    case = synthetic_case()
    masks = {name: structure.mask for name, structure in case.structures.items()}
    x, _, _ = np.meshgrid(*case.grid.axes_mm(), indexing="ij")
    dose = np.where(x < 10.0, 40.0, 0.0)  # a field edge 7.5 mm from the organ (x from 17.5 to 32.5 mm)
    protocol = _protocol("robustness: {setup_error: 10 mm, structures: [Organ]}\n")
    record = robustness_record(protocol, dose, masks, case.grid, case.voxel_volume_cc, True, case.voxel_indices)
    (organ,) = record.goals
    assert organ.text == "Mean <= 5 Gy" and organ.nominal == 0.0
    # moved 10 mm towards -x (two voxels: no interpolation), the organ's first of four columns is in the field
    assert record.scenarios_mm[organ.worst_scenario] == (-10.0, 0.0, 0.0)
    assert organ.worst == pytest.approx(10.0) and organ.status == "fail"
    unconverged = robustness_record(protocol, dose, masks, case.grid, case.voxel_volume_cc, False, case.voxel_indices)
    assert unconverged.goals[0].status == "not_converged" and unconverged.goals[0].measured_status == "fail"


def test_each_structure_gets_the_envelope_of_its_scenario_dvhs_around_the_nominal_one() -> None:
    case = synthetic_case()
    masks = {name: structure.mask for name, structure in case.structures.items()}
    x, _, _ = np.meshgrid(*case.grid.axes_mm(), indexing="ij")
    dose = np.where(x < 10.0, 40.0, 0.0)  # the organ's first column enters the field 10 mm towards -x
    protocol = _protocol("robustness: {setup_error: 10 mm, structures: [Organ]}\n")
    (band,) = robustness_record(protocol, dose, masks, case.grid, case.voxel_volume_cc, True, case.voxel_indices).bands
    assert band.structure == "Organ" and band.dose_gy[0] == 0.0 and band.dose_gy[-1] == 40.0
    nominal = DVH.from_dose(dose[masks["Organ"]], case.voxel_volume_cc)
    _, nominal_percent = nominal.curve_by_step(max_dose_gy=40.0)
    assert np.all(np.array(band.volume_min_percent) <= nominal_percent)
    assert np.all(nominal_percent <= np.array(band.volume_max_percent))
    # at 40 Gy: none of the organ nominally, a quarter of it (one of four columns) in the worst scenario
    assert band.volume_min_percent[-1] == 0.0 and band.volume_max_percent[-1] == pytest.approx(25.0)


def test_random_errors_blur_the_dose_of_every_scenario_by_their_standard_deviation() -> None:
    """A 40 Gy field edge at x = 10 mm blurred by sigma = 5 mm (one voxel). Each organ voxel (centres 7.5
    to 22.5 mm beyond the edge) receives 40 Gy times the weight of the sampled, normalized Gaussian that
    lies across the edge; the continuous 40 Gy x (1 - Phi(d / sigma)) is within 20% of that on this grid."""
    from scipy.stats import norm

    case = synthetic_case()
    masks = {name: structure.mask for name, structure in case.structures.items()}
    x, _, _ = np.meshgrid(*case.grid.axes_mm(), indexing="ij")
    dose = np.where(x < 10.0, 40.0, 0.0)
    protocol = _protocol("robustness: {random_error: 5 mm, structures: [Organ]}\n")
    record = robustness_record(protocol, dose, masks, case.grid, case.voxel_volume_cc, True, case.voxel_indices)
    assert record.scenarios_mm == [(0.0, 0.0, 0.0)] and record.random_error_mm == (5.0, 5.0, 5.0)
    assert "blurred by a Gaussian" in record.model
    (organ,) = record.goals
    assert organ.nominal == 0.0  # the planned dose itself is not blurred
    columns = x[masks["Organ"]]  # every organ voxel's x
    steps = np.arange(-4, 5)  # the filter's reach: 4 standard deviations, in voxels
    weights = np.exp(-0.5 * steps**2) / np.exp(-0.5 * steps**2).sum()
    in_field = (columns[:, None] - 5.0 * steps[None, :]) < 10.0  # the voxel k steps towards -x is in the field
    assert organ.scenario_values[0] == pytest.approx(40.0 * (in_field * weights).sum(axis=1).mean(), rel=1e-9)
    assert organ.scenario_values[0] == pytest.approx(40.0 * norm.sf((columns - 10.0) / 5.0).mean(), rel=0.20)
    # With a setup error as well, each shift is applied to the blurred dose, after the unshifted one.
    both = _protocol("robustness: {setup_error: 10 mm, random_error: 5 mm, structures: [Organ]}\n")
    record = robustness_record(both, dose, masks, case.grid, case.voxel_volume_cc, True, case.voxel_indices)
    assert record.scenarios_mm[0] == (0.0, 0.0, 0.0) and len(record.scenarios_mm) == 7
    worst = record.goals[0]
    assert record.scenarios_mm[worst.worst_scenario] == (-10.0, 0.0, 0.0)
    assert worst.worst > 10.0  # the shifted, blurred edge reaches further in than the shift alone (10 Gy)


def test_rotations_turn_the_patient_about_the_isocentre_both_ways_about_each_axis() -> None:
    """Organ centred 25 mm along x from the isocentre, dose rising 1 Gy/mm along y: turned +10 deg about
    z its mean rises by sin(10 deg) x its mean x (a linear map of a linear dose: exact)."""
    case = synthetic_case()
    masks = {name: structure.mask for name, structure in case.structures.items()}
    x, y, _ = np.meshgrid(*case.grid.axes_mm(), indexing="ij")
    dose = 40.0 + y
    protocol = _protocol("robustness: {rotation_error: [0 deg, 0 deg, 10 deg], structures: [Organ]}\n")
    record = robustness_record(protocol, dose, masks, case.grid, case.voxel_volume_cc, True, case.voxel_indices,
                               isocentre_mm=(0.0, 0.0, 0.0))
    assert record.scenario_labels == ["about z +10 deg", "about z -10 deg"]
    assert record.scenario_rotations_deg == [(0.0, 0.0, 10.0), (0.0, 0.0, -10.0)]
    assert record.rotation_centre_mm == (0.0, 0.0, 0.0) and record.rotation_centre == "the beams' isocentre"
    (organ,) = record.goals
    organ_x, organ_y = x[masks["Organ"]].mean(), y[masks["Organ"]].mean()
    turned = 40.0 + np.sin(np.radians(10.0)) * organ_x + np.cos(np.radians(10.0)) * organ_y
    assert organ.scenario_values[0] == pytest.approx(turned, rel=1e-9)
    assert organ.worst_scenario == 0 and organ.worst == pytest.approx(turned)  # the highest, for Mean <= 5 Gy
    # Without an isocentre, about the prescription targets' centre (the sphere at the origin here).
    centred = robustness_record(protocol, dose, masks, case.grid, case.voxel_volume_cc, True, case.voxel_indices)
    assert centred.rotation_centre.startswith("the centre of the prescription targets")
    np.testing.assert_allclose(centred.rotation_centre_mm, (0.0, 0.0, 0.0), atol=1e-9)


def test_scenarios_are_both_ways_along_the_axes_that_have_an_error() -> None:
    assert _protocol('robustness: {setup_error: ["3 mm", "0 mm", "0 mm"]}\n').robustness.offsets_mm == [
        (3.0, 0.0, 0.0), (-3.0, 0.0, 0.0)
    ]
    assert len(_protocol('robustness: {setup_error: ["3 mm", "3 mm", "5 mm"]}\n').robustness.offsets_mm) == 6


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ('robustness: {setup_error: ["3 mm", "3 mm"]}', "expected one distance"),
        ("robustness: {setup_error: 3}", "expected one distance"),
        ("robustness: {setup_error: 3 inch}", 'unknown distance unit "inch"'),
        ("robustness: {setup_error: 0 mm}", "no setup, random or rotation error gives no scenario"),
        ("robustness: {rotation_error: 2}", "expected one angle (\"2 deg\")"),
        ("robustness: {rotation_error: 2 rad}", "unknown angle unit \"rad\""),
        ("robustness: {random_error: 0 mm, optimize: true}", "no setup, random or rotation error gives no scenario"),
        ("robustness: {setup_error: 3 mm, structures: [Orgna]}", 'undefined structure "Orgna"'),
        ("robustness: {setup_error: 3 mm, structures: [Body]}", '"Body" has no goal to measure'),
        ("robustness: {setup_error: 3 mm, structures: []}", "needs at least 1 item"),
        # listed twice: its goals are checked once, and a note read "Target, Target" (audit s18/a2 F6)
        ("robustness: {setup_error: 3 mm, structures: [Target, Organ, Target]}",
         'protocols/robust.yaml:15:61: robustness.structures[2]: "Target" is listed twice: its goals are checked once; '
         "robustness.structures[0] is at protocols/robust.yaml:15:46"),
        # a unit slip, quoted as written (audit s18/a2 F5: "5 cm" read "50 mm ...: cm written as mm")
        ("robustness: {setup_error: 10 cm}", 'robustness.setup_error: setup_error 10 cm (100 mm) is beyond any patient '
                                             'setup (30 mm at most here): "10 cm" written for "10 mm" (mm written as '
                                             "cm), or a typo?"),
        ('robustness: {setup_error: ["3 mm", "3 mm", "0.5cm"], random_error: ["2 mm", "2 mm", "40 mm"]}',
         "robustness.random_error: random_error 40 mm is beyond any patient setup (30 mm at most here): a typo?"),
        ("robustness: {rotation_error: 90 deg}", "rotation_error 90 deg is beyond any patient setup (15 deg at most"),
    ],
)
def test_a_robustness_section_with_an_error_names_its_line(section: str, message: str) -> None:
    with pytest.raises(ProtocolError) as error:
        _protocol(section + "\n")
    assert message in str(error.value) and "protocols/robust.yaml:15:" in str(error.value)


def test_a_plan_reports_the_setup_error_check_in_plan_json_the_report_and_the_terminal(tmp_path) -> None:
    from typer.testing import CliRunner

    from specc.evaluate.record import PlanRecord

    import specc.cli.plan  # noqa: F401  (registers the commands)
    from specc.cli.app import app

    case_path = tmp_path / "case.h5"
    synthetic_case().save(case_path)
    terms = (
        "optimization:\n  terms:\n"
        "    - {kind: quadratic_underdose, structure: Target, dose: 60 Gy, weight: 10}\n"
        "    - {kind: quadratic_overdose, structure: Organ, dose: 10 Gy, weight: 1}\n"
    )
    protocol = tmp_path / "robust.yaml"
    protocol.write_text(HEADER + terms + "robustness: {setup_error: 5 mm, structures: [Target, Organ]}\n")
    result = CliRunner().invoke(app, ["plan", str(protocol), "--case", str(case_path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "Setup error 5/5/5 mm (6 scenarios, worst shown; checked only)" in result.output
    assert "+x left, +y posterior, +z superior" in result.output
    record = json.loads((tmp_path / "out" / "plan.json").read_text())["robustness"]
    labels = ["x +5 mm", "x -5 mm", "y +5 mm", "y -5 mm", "z +5 mm", "z -5 mm"]
    for goal in record["goals"]:  # the scenario where the worst was found is named in the terminal's table
        row = next(line for line in result.output.split("worst shown")[1].splitlines() if goal["text"] in line and "│" in line)
        positions = [goal["nominal"], *goal["scenario_values"]]
        first = next(i for i, value in enumerate(positions) if round(value, 2) == round(goal["worst"], 2))
        assert ["nominal", *labels][first] in row  # a tie lists every position showing the worst value, in order
    counts = ", ".join(f"{n} {status}" for status, n in PlanRecord.model_validate_json(
        (tmp_path / "out" / "plan.json").read_text()).robust_counts().items())
    assert f"worst setup-error scenario: {counts}" in " ".join(result.output.split())  # the summary line, wrapped
    assert record["structures"] == ["Target", "Organ"] and len(record["scenarios_mm"]) == 6
    assert [goal["text"] for goal in record["goals"]] == ["Mean >= 15 Gy", "Max <= 100 Gy", "Mean <= 5 Gy"]
    html = (tmp_path / "out" / "report.html").read_text()
    assert 'id="robustness"' in html and html.count('class="robust-goal"') == 3
    assert "Evaluation only: the plan was optimized on the nominal position" in html
    # the report's DVH draws one band per robustness structure, in its colour
    from specc.report.figures import dvh_figure

    plan_record = PlanRecord.model_validate_json((tmp_path / "out" / "plan.json").read_text())
    assert [band["structure"] for band in record["bands"]] == ["Target", "Organ"]
    from matplotlib.collections import PolyCollection  # a band; the goal markers' glyphs are another collection

    bands = [item for item in dvh_figure(plan_record).axes[0].collections if isinstance(item, PolyCollection)]
    assert len(bands) == 2

    # Random errors as well: a column without a shift, the blur said in the heading and the terminal.
    protocol.write_text(HEADER + terms + "robustness: {setup_error: 5 mm, random_error: 2 mm, structures: [Target]}\n")
    result = CliRunner().invoke(app, ["plan", str(protocol), "--case", str(case_path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "Setup error 5/5/5 mm, random 2/2/2 mm SD (7 scenarios" in result.output
    html = (tmp_path / "out" / "report.html").read_text()
    assert "random error (2.0, 2.0, 2.0) mm SD" in html and "<th>random only</th>" in html


def test_voxels_displaced_beyond_the_computed_dose_are_counted_and_noted() -> None:
    """The organ box reaches x = 32.5 mm, the body x = 38 mm: moved 10 mm along +x, part of it leaves the rows."""
    case = synthetic_case()
    masks = {name: structure.mask for name, structure in case.structures.items()}
    dose = np.zeros(case.grid.shape)
    dose.ravel()[case.voxel_indices] = 30.0  # a plan's dose: none off the case's rows
    protocol = _protocol("robustness: {setup_error: 10 mm, structures: [Organ, Target]}\n")
    record = robustness_record(protocol, dose, masks, case.grid, case.voxel_volume_cc, True, case.voxel_indices)
    def outside_rows(offset_mm):
        return DisplacedVoxels.of(case.grid, masks["Organ"], Displacement(offset_mm=offset_mm)).outside(case.voxel_indices)

    outside = outside_rows((10.0, 0.0, 0.0))
    assert outside > 0 and outside_rows((-10.0, 0.0, 0.0)) == 0
    # the target, 15 mm around the centre, stays inside the body; the organ's last voxels also pass the grid's edge
    note, edge = record.notes
    assert edge.startswith("Organ: some of its") and "past the dose grid's edge" in edge
    assert note.startswith(f"Organ: some of its {int(masks['Organ'].sum())} voxels") and f"{outside} in Organ (x +10 mm)" in note
    organ = next(goal for goal in record.goals if goal.structure == "Organ")
    assert organ.scenario_values[0] < 30.0  # there the grid holds no dose: what the note warns of


def test_the_worst_value_is_over_the_nominal_position_too() -> None:
    """On a 10 mm grid every +-5 mm shift smoothed a hot spot below the nominal: the 'worst' read 82.49 Gy pass
    beside a nominal 87.33 Gy fail."""
    from specc.evaluate.dvh import DVH
    from specc.evaluate.robustness import _goal_record
    from specc.protocol.goals import Goal
    from specc.protocol.units import Dose

    goal = Goal.parse("Max <= 83 Gy", "Organ")
    dvhs = [DVH.from_dose(np.array([40.0, hottest]), 0.125) for hottest in (87.33, 82.49, 80.0)]  # nominal, then shifts
    record = _goal_record(goal, dvhs, Dose(gy=78.0), converged=True, whole=True)
    assert (record.worst, record.worst_scenario, record.measured_status) == (87.33, None, "fail")
    shifted = _goal_record(goal, [dvhs[1], dvhs[0], dvhs[2]], Dose(gy=78.0), converged=True, whole=True)
    assert (shifted.worst, shifted.worst_scenario) == (87.33, 0)  # a scenario worse than the nominal: named
