"""A plan's beamlet fluence as step-and-shoot MLC segments on the case's beamlet grid.

Leaf pairs are the rows of a beam's beamlet grid (one beamlet height each, along IEC Y_b) and
leaves travel along its columns (IEC X_b), so a leaf can stop at every beamlet edge. Each
beam's fluence is rounded to `levels` equal quanta of its own largest beamlet weight, and the
rounded map is sequenced (`fewest`: few segments of the least quanta, by default; or `sweep`:
leaves moving one way). The delivered fluence is then exactly the apertures'
sum: what the plan is evaluated on. Cells with no beamlet in the case carry no dose
information; no segment opens them, since a cell is open only where its rounded fluence
is positive (in both sequencers). Forward-planned shapes (`forward`) become segments through the same grid and
aperture matrix (`beam_grids_of`, `assemble`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from specc.case import Beamlets, Case
from specc.case.neighbours import BeamGrid, beam_grids
from specc.errors import SpeccError
from specc.sequence.fewest import fewest_apertures
from specc.sequence.sweep import Apertures, sweep_apertures


def leaf_pair_centres_mm(grid: BeamGrid) -> np.ndarray:
    """Where a beam's leaf pairs are centred, in mm: on its beamlet rows. One formula for the writer of
    segments.json and its checker (`specc.export.segments.geometry_mismatch`), so neither refuses the other."""
    return grid.y0_mm + grid.pitch_y_mm * np.arange(grid.cells.shape[1])


def first_beamlet_edge_mm(grid: BeamGrid) -> float:
    """The x of a beam's first beamlet edge, in mm, where leaf tips are counted from (every tip stops on an edge,
    `pitch_x_mm` apart): shared by the writer of the tips and their checker, as `leaf_pair_centres_mm` is."""
    return grid.x0_mm - grid.pitch_x_mm / 2


class SequenceError(SpeccError):
    """A plan that cannot be sequenced into MLC segments (beamlet geometry, levels)."""


@dataclass(frozen=True)
class BeamSegments:
    """One beam's segments: leaf edges in mm, and each segment's fluence weight.

    `weights[s]` is segment s's beamlet weight per fraction in the case's fluence unit: as cut,
    its quanta times the beam's quantum (a sequenced fluence) or 1 (a forward shape); after a
    weight optimization, its result. Leaf pair r is centred on `leaf_y_mm[r]`.
    """

    beam: int
    grid: BeamGrid
    apertures: Apertures
    weights: np.ndarray

    @property
    def leaf_y_mm(self) -> np.ndarray:
        return leaf_pair_centres_mm(self.grid)

    def areas_cm2(self) -> np.ndarray:
        """Each segment's open area at the isocentre plane: its leaf pairs' gaps times their width,
        summed over its separate openings (`opening_areas_cm2` gives each)."""
        return self._gaps_cm2().sum(axis=1)

    def opening_areas_cm2(self) -> list[np.ndarray]:
        """Per segment, the area in cm² of each of its separate openings (`Apertures.opening_labels`),
        from the first leaf pair's side. Small-field output and leaf-position error are each
        opening's: eight 5 x 5 mm holes are eight 0.25 cm² fields, not one of 2 cm²."""
        labels = self.apertures.opening_labels()
        return [np.bincount(label, weights=gaps)[1:] for label, gaps in zip(labels, self._gaps_cm2())]

    def smallest_openings_cm2(self) -> np.ndarray:
        """Each segment's smallest separate opening in cm² (0 for a segment with none)."""
        return np.array([areas.min() if areas.size else 0.0 for areas in self.opening_areas_cm2()])

    def _gaps_cm2(self) -> np.ndarray:
        """(segments, leaf pairs): each pair's gap times the leaf width, in cm²."""
        gaps = np.maximum(self.apertures.right - self.apertures.left, 0)
        return gaps * self.grid.pitch_x_mm * self.grid.pitch_y_mm / 100.0

    def leaf_edges_mm(self) -> tuple[np.ndarray, np.ndarray]:
        """(left, right) leaf tip positions in mm, (segments, leaf pairs); NaN for a closed pair."""
        edge0 = first_beamlet_edge_mm(self.grid)
        closed = self.apertures.right <= self.apertures.left
        left = np.where(closed, np.nan, edge0 + self.grid.pitch_x_mm * self.apertures.left)
        right = np.where(closed, np.nan, edge0 + self.grid.pitch_x_mm * self.apertures.right)
        return left, right


