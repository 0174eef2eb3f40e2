"""`dose_bounds`: the per-voxel dose limits a term imposes, as the protocol stage reads them."""

from __future__ import annotations

import pytest

from specc.protocol.units import Dose
from specc.terms import DVH, MaxDose, MeanDose, MinDose, QuadraticOverdose, Smoothness, UniformDose

GY_70 = Dose.parse("70 Gy")


def test_hard_min_and_max_bound_every_voxel() -> None:
    assert MinDose(structure="CTV", dose=GY_70).dose_bounds() == (GY_70, None)
    assert MaxDose(structure="Cord", dose=GY_70).dose_bounds() == (None, GY_70)


@pytest.mark.parametrize(
    "term",
    [
        MinDose(structure="CTV", dose=GY_70, hard=False, weight=1.0),  # a penalty leaves voxels free
        MaxDose(structure="Cord", dose=GY_70, hard=False, weight=1.0),
        MeanDose(structure="Parotid", max=GY_70),  # bounds the mean, not each voxel
        DVH(structure="Rectum", dose=GY_70, volume="20%", bound="upper"),
        UniformDose(structure="PTV", dose=GY_70, weight=1.0),
        QuadraticOverdose(structure="Bladder", dose=GY_70, weight=1.0),
        Smoothness(weight=0.1),
    ],
    ids=lambda term: term.label(),
)
def test_other_terms_bound_no_voxel(term) -> None:
    assert term.dose_bounds() == (None, None)
