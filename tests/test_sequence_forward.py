"""Forward-planned segments: shaped from the targets' and organs' beam's-eye-view projections."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from optimizer_fixtures import c_shape
from specc.case import Beam
from specc.case.engine import BeamFrame, filling_points
from specc.case.neighbours import BeamGrid
from specc.sequence import SequenceError
from specc.sequence.forward import forward_sequence, projection
from specc.sequence.segments import beam_grids_of


def _masks(case):
    return {name: structure.mask for name, structure in case.structures.items()}


def _open_cells(beam) -> np.ndarray:
    """(segments, cells of the beam grid [ix, iy]) which beamlets each segment leaves open."""
    return beam.apertures.openings(beam.grid.cells.shape[0]).transpose(0, 2, 1)


def test_segments_open_only_the_target_projection_and_one_of_them_blocks_the_core() -> None:
    case = c_shape()
    sequence = forward_sequence(case, _masks(case), ["PTV"], ["Core"])
    frames = {beam.id: BeamFrame.of(beam) for beam in case.beams}
    ptv = filling_points(case.structures["PTV"].mask, case.grid, 2.0)
    core = filling_points(case.structures["Core"].mask, case.grid, 2.0)
    grids = {grid.beam: grid for grid in beam_grids_of(case.beamlets)}
    assert sorted(beam.beam for beam in sequence.beams) == sorted(grids)
    for beam in sequence.beams:
        grid = grids[beam.beam]
        present = grid.cells >= 0
        target = projection(frames[beam.beam], grid, ptv) & present
        organ = projection(frames[beam.beam], grid, core) & present
        opened = _open_cells(beam)
        assert not (opened & ~target).any()  # nothing outside the target's projection
        assert np.array_equal(opened.any(axis=0), target)  # the whole projection is some segment's
        if (target & organ).any():  # the core shades the target: some segment spares it
            assert any(not (segment & organ).any() for segment in opened)
        edges = np.concatenate([beam.apertures.left, beam.apertures.right], axis=1)
        assert len(np.unique(edges, axis=0)) == len(edges)  # each aperture once
    np.testing.assert_array_equal(sequence.weights, 1.0)


def test_a_beam_geometry_that_disagrees_with_the_influence_matrix_is_refused() -> None:
    case = c_shape()
    influence = case.influence.tolil()
    rows = case.rows(case.structures["PTV"].mask)
    influence[np.ix_(rows, case.beamlets.of_beam(1))] = 0.0  # beam 1's beamlets no longer reach the target
    broken = dataclasses.replace(case, influence=influence.tocsr())
    with pytest.raises(SequenceError, match="beam 1: most beamlets .* put no dose in it"):
        forward_sequence(broken, _masks(broken), ["PTV"], ["Core"])


def test_targets_outside_every_beam_leave_no_field_to_shape() -> None:
    case = c_shape()
    far = [dataclasses.replace(beam, isocenter_mm=tuple(c + 500.0 for c in beam.isocenter_mm)) for beam in case.beams]
    moved = dataclasses.replace(case, beams=far)
    with pytest.raises(SequenceError, match="no field to shape"):
        forward_sequence(moved, _masks(moved), ["PTV"], [])


def test_each_of_several_targets_gets_a_field_of_its_own() -> None:
    case = c_shape()  # the core stands in for a second target, nested in the first one's projection
    sequence = forward_sequence(case, _masks(case), ["PTV", "Core"], [])
    frames = {beam.id: BeamFrame.of(beam) for beam in case.beams}
    core = filling_points(case.structures["Core"].mask, case.grid, 2.0)
    grids = {grid.beam: grid for grid in beam_grids_of(case.beamlets)}
    for beam in sequence.beams:
        own = projection(frames[beam.beam], grids[beam.beam], core) & (grids[beam.beam].cells >= 0)
        assert any(np.array_equal(segment, own) for segment in _open_cells(beam)), beam.beam


def test_an_aperture_margin_grows_the_field_by_whole_beamlets_at_the_isocentre() -> None:
    """10 mm beamlets: a 10 mm margin opens every beamlet next to the projection (in x and y), a 4 mm one
    no beamlet whose centre lies 10 mm out; the projection without margin stays inside both."""
    case = c_shape()
    frames = {beam.id: BeamFrame.of(beam) for beam in case.beams}
    ptv = filling_points(case.structures["PTV"].mask, case.grid, 2.0)
    for grid in beam_grids_of(case.beamlets):
        bare = projection(frames[grid.beam], grid, ptv)
        grown = projection(frames[grid.beam], grid, ptv, margin_mm=10.0)
        small = projection(frames[grid.beam], grid, ptv, margin_mm=4.0)
        assert not (bare & ~small).any() and not (small & ~grown).any()
        neighbours = bare.copy()
        neighbours[1:, :] |= bare[:-1, :]
        neighbours[:-1, :] |= bare[1:, :]
        neighbours[:, 1:] |= bare[:, :-1]
        neighbours[:, :-1] |= bare[:, 1:]
        assert (neighbours <= grown).all() and (grown & ~bare).any()
        assert not (small & ~bare & ~neighbours).any()  # 4 mm never reaches a second ring of beamlets
    with_margin = forward_sequence(case, _masks(case), ["PTV"], ["Core"], margin_mm=10.0)
    without = forward_sequence(case, _masks(case), ["PTV"], ["Core"])
    assert with_margin.apertures.sum() > without.apertures.sum()


@pytest.mark.parametrize(("edge_mm", "opened_mm"), [(9.6, [-10, -5, 0, 5, 10]), (9.4, [-5, 0, 5])])
def test_a_beamlet_is_open_where_the_projection_reaches_within_a_tenth_of_a_beamlet_of_its_centre(
    edge_mm: float, opened_mm: list[int]
) -> None:
    """The documented rule (docs/delivery.md, forward planning), not "the central ray crosses": 5 mm
    beamlets, a slab in the isocentre plane ending at x = ±9.6 mm opens the beamlets centred at
    ±10 mm, whose rays miss it by 0.4 mm (their raster pixel, ±0.5 mm around the centre, holds
    its points); ending at ±9.4 mm, the rays missing by 0.6 mm, it does not."""
    frame = BeamFrame.of(Beam(id=1, gantry_deg=0.0))  # the isocentre plane is y = 0; X_b = +x, Y_b = +z
    grid = BeamGrid(beam=1, cells=np.arange(121).reshape(11, 11), x0_mm=-25.0, y0_mm=-25.0, pitch_x_mm=5.0, pitch_y_mm=5.0)
    x, z = np.meshgrid(np.linspace(-edge_mm, edge_mm, 21), np.linspace(-12.0, 12.0, 25), indexing="ij")  # < 1 mm apart
    points = np.column_stack([x.ravel(), np.zeros(x.size), z.ravel()])
    inside = projection(frame, grid, points)
    centres = grid.x0_mm + grid.pitch_x_mm * np.arange(11)
    assert [int(c) for c in centres[inside.any(axis=1)]] == opened_mm
    assert [int(c) for c in (grid.y0_mm + grid.pitch_y_mm * np.arange(11))[inside.any(axis=0)]] == [-10, -5, 0, 5, 10]