@dataclass(frozen=True)
class ClosedOpenings:
    """What `Sequence.without_openings_below` did, for the plan's notes: openings closed and in how
    many segments; segments removed as left with no opening, or merged into an earlier one of their
    beam that they were left the same as; the smallest and largest opening found before."""

    openings: int
    segments: int
    emptied: int
    merged: int
    smallest_cm2: float
    largest_cm2: float


@dataclass(frozen=True)
class Sequence:
    """Every beam's segments and the (beamlets x segments) aperture matrix S: fluence = S w."""

    beams: list[BeamSegments]
    levels: int | None  # intensity levels of a sequenced fluence; None for forward-planned shapes
    sequencing: str | None  # the sequencer of a sequenced fluence (`SEQUENCERS`); None for forward-planned shapes
    apertures: sp.csc_matrix

    @property
    def weights(self) -> np.ndarray:
        return np.concatenate([beam.weights for beam in self.beams]) if self.beams else np.zeros(0)

    def fluence(self, weights: np.ndarray | None = None) -> np.ndarray:
        """The beamlet fluence the segments deliver (with `weights`, or their own)."""
        return self.apertures @ (self.weights if weights is None else weights)

    def areas_cm2(self) -> np.ndarray:
        """Each segment's opening in cm², in `apertures`' column order."""
        return np.concatenate([beam.areas_cm2() for beam in self.beams]) if self.beams else np.zeros(0)

    def with_weights(self, weights: np.ndarray) -> Sequence:
        """The same apertures with new weights (in `apertures`' column order)."""
        beams, start = [], 0
        for beam in self.beams:
            stop = start + len(beam.weights)
            beams.append(BeamSegments(beam.beam, beam.grid, beam.apertures, np.asarray(weights[start:stop], dtype=float)))
            start = stop
        return Sequence(beams, self.levels, self.sequencing, self.apertures)

    def without_openings_below(self, minimum_cm2: float) -> tuple[Sequence, ClosedOpenings]:
        """The segments with every opening smaller than `minimum_cm2` closed (`opening_areas_cm2`),
        and what that did.

        The MLC closes such an opening (its leaf pairs meet) and opens the rest of the segment as
        before. A segment left with no opening delivers nothing and is removed; one left the same as
        an earlier segment of its beam is merged into it (weights and quanta summed), so that the
        fluence of everything kept is unchanged. A beam left without segments has none."""
        beams: list[BeamSegments] = []
        found: list[np.ndarray] = []
        closed = in_segments = emptied = merged = 0
        for beam in self.beams:
            left, right = beam.apertures.left.copy(), beam.apertures.right.copy()
            labels = beam.apertures.opening_labels()
            for index, areas in enumerate(beam.opening_areas_cm2()):
                found.append(areas)
                small = np.flatnonzero(areas < minimum_cm2) + 1  # their labels
                if small.size:
                    closed, in_segments = closed + small.size, in_segments + 1
                    shut = np.isin(labels[index], small)
                    left[index, shut] = right[index, shut] = 0  # closed pairs parked at 0, as the sequencers park them
            kept: dict[tuple[bytes, bytes], int] = {}  # aperture -> its index among the beam's kept segments
            order: list[int] = []
            weights: list[float] = []
            quanta: list[int] = []
            for index in range(len(beam.weights)):
                if not (right[index] > left[index]).any():
                    emptied += 1
                    continue
                key = (left[index].tobytes(), right[index].tobytes())
                if key in kept:
                    merged += 1
                    weights[kept[key]] += float(beam.weights[index])
                    quanta[kept[key]] += int(beam.apertures.quanta[index])
                    continue
                kept[key] = len(order)
                order.append(index)
                weights.append(float(beam.weights[index]))
                quanta.append(int(beam.apertures.quanta[index]))
            if order:
                apertures = Apertures(left[order], right[order], np.asarray(quanta, dtype=np.int64))
                beams.append(BeamSegments(beam.beam, beam.grid, apertures, np.asarray(weights)))
        areas = np.concatenate(found) if found else np.zeros(0)
        done = ClosedOpenings(
            closed, in_segments, emptied, merged,
            float(areas.min()) if areas.size else 0.0, float(areas.max()) if areas.size else 0.0,
        )
        return assemble(beams, self.apertures.shape[0], self.levels, self.sequencing), done

    def without_empty(self) -> Sequence:
        """The segments that deliver something (a weight optimization may zero some)."""
        keep_columns: list[int] = []
        beams, start = [], 0
        for beam in self.beams:
            kept = np.flatnonzero(beam.weights > 0)
            keep_columns.extend((start + kept).tolist())
            start += len(beam.weights)
            if len(kept):
                apertures = Apertures(beam.apertures.left[kept], beam.apertures.right[kept], beam.apertures.quanta[kept])
                beams.append(BeamSegments(beam.beam, beam.grid, apertures, beam.weights[kept]))
        return Sequence(beams, self.levels, self.sequencing, self.apertures[:, keep_columns].tocsc())


