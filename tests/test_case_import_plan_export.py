"""A plan export's ROIs that have no voxel on the evaluation grid: one wholly outside the RT Dose grid is told
apart from one smaller than a voxel, with the reason `specc check --case --dose` gives such a structure."""

from __future__ import annotations

import numpy as np
from interop_fixtures import CircleRoi, CtGeometry, body_hu, standard_rois, write_ct_series, write_rtdose_file, write_rtstruct

from specc.case.importers.plan_export import read_plan_export

# The RT Dose covers CT slices 1..10 of 12 (z -12..15 mm); "Distant" lies on the last slice alone, "Speck" inside.
DOSE_ORIGIN = (-40.0, -40.0, -12.0)
DOSE_SPACING = (2.5, 2.5, 3.0)


def test_a_roi_wholly_outside_the_dose_grid_is_returned_with_why_it_has_no_dose(tmp_path):
    """It was left out as 'outside the dose grid, or smaller than a voxel' and nothing else, so a goal on it was an
    error naming no structure of the case, or 'not contoured' where marked if_contoured (the wrong reason)."""
    geometry = CtGeometry()
    z = geometry.z()
    rois = [*standard_rois(geometry), CircleRoi("Distant", 0.0, 0.0, 8.0, z[-1], z[-1], (0, 0, 255)),
            CircleRoi("Speck", 0.3, 0.3, 0.2, z[5], z[5], (0, 255, 255))]
    write_ct_series(tmp_path, geometry, body_hu(geometry))
    write_rtstruct(tmp_path / "RS.dcm", geometry, rois)
    write_rtdose_file(tmp_path / "RD.dcm", np.full((33, 32, 10), 20.0), DOSE_ORIGIN, DOSE_SPACING)

    exported = read_plan_export(tmp_path, 30)

    assert "Distant" not in exported.case.structures and "Speck" not in exported.case.structures
    # the dose grid's lattice points within its 8 mm radius (none lies within 0.1 mm of the contour)
    voxels = int(np.count_nonzero(np.hypot(*np.meshgrid(-40 + 2.5 * np.arange(33), -40 + 2.5 * np.arange(32), indexing="ij")) < 8.0))
    assert exported.outside_grid == {"Distant": f"all its voxels ({voxels}) lie outside the dose grid of RD.dcm: they have no dose"}
    assert f"ROI Distant: all its voxels ({voxels}) lie outside the dose grid of RD.dcm: they have no dose; left out" in exported.left_out
    speck = [text for text in exported.left_out if text.startswith("ROI Speck:")]
    assert speck == ["ROI Speck: no voxel centre of the 2.5 x 2.5 x 3 mm evaluation grid lies inside it "
                     "(smaller than a voxel: a finer --grid samples it); left out"]
    assert exported.incomplete.keys() == {"External", "Spinal Cord"}  # partly outside, as before
