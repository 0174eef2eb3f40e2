"""The report's figures read on paper: a target's contour is not hidden under a helper's, and a greyscale print still
tells DVH curves, isodose levels and goal verdicts apart (audit s21/p1 F2, F5)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from evaluate_fakes import masks_of, protocol, solve_result, synthetic_case
from matplotlib.contour import ContourSet
from matplotlib.lines import Line2D
from matplotlib.markers import MarkerStyle

from specc.evaluate import PlanRecord, evaluate_plan
from specc.protocol import parse_protocol_text
from specc.report.figures import (
    HELPER, ORGAN, STATUS_GLYPHS, TARGET, dvh_figure, dvh_line_styles, slices_figure, structure_parts,
)
from specc.report.identity import record_json

_GOALS = {"Target": ["D95% >= 50 Gy", "D2% <= 52 Gy"], "Organ": ["Max <= 70 Gy"]}


@pytest.fixture(scope="module")
def planned():
    case = synthetic_case()
    masks = masks_of(case)
    evaluation = evaluate_plan(protocol(_GOALS), case, masks, solve_result(case, scale=0.8), {})
    return case, masks, evaluation


def _dashes(line: Line2D) -> tuple:
    """A line's dash pattern as set (matplotlib names every custom pattern "--"; it keeps the pattern only here)."""
    offset, pattern = line._unscaled_dash_pattern
    return offset, tuple(pattern or ())


def _contours(axes) -> list[ContourSet]:
    return [artist for artist in axes.get_children() if isinstance(artist, ContourSet)]


def test_the_target_contour_is_drawn_last_and_thickest_over_a_ring_on_its_edge(planned) -> None:
    """A ring starting in the voxel next to its PTV has its contour on the PTV's: drawn after it (the masks' order),
    it covered the PTV in every plane while the legend listed PTV. The rule is the structures' part in the plan
    (a prescription target; a structure no goal judges), not their names."""
    case, masks, evaluation = planned
    target = masks["Target"]
    grown = target | np.roll(target, 1, 0) | np.roll(target, -1, 0) | np.roll(target, 1, 1) | np.roll(target, -1, 1)
    ring_first = {"Ring": grown & ~target, **masks}  # given before the target, as a protocol may list it
    colors = {s.structure: s.color for s in evaluation.record.structures}
    figure = slices_figure(evaluation.record, case, evaluation.dose, ring_first)
    axial = figure.axes[0]
    structure_sets = [contour for contour in _contours(axial) if len(contour.levels) == 1]
    widths = {}
    for contour in structure_sets:
        color = "#{:02x}{:02x}{:02x}".format(*(round(255 * c) for c in contour.get_edgecolor()[0][:3]))
        widths[color] = float(contour.get_linewidth()[0])
    drawn_last = structure_sets[-1]
    last_color = "#{:02x}{:02x}{:02x}".format(*(round(255 * c) for c in drawn_last.get_edgecolor()[0][:3]))
    assert last_color == colors["Target"]
    assert drawn_last.get_zorder() >= max(contour.get_zorder() for contour in structure_sets)
    assert widths[colors["Target"]] > widths[colors["Organ"]] > widths["#ffffff"]  # the ring: no goal, thinnest
    legend = {text.get_text(): handle for text, handle in
              zip(figure.axes[3].get_legend().get_texts(), figure.axes[3].get_legend().legend_handles)}
    assert legend["Target"].get_linewidth() == widths[colors["Target"]]
    assert legend["Ring"].get_linewidth() == widths["#ffffff"]


def test_isodose_levels_differ_by_dash_pattern_not_by_colour_alone(planned) -> None:
    case, masks, evaluation = planned
    figure = slices_figure(evaluation.record, case, evaluation.dose, masks)
    (isodoses,) = [contour for contour in _contours(figure.axes[0]) if len(contour.levels) > 1]
    patterns = [(offset, tuple(dashes) if dashes is not None else None) for offset, dashes in isodoses.get_linestyle()]
    assert len(set(patterns)) == len(patterns) > 1
    assert all(dashes for _, dashes in patterns)  # dashed, as no contour is
    keys = [handle for handle in figure.axes[3].get_legend().legend_handles if "%" in handle.get_label()]
    assert len({_dashes(handle) for handle in keys}) == len(keys) == 5


def test_dvh_curves_of_one_colour_have_line_styles_of_their_own(planned) -> None:
    """A protocol may give two structures one grey (Body and NormalTissue, #c8c8c8): the curves were identical."""
    _, _, evaluation = planned
    record = evaluation.record
    grey = record.model_copy(update={"structures": [s.model_copy(update={"color": "#c8c8c8"}) for s in record.structures]})
    curves = {line.get_label(): line for line in dvh_figure(grey).axes[0].get_lines() if len(line.get_xdata()) > 1}
    assert set(curves) == {s.structure for s in record.structures}
    styles = {(_dashes(line), line.get_linewidth()) for line in curves.values()}
    assert len(styles) == len(curves)
    assert curves["Target"].get_linestyle() == "-" and curves["Target"].get_linewidth() == max(
        line.get_linewidth() for line in curves.values())