def check_sequenceable(case: Case) -> None:
    """Refuse, before any solve, a case whose beamlets cannot stand for MLC leaf positions."""
    if not case.metadata.beamlet_positions_known:
        raise SequenceError(
            f"case {case.case_id!r}: its beamlet positions are unknown (the importer laid the beamlets out itself, "
            "see the case notes), so its fluence cannot be sequenced into MLC segments; "
            "import it with its beam geometry (matRad: with stf) or plan it with `technique: fluence`"
        )
    beam_grids_of(case.beamlets)


def beam_grids_of(beamlets: Beamlets) -> list[BeamGrid]:
    purpose = "its MLC leaf pairs and leaf stops cannot be placed for sequencing"
    return beam_grids(beamlets.beam_id, beamlets.x_mm, beamlets.y_mm, beamlets.width_mm, beamlets.height_mm, purpose)


def _beam_maps(beamlets: Beamlets, values: np.ndarray) -> list[tuple[BeamGrid, np.ndarray]]:
    """Each beam's grid and `values` (one per beamlet) on it as (leaf pairs, cells along the leaves); 0 off the beam."""
    maps = []
    for grid in beam_grids_of(beamlets):
        cells = grid.cells.T  # rows: leaf pairs (y); columns: leaf travel (x)
        present = cells >= 0
        maps.append((grid, np.where(present, values[np.where(present, cells, 0)], 0)))
    return maps


def assemble(beams: list[BeamSegments], n_beamlets: int, levels: int | None, sequencing: str | None) -> Sequence:
    """The sequence of `beams`' segments, with its (beamlets x segments) aperture matrix."""
    columns: list[np.ndarray] = []
    for beam in beams:
        cells = beam.grid.cells.T
        for segment in beam.apertures.openings(cells.shape[1]):
            columns.append(cells[segment])
    rows = np.concatenate(columns) if columns else np.zeros(0, dtype=np.int64)
    segment_of_row = np.repeat(np.arange(len(columns)), [len(c) for c in columns])
    matrix = sp.csc_matrix((np.ones(len(rows)), (rows, segment_of_row)), shape=(n_beamlets, len(columns)))
    return Sequence(beams, levels, sequencing, matrix)


# Both give the least quanta a map can be delivered in; they differ in segments and leaf motion.
SEQUENCERS = {"fewest_segments": fewest_apertures, "sweep": sweep_apertures}


def sequence_fluence(beamlets: Beamlets, fluence: np.ndarray, levels: int, sequencing: str = "fewest_segments") -> Sequence:
    """Round each beam's fluence to `levels` quanta of its largest weight and sequence it (`SEQUENCERS`)."""
    if levels < 1:
        raise SequenceError(f"intensity levels must be at least 1, got {levels}")
    fluence = np.asarray(fluence, dtype=np.float64)
    if fluence.shape != (len(beamlets),):
        raise SequenceError(f"the fluence has {fluence.size} beamlet weights, the case {len(beamlets)} beamlets")
    beams: list[BeamSegments] = []
    for grid, beam_fluence in _beam_maps(beamlets, fluence):
        top = float(beam_fluence.max())
        if top <= 0:
            continue  # a beam the plan does not use has no segment
        quantum = top / levels
        apertures = SEQUENCERS[sequencing](np.rint(beam_fluence / quantum).astype(np.int64))
        beams.append(BeamSegments(grid.beam, grid, apertures, apertures.quanta * quantum))
    return assemble(beams, len(beamlets), levels, sequencing)
