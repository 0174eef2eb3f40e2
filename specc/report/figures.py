"""The report's figures, drawn with matplotlib as vector SVG.

Figures are embedded as `data:image/svg+xml` images: self-contained, vector in the PDF, and
sandboxed (an SVG inside <img> runs no script, whatever a structure name contains).
Display conventions follow radiotherapy practice in DICOM patient coordinates (LPS):
axial slices with the patient's left on the right and anterior up, coronal with superior
up, sagittal with anterior on the left and superior up.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.markers import MarkerStyle
from matplotlib.patches import Patch

from specc.evaluate.record import PlanRecord

if TYPE_CHECKING:
    from specc.case import Case

# Isodose lines in % of the highest prescription (issue 4), their colours, and a dash pattern each, so that a
# greyscale print (the clinic files one) still tells the levels apart; no isodose is solid, as no contour is dashed.
ISODOSE_PERCENTS = (50, 80, 95, 100, 107)
_ISODOSE_COLORS = ("#2c7bb6", "#00a6ca", "#90eb9d", "#f9d057", "#d7191c")
ISODOSE_DASHES = ((0, (1, 1.5)), (0, (4, 1.5, 1, 1.5)), (0, (3, 2)), (0, (7, 2)), (0, (7, 1.5, 1, 1.5, 1, 1.5)))
_ISODOSE_WIDTHS = (1.0, 1.0, 1.2, 1.6, 1.2)  # the prescription isodose the heaviest
# The colour wash starts at this fraction of the highest prescription, so that low dose
# does not hide the anatomy.
WASH_FROM_FRACTION = 0.1
STATUS_COLORS = {
    "pass": "#1a7f37",
    "variation": "#d4a106",
    "fail": "#cf222e",
    "not_evaluated": "#6e7781",
    "not_converged": "#cf222e",
}


# What a structure is to the plan, by its role in the protocol (`StructureDose.role`): a target (a dose level's, or
# one without a level of its own: a boost's CTV), an organ at risk or another structure a goal judges, or a helper
# (role other, no goal: a ring or shell the optimization keeps dose off, the body outline).
TARGET, ORGAN, HELPER = "target", "organ", "helper"
# Contour width per part: a helper thin, drawn first; a target thickest, drawn last, on top. A ring around a PTV
# starts in the voxel next to it, so its contour lies on the PTV's: drawn after it, it hid the PTV in every plane.
_CONTOUR_WIDTHS = {HELPER: 0.9, ORGAN: 1.6, TARGET: 2.4}
_DRAW_ORDER = (HELPER, ORGAN, TARGET)
# DVH line patterns, so that curves of one grey (or of one colour: a protocol may give two structures the same
# grey) stay apart in a greyscale print: targets solid (further targets long-dashed), the others dashed in turn.
_TARGET_DASHES = ("solid", (0, (8, 2)), (0, (8, 2, 1, 2, 1, 2)))
_OTHER_DASHES = ((0, (5, 2)), (0, (1, 1.5)), (0, (5, 1.5, 1, 1.5)), (0, (2, 1)), (0, (8, 2, 1, 2)), "solid")
_DVH_WIDTHS = {HELPER: 1.1, ORGAN: 1.5, TARGET: 2.2}
# A goal marker's verdict beside its edge colour: a glyph inside it (a pass has none), for a greyscale print.
STATUS_GLYPHS = {"variation": "o", "fail": "x", "not_converged": "x", "not_evaluated": "$?$"}
_GLYPH_NAMES = {"x": "FAIL or NOT CONVERGED", "o": "VARIATION", "$?$": "NOT EVALUATED"}


def structure_parts(record: PlanRecord, names: Iterable[str]) -> dict[str, str]:
    """TARGET, ORGAN or HELPER for each of `names`, by its role as the record gives it (never by its name): role
    target TARGET, role oar ORGAN, role other ORGAN where a goal judges it, else HELPER. A structure with no role
    recorded (plan.json written before roles were, or a case structure the protocol does not name) is read by what
    the rest of the record says of it: a dose level's target or a target index's structure TARGET, a structure a goal
    judges ORGAN, else HELPER; in such a record a target without a dose level (a boost's CTV) reads ORGAN."""
    roles = {structure.structure: structure.role for structure in record.structures}
    leveled = {level.target for level in record.prescription.levels} | {t.structure for t in record.target_indices}
    judged = {goal.structure for goal in record.goals}

    def part(name: str) -> str:
        role = roles.get(name)
        if role == "target" or (role is None and name in leveled):
            return TARGET
        return ORGAN if role == "oar" or name in judged else HELPER

    return {name: part(name) for name in names}


def dvh_line_styles(record: PlanRecord) -> dict[str, tuple[object, float]]:
    """(dash pattern, width) of each structure's DVH curve: by its part (`structure_parts`), the patterns taken in
    turn, and a structure of the same colour as one before it never given that one's pattern."""
    parts = structure_parts(record, [structure.structure for structure in record.structures])
    taken: dict[str, set[object]] = {}  # by colour: the patterns its structures have
    turns = {_TARGET_DASHES: 0, _OTHER_DASHES: 0}
    styles = {}
    for structure in record.structures:
        part = parts[structure.structure]
        patterns = _TARGET_DASHES if part == TARGET else _OTHER_DASHES
        same_colour = taken.setdefault(structure.color.lower(), set())
        free = [patterns[(turns[patterns] + step) % len(patterns)] for step in range(len(patterns))]
        pattern = next((dashes for dashes in free if dashes not in same_colour), free[0])
        turns[patterns] += 1
        same_colour.add(pattern)
        styles[structure.structure] = (pattern, _DVH_WIDTHS[part])
    return styles


def to_data_uri(figure: Figure) -> str:
    """The figure as an inline SVG data URI, trimmed to what it draws.

    A figure with a layout engine (the slice planes' constrained layout) already fills its canvas: trimming it
    ("tight") would measure every text of it once more for the same picture, a quarter of its SVG time
    (0.61 s -> 0.46 s CPU for the 5 mm C-shape's planes)."""
    buffer = io.BytesIO()
    trim = None if figure.get_layout_engine() is not None else "tight"
    figure.savefig(buffer, format="svg", bbox_inches=trim, metadata={"Date": None})
    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def reference_dose_gy(record: PlanRecord, dose: np.ndarray) -> float:
    """The highest prescription (isodoses are relative to it); the maximum dose without one."""
    levels = [level.total_gy for level in record.prescription.levels if level.total_gy > 0]
    return max(levels) if levels else max(float(dose.max()), 1e-9)


def dvh_figure(record: PlanRecord) -> Figure:
    """Cumulative DVH of every structure, each goal's threshold marked on its curve's colour."""
    figure = Figure(figsize=(8.0, 4.6))
    axes = figure.add_subplot()
    colors = {structure.structure: structure.color for structure in record.structures}
    styles = dvh_line_styles(record)
    for structure in record.structures:
        dashes, width = styles[structure.structure]
        axes.plot(structure.dose_gy, structure.volume_percent, color=structure.color, lw=width, ls=dashes,
                  label=structure.structure)
    bands = record.robustness.bands if record.robustness is not None else []
    for band in bands:
        axes.fill_between(
            band.dose_gy, band.volume_min_percent, band.volume_max_percent, color=colors.get(band.structure, "black"),
            alpha=0.25, lw=0,
        )
    glyphs: dict[str, list[tuple[float, float]]] = {}  # verdict glyph: the goal points it marks
    for goal in record.goals:
        if goal.dvh_point is None:
            continue
        dose_gy, volume_percent = goal.dvh_point
        axes.plot(
            dose_gy,
            volume_percent,
            marker="^" if goal.bounds_curve_from_below else "v",
            ms=8,
            mfc=colors.get(goal.structure, "black"),
            mec=STATUS_COLORS[goal.status],
            mew=2.0,
            ls="none",
        )
        if goal.status in STATUS_GLYPHS:
            glyphs.setdefault(STATUS_GLYPHS[goal.status], []).append(goal.dvh_point)
    for glyph, points in glyphs.items():  # a collection beside the markers: one marker line per goal, as before
        paint = {"facecolors": "white", "edgecolors": "black"} if MarkerStyle(glyph).is_filled() else {"color": "black"}
        axes.scatter(*zip(*points), marker=glyph, s=16, linewidths=1.3, zorder=3, **paint)
    axes.set_xlabel("Dose (Gy, total)")
    axes.set_ylabel("Volume (%)")
    axes.set_ylim(0, 102)
    axes.set_xlim(left=0)
    axes.grid(alpha=0.3)
    handles: list = axes.get_legend_handles_labels()[0]
    handles += [
        Line2D([], [], marker="^", ls="none", mfc="white", mec="black", label="goal: curve at or above"),
        Line2D([], [], marker="v", ls="none", mfc="white", mec="black", label="goal: curve at or below"),
    ]
    labels = [handle.get_label() for handle in handles]
    for glyph in glyphs:  # a key to each verdict drawn, in the order first drawn
        handles.append((Line2D([], [], marker="^", ms=8, ls="none", mfc="white", mec="black"),
                        Line2D([], [], marker=glyph, ms=4, ls="none", mfc="white", mec="black", mew=1.3)))
        labels.append(f"goal {_GLYPH_NAMES[glyph]}")
    if bands:
        scenarios = len(record.robustness.scenarios_mm)  # type: ignore[union-attr]
        handles.append(Patch(color="black", alpha=0.25, lw=0))
        labels.append(f"band: nominal and {scenarios} setup errors")
    axes.legend(handles, labels, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    figure.tight_layout()
    return figure


def slice_centre(record: PlanRecord, masks: Mapping[str, np.ndarray], dose: np.ndarray) -> tuple[int, int, int]:
    """Voxel at the centre of the highest-prescription target (the hottest voxel without one)."""
    targets = sorted(record.target_indices, key=lambda target: -target.prescription_gy)
    if targets and targets[0].structure in masks:
        centre = np.argwhere(masks[targets[0].structure]).mean(axis=0)
        return tuple(int(round(c)) for c in centre)  # type: ignore[return-value]
    return tuple(int(c) for c in np.unravel_index(np.argmax(dose), dose.shape))  # type: ignore[return-value]


def _planes(centre: tuple[int, int, int]):
    """(title, 3-D index, horizontal axis, vertical axis, fixed axis, image origin) per plane."""
    i, j, k = centre
    return (
        ("Axial", (slice(None), slice(None), k), 0, 1, 2, "upper"),
        ("Coronal", (slice(None), j, slice(None)), 0, 2, 1, "lower"),
        ("Sagittal", (i, slice(None), slice(None)), 1, 2, 0, "lower"),
    )


# Patient directions at the (left, right, top, bottom) edges of each plane as drawn above
# (LPS: +x left, +y posterior, +z superior).
_ORIENTATION = {"Axial": "RLAP", "Coronal": "RLSI", "Sagittal": "APSI"}


def _label_directions(axes, plane: str) -> None:
    """Write the patient direction at each edge, as a TPS does, so no reader has to know LPS."""
    left, right, top, bottom = _ORIENTATION[plane]
    style = {"transform": axes.transAxes, "fontsize": 9, "fontweight": "bold", "color": "white",
             "bbox": {"boxstyle": "round,pad=0.15", "facecolor": "black", "alpha": 0.55, "linewidth": 0}}
    axes.text(0.02, 0.5, left, ha="left", va="center", **style)
    axes.text(0.98, 0.5, right, ha="right", va="center", **style)
    axes.text(0.5, 0.97, top, ha="center", va="top", **style)
    axes.text(0.5, 0.03, bottom, ha="center", va="bottom", **style)


def _extent(h_mm: np.ndarray, v_mm: np.ndarray, half_h: float, half_v: float, origin: str) -> tuple[float, ...]:
    """imshow/contour extent: voxel edges; with origin "upper" the first row is on top."""
    left, right = h_mm[0] - half_h, h_mm[-1] + half_h
    first, last = v_mm[0] - half_v, v_mm[-1] + half_v
    return (left, right, last, first) if origin == "upper" else (left, right, first, last)


def slices_figure(
    record: PlanRecord, case: Case, dose: np.ndarray, masks: Mapping[str, np.ndarray]
) -> Figure:
    """Axial, coronal and sagittal planes through the target centre: density, wash, isodoses, contours.

    Two by two (the key in the fourth place) rather than one row: on an A4 page a row of
    three leaves each plane too small to read an isodose line against a contour.
    """
    reference = reference_dose_gy(record, dose)
    centre = slice_centre(record, masks, dose)
    axes_mm = case.grid.axes_mm()
    spacing = case.grid.spacing_mm
    colors = {structure.structure: structure.color for structure in record.structures}
    parts = structure_parts(record, masks)
    # helpers first, targets last (the highest prescription on top): each drawn over what it must not be hidden by
    level_gy = {level.target: level.total_gy for level in record.prescription.levels}
    drawn = sorted(masks, key=lambda name: (_DRAW_ORDER.index(parts[name]), level_gy.get(name, 0.0)))
    figure = Figure(figsize=(10.0, 8.6), layout="constrained")
    places = figure.add_gridspec(2, 2)
    wash_image = None
    for place, (title, index, horizontal, vertical, fixed, origin) in zip(
        (places[0, 0], places[0, 1], places[1, 0]), _planes(centre)
    ):
        axes = figure.add_subplot(place)
        extent = _extent(axes_mm[horizontal], axes_mm[vertical], spacing[horizontal] / 2, spacing[vertical] / 2, origin)
        if case.density is not None:
            density = case.density[index].T
            axes.imshow(density, cmap="gray", vmin=0.0, vmax=max(1.5, float(density.max())), origin=origin,
                        extent=extent, interpolation="nearest")
        plane_dose = dose[index].T
        wash = np.ma.masked_less(plane_dose, WASH_FROM_FRACTION * reference)
        wash_image = axes.imshow(wash, cmap="jet", alpha=0.45, vmin=0, vmax=1.1 * reference, origin=origin,
                                 extent=extent, interpolation="nearest")
        if plane_dose.shape[0] > 1 and plane_dose.shape[1] > 1:
            levels = [p / 100 * reference for p in ISODOSE_PERCENTS]
            present = [line for line in zip(levels, _ISODOSE_COLORS, ISODOSE_DASHES, _ISODOSE_WIDTHS)
                       if plane_dose.max() >= line[0]]
            if present:
                level_gy, level_colors, dashes, widths = zip(*present)
                axes.contour(plane_dose, levels=list(level_gy), colors=list(level_colors), linewidths=list(widths),
                             linestyles=list(dashes), origin=origin, extent=extent)
            for name in drawn:
                plane_mask = masks[name][index].T
                if plane_mask.any() and not plane_mask.all():
                    axes.contour(plane_mask.astype(float), levels=[0.5], colors=[colors.get(name, "white")],
                                 linewidths=_CONTOUR_WIDTHS[parts[name]], origin=origin, extent=extent)
        axes.set_title(f"{title}, {'xyz'[fixed]} = {axes_mm[fixed][centre[fixed]]:.1f} mm", fontsize=10)
        axes.set_xlabel(f"{'xyz'[horizontal]} (mm)", fontsize=9)
        axes.set_ylabel(f"{'xyz'[vertical]} (mm)", fontsize=9)
        axes.tick_params(labelsize=8)
        axes.set_aspect("equal")
        _label_directions(axes, title)
    key = figure.add_subplot(places[1, 1])
    key.axis("off")
    colorbar = figure.colorbar(wash_image, ax=key, location="left", shrink=0.9)
    colorbar.set_label("Dose (Gy, total)", fontsize=9)
    colorbar.ax.tick_params(labelsize=8)
    handles = [Line2D([], [], color=c, lw=w, ls=d, label=f"{p}% ({p / 100 * reference:.1f} Gy)")
               for p, c, d, w in zip(ISODOSE_PERCENTS, _ISODOSE_COLORS, ISODOSE_DASHES, _ISODOSE_WIDTHS)]
    handles += [Line2D([], [], color=colors.get(name, "white"), lw=_CONTOUR_WIDTHS[parts[name]], label=name)
                for name in masks]
    key.legend(handles=handles, loc="center left", fontsize=9, frameon=False, title="Isodoses, contours",
               title_fontsize=9, ncol=2 if len(handles) > 14 else 1)
    return figure


def fluence_figure(case: Case, fluence: np.ndarray) -> Figure:
    """One fluence map per beam in the beam's-eye view at the isocentre plane.

    One colour scale and one field of view for all beams, so that maps compare at a glance.
    """
    beams = case.beams
    columns = min(len(beams), 5)
    rows = -(-len(beams) // columns)
    figure = Figure(figsize=(2.3 * columns + 0.8, 2.4 * rows))
    beamlets = case.beamlets
    top = max(float(fluence.max()), 1e-12)
    margin_mm = 5.0
    x_lo, x_hi = (beamlets.x_mm - beamlets.width_mm / 2).min(), (beamlets.x_mm + beamlets.width_mm / 2).max()
    y_lo, y_hi = (beamlets.y_mm - beamlets.height_mm / 2).min(), (beamlets.y_mm + beamlets.height_mm / 2).max()
    collection = None
    for position, beam in enumerate(beams):
        axes = figure.add_subplot(rows, columns, position + 1)
        members = np.flatnonzero(beamlets.beam_id == beam.id)
        # One rectangle per beamlet, as corner arrays; embedded as an image (`rasterized`): the
        # map is a grid of cells, and as vector paths it was the report's slowest part (2,051
        # beamlets: 0.35 s to build, 0.33 s and 694 KB of SVG; docs/performance-history.md, eleventh pass).
        half_x, half_y = beamlets.width_mm[members] / 2, beamlets.height_mm[members] / 2
        x, y = beamlets.x_mm[members], beamlets.y_mm[members]
        corners = np.stack([np.stack([x - half_x, y - half_y], axis=1), np.stack([x + half_x, y - half_y], axis=1),
                            np.stack([x + half_x, y + half_y], axis=1), np.stack([x - half_x, y + half_y], axis=1)],
                           axis=1)
        collection = PolyCollection(corners, cmap="viridis", edgecolor="none", rasterized=True)
        collection.set_array(fluence[members])
        collection.set_clim(0.0, top)
        axes.add_collection(collection)
        axes.set_xlim(x_lo - margin_mm, x_hi + margin_mm)
        axes.set_ylim(y_lo - margin_mm, y_hi + margin_mm)
        axes.set_aspect("equal")
        couch = f", couch {beam.couch_deg:g}°" if beam.couch_deg else ""
        axes.set_title(f"Beam {beam.id}: gantry {beam.gantry_deg:g}°{couch}", fontsize=8)
        axes.tick_params(labelsize=6)
    if collection is not None:
        colorbar = figure.colorbar(collection, ax=figure.axes, shrink=0.8)
        colorbar.set_label("Beamlet weight", fontsize=8)
    figure.supxlabel("x (mm at the isocentre plane)", fontsize=8)
    figure.supylabel("y (mm)", fontsize=8)
    return figure