def test_a_goal_markers_verdict_is_marked_inside_it_not_only_by_its_edge_colour(planned) -> None:
    _, _, evaluation = planned
    record = evaluation.record
    statuses = {goal.text: goal.status for goal in record.goals if goal.dvh_point is not None}
    assert {"pass", "fail"} <= set(statuses.values())  # the plan fails D2% <= 52 Gy and passes others
    axes = dvh_figure(record).axes[0]
    points = {goal.dvh_point: goal.status for goal in record.goals if goal.dvh_point is not None}
    glyphs = {}
    for collection in axes.collections:
        shape = collection.get_paths()[0]
        for x, y in collection.get_offsets():
            glyphs[(float(x), float(y))] = shape
    expected = {point: status for point, status in points.items() if status != "pass"}
    assert set(glyphs) == set(expected)
    for point, status in expected.items():
        marker = MarkerStyle(STATUS_GLYPHS[status])
        assert np.allclose(glyphs[point].vertices, marker.get_path().transformed(marker.get_transform()).vertices)
    keys = [text.get_text() for text in axes.get_legend().get_texts()]
    assert "goal FAIL or NOT CONVERGED" in keys
    assert all(isinstance(handle, Line2D) or len(handle) == 2 for handle in axes.get_legend().legend_handles)


_ROLES_PROTOCOL = """\
specc: 1
name: Roles
site: test
version: 1.0.0
structures:
  Target: {role: target, color: '#d62728'}
  CTV: {role: target, color: '#ff7f0e'}
  Organ: {role: oar, color: '#1f77b4'}
  Quiet: {role: oar, color: '#2ca02c'}
  Body: {role: other, color: '#7f7f7f'}
  Ring: {role: other, color: '#9467bd'}
prescription: {fractions: 30, levels: [{target: Target, dose: 60 Gy}]}
goals:
  Target: ['D95% >= 50 Gy']
  CTV: ['D98% >= 50 Gy']
  Organ: ['Max <= 70 Gy']
"""


@pytest.fixture(scope="module")
def with_roles():
    """A target without a dose level (a boost's CTV, judged by a goal), an organ no goal judges, and a ring."""
    case = synthetic_case()
    masks = masks_of(case)
    target = masks["Target"]
    inner = target & np.roll(target, 1, 0) & np.roll(target, -1, 0) & np.roll(target, 1, 1) & np.roll(target, -1, 1)
    grown = target | np.roll(target, 1, 0) | np.roll(target, -1, 0) | np.roll(target, 1, 1) | np.roll(target, -1, 1)
    quiet = np.roll(masks["Organ"], -12, 0)  # on the target's other side, cut by the axial plane too
    masks = {"Ring": grown & ~target, "Target": target, "CTV": inner, "Organ": masks["Organ"], "Quiet": quiet,
             "Body": masks["Body"]}
    protocol = parse_protocol_text(_ROLES_PROTOCOL, "protocols/roles.yaml")
    evaluation = evaluate_plan(protocol, case, masks, solve_result(case, scale=0.8), {})
    return case, masks, evaluation


def _contour_widths(figure) -> list[tuple[str, float]]:
    """(colour, width) of each structure contour of the axial plane, in the order drawn."""
    return [("#{:02x}{:02x}{:02x}".format(*(round(255 * c) for c in contour.get_edgecolor()[0][:3])),
             float(contour.get_linewidth()[0]))
            for contour in _contours(figure.axes[0]) if len(contour.levels) == 1]


def test_a_target_without_a_dose_level_is_drawn_as_a_target_and_an_organ_without_goals_as_an_organ(with_roles) -> None:
    """The record held no roles, so a CTV without a dose level was drawn as an organ (judged by a goal) under its PTV
    level's contour, and an organ at risk no goal judges as thinly as a helper ring."""
    case, masks, evaluation = with_roles
    colors = {s.structure: s.color for s in evaluation.record.structures}
    parts = structure_parts(evaluation.record, masks)
    assert parts == {"Ring": HELPER, "Target": TARGET, "CTV": TARGET, "Organ": ORGAN, "Quiet": ORGAN, "Body": HELPER}
    drawn = _contour_widths(slices_figure(evaluation.record, case, evaluation.dose, masks))
    width = dict(drawn)
    assert width[colors["CTV"]] == width[colors["Target"]] > width[colors["Organ"]] == width[colors["Quiet"]] \
        > width[colors["Ring"]] == width[colors["Body"]]
    order = [color for color, _ in drawn]
    assert max(order.index(colors[name]) for name in ("Ring", "Body")) < min(
        order.index(colors[name]) for name in ("Organ", "Quiet")) < order.index(colors["CTV"])
    assert order[-2:] == [colors["CTV"], colors["Target"]]  # the targets last, the one with the level on top
    styles = dvh_line_styles(evaluation.record)
    assert styles["CTV"][1] == styles["Target"][1] > styles["Quiet"][1]


def test_a_plan_json_written_before_roles_were_recorded_reads_and_renders(with_roles) -> None:
    """Without roles the parts are read from the rest of the record: a level's target, a structure a goal judges."""
    case, masks, evaluation = with_roles
    written = json.loads(record_json(evaluation.record))
    for structure in written["structures"]:
        del structure["role"]
    older = PlanRecord.model_validate_json(json.dumps(written))
    assert {structure.role for structure in older.structures} == {None}
    assert structure_parts(older, masks) == {"Ring": HELPER, "Target": TARGET, "CTV": ORGAN, "Organ": ORGAN,
                                              "Quiet": HELPER, "Body": HELPER}
    slices = slices_figure(older, case, evaluation.dose, masks)
    target_color = next(s.color for s in older.structures if s.structure == "Target")
    assert dict(_contour_widths(slices))[target_color] == max(width for _, width in _contour_widths(slices))
    assert {line.get_label() for line in dvh_figure(older).axes[0].get_lines()} >= set(masks)
