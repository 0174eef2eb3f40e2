"""Goals in EQD2 / BED measured on the full grid: each voxel converted, then the DVH read."""

from __future__ import annotations

import numpy as np
import pytest
from evaluate_fakes import masks_of, solve_result, synthetic_case

from specc.evaluate import evaluate_plan
from specc.evaluate.robustness import robustness_record
from specc.protocol import parse_protocol_text
from specc.protocol.isoeffect import isoeffective_gy

FRACTIONS, RATIO = 5, 3.0


def _protocol(robustness: str = "", prior: str = ""):
    return parse_protocol_text("\n".join(line for line in [
        "specc: 1", "name: isoeffective", "site: test", "version: 1.0.0",
        "structures:", "  Target: {role: target}", "  Organ: {role: oar, alpha_beta: 3 Gy}", "  Body: {role: other}",
        "prescription:", f"  fractions: {FRACTIONS}", "  levels: [{target: Target, dose: 30 Gy}]", prior,
        "goals:",
        "  Organ: ['Max <= 30 Gy (EQD2)', 'Mean <= 8 Gy (EQD2)', 'V12Gy[%] <= 50 (BED)', 'Max <= 30 Gy']",
        f"robustness: {robustness}" if robustness else "",
    ] if line) + "\n", "protocols/iso.yaml")


def test_each_voxel_is_converted_before_the_metric_is_read() -> None:
    case = synthetic_case()
    protocol = _protocol()
    record = evaluate_plan(protocol, case, masks_of(case), solve_result(case, scale=2.0), {}).record
    dose = case.influence @ np.full(case.n_beamlets, 2.0) * FRACTIONS
    organ = dose[case.rows(case.structures["Organ"].mask)]
    eqd2 = isoeffective_gy(organ, FRACTIONS, RATIO, "EQD2")
    highest, mean, volume, physical = record.goals
    assert highest.value == pytest.approx(float(eqd2.max()), rel=1e-9) and highest.unit == "Gy EQD2"
    # the mean of the voxels' EQD2, above the EQD2 of the mean dose (the conversion is convex)
    assert mean.value == pytest.approx(float(eqd2.mean()), rel=1e-9)
    assert mean.value > float(isoeffective_gy(organ.mean(), FRACTIONS, RATIO, "EQD2")) + 0.01
    bed = isoeffective_gy(organ, FRACTIONS, RATIO, "BED")
    assert volume.value == pytest.approx(100.0 * np.mean(bed >= 12.0)) and volume.unit == "%"
    assert physical.value == pytest.approx(float(organ.max()), rel=1e-9) and physical.unit == "Gy"
    assert (highest.quantity, physical.quantity) == ("EQD2", "physical")
    assert (highest.alpha_beta_gy, physical.alpha_beta_gy) == (3.0, None)
    # 4.6 Gy per fraction: the EQD2 maximum fails where the physical one passes
    assert (highest.status, physical.status) == ("fail", "pass") and 0 < volume.value < 100
    # EQD2 goals have no point on the report's physical DVHs
    assert highest.dvh_point is None and physical.dvh_point is not None
    assert "linear-quadratic model (no time factor), alpha/beta Organ 3 Gy; this plan's dose in its 5 fractions" in (
        " ".join(record.notes))


def test_under_setup_errors_each_scenario_is_converted_and_a_prior_course_from_its_own_fractions() -> None:
    """This plan 1 Gy/mm along x over 5 fractions, the prior course 40 Gy in 20: a scenario's voxel gets the
    EQD2 of this plan's dose 5 mm away plus the EQD2 of the prior dose where it is."""
    case = synthetic_case()
    masks = masks_of(case)
    x, _, _ = np.meshgrid(*case.grid.axes_mm(), indexing="ij")
    own, prior = 20.0 + x, np.full(x.shape, 40.0)
    protocol = _protocol('{setup_error: ["5 mm", "0 mm", "0 mm"], structures: [Organ]}',
                         prior="  prior: {description: earlier course, fractions: 20}")
    record = robustness_record(protocol, own + prior, masks, case.grid, case.voxel_volume_cc, True,
                               case.voxel_indices, fixed_gy=prior)
    organ = masks["Organ"]
    prior_eqd2 = float(isoeffective_gy(40.0, 20, RATIO, "EQD2"))
    highest = next(goal for goal in record.goals if goal.text == "Max <= 30 Gy (EQD2)")
    top = float(own[organ].max())
    assert highest.nominal == pytest.approx(float(isoeffective_gy(top, FRACTIONS, RATIO, "EQD2")) + prior_eqd2)
    np.testing.assert_allclose(
        highest.scenario_values,
        [float(isoeffective_gy(top + shift, FRACTIONS, RATIO, "EQD2")) + prior_eqd2 for shift in (5.0, -5.0)],
        rtol=1e-9,
    )
    assert highest.unit == "Gy EQD2"
    physical = next(goal for goal in record.goals if goal.text == "Max <= 30 Gy")
    assert physical.nominal == pytest.approx(top + 40.0)
