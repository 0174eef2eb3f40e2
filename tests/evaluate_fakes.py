"""A small synthetic case and protocol-shaped objects for evaluate and report tests.

The case is a real `specc.case.Case` (a 5 mm grid with a spherical target, an OAR box
beside it and a body), with an influence matrix that falls off with distance from the
target so that doses look like a plan. Protocol parts are plain namespaces with the fields
the evaluate stage reads, so these tests do not depend on YAML loading.
"""

from __future__ import annotations

import json

import numpy as np
import scipy.sparse as sp

from specc.case import Beam, Beamlets, Case, CaseMetadata, Grid, Structure
from specc.protocol import Protocol, parse_protocol_text
from specc.solve import SolveResult, TermValue

SHAPE = (16, 14, 10)
SPACING = (5.0, 5.0, 5.0)
ORIGIN = (-37.5, -32.5, -22.5)


def synthetic_case(target_name: str = "Target", oar_name: str = "Organ", seed: int = 0) -> Case:
    grid = Grid(shape=SHAPE, spacing_mm=SPACING, origin_mm=ORIGIN)
    x, y, z = np.meshgrid(*grid.axes_mm(), indexing="ij")
    body = (x / 38.0) ** 2 + (y / 33.0) ** 2 <= 1.0
    target = x**2 + y**2 + z**2 <= 15.0**2
    oar = (np.abs(x - 25.0) <= 7.5) & (np.abs(y) <= 7.5) & (np.abs(z) <= 10.0) & body
    voxel_indices = np.flatnonzero(body.ravel())
    positions = grid.positions_mm(voxel_indices)
    beam_ids, xs, ys = [], [], []
    beams = []
    for beam_id, gantry in ((1, 0.0), (2, 120.0), (3, 240.0)):
        beams.append(Beam(id=beam_id, gantry_deg=gantry))
        for bx in (-10.0, -5.0, 0.0, 5.0, 10.0):
            for by in (-10.0, -5.0, 0.0, 5.0, 10.0):
                beam_ids.append(beam_id)
                xs.append(bx)
                ys.append(by)
    n_beamlets = len(beam_ids)
    rng = np.random.default_rng(seed)
    # Each beamlet deposits around a point near the target centre (a crude stand-in for a beam).
    aims = np.column_stack([np.array(xs), np.array(ys), rng.uniform(-10, 10, n_beamlets)])
    distance2 = ((positions[:, None, :] - aims[None, :, :]) ** 2).sum(axis=2)
    influence = (0.08 * np.exp(-distance2 / (2 * 14.0**2))).astype(np.float32)
    influence[influence < 1e-4] = 0
    density = np.where(body, 1.0, 0.001).astype(np.float32)
    return Case(
        case_id="synthetic",
        grid=grid,
        voxel_indices=voxel_indices,
        influence=sp.csr_matrix(influence),
        beams=beams,
        beamlets=Beamlets(
            beam_id=np.array(beam_ids),
            x_mm=np.array(xs),
            y_mm=np.array(ys),
            width_mm=np.full(n_beamlets, 5.0),
            height_mm=np.full(n_beamlets, 5.0),
        ),
        structures={
            target_name: Structure(name=target_name, mask=target, color="#d62728"),
            oar_name: Structure(name=oar_name, mask=oar, color="#1f77b4"),
            "Body": Structure(name="Body", mask=body, color="#7f7f7f"),
        },
        metadata=CaseMetadata(source="tests", dose_engine="synthetic gaussian"),
        density=density,
    )


def protocol(goals: dict[str, list[str]], target: str = "Target", dose: str = "60 Gy", fractions: int = 30,
             name: str = "Test protocol", organ: str = "Organ", normalization: str = "",
             terms: list[str] | None = None, solver: str = "", delivery: str = "", robustness: str = "") -> Protocol:
    """A real protocol parsed from YAML; goals in compact form per structure; `solver`, `delivery`,
    `robustness` flow mappings."""
    lines = [
        "specc: 1",
        f"name: {json.dumps(name)}",
        "site: test",
        "version: 1.0.0",
        "structures:",
        f"  {json.dumps(target)}: {{role: target, color: '#d62728'}}",
        f"  {json.dumps(organ)}: {{role: oar}}",
        "  Body: {role: other, color: '#7f7f7f'}",
        "prescription:",
        f"  fractions: {fractions}",
        f"  levels: [{{target: {json.dumps(target)}, dose: {dose}}}]",
    ]
    if normalization:
        lines.append(f"  normalization: {normalization}")
    lines.append("goals:")
    for structure, texts in goals.items():
        lines.append(f"  {json.dumps(structure)}:")
        lines += [f"    - {json.dumps(text)}" for text in texts]
    if terms:
        lines += ["optimization:", "  terms:"] + [f"    - {term}" for term in terms]
        if solver:
            lines.append(f"  solver: {solver}")
    if delivery:
        lines.append(f"delivery: {delivery}")
    if robustness:
        lines.append(f"robustness: {robustness}")
    return parse_protocol_text("\n".join(lines) + "\n", "protocols/test.yaml")


def solve_result(
    case: Case, status: str = "optimal", scale: float = 1.0, protocol: Protocol | None = None
) -> SolveResult:
    """A solve that ended `status`, with uniform beamlet weights `scale` when it has a point."""
    fluence = np.full(case.n_beamlets, scale) if status in ("optimal", "optimal_inaccurate") else None
    terms = protocol.optimization.terms if protocol is not None and protocol.optimization else []
    return SolveResult(
        status=status,  # type: ignore[arg-type]
        converged=status == "optimal",
        solver="CLARABEL",
        message=f"test solve ended {status}",
        fluence=fluence,
        objective=1.25 if fluence is not None else None,
        iterations=12,
        solve_time_s=0.5,
        terms=[
            TermValue(label=term.label(), kind=term.kind, source=str(term.source), hard=bool(term.is_constraint),
                      objective_contribution=None if term.is_constraint else 1.25)
            for term in terms
        ],
        steps=[],
    )


def masks_of(case: Case) -> dict[str, np.ndarray]:
    return {name: structure.mask for name, structure in case.structures.items()}


def sib_case() -> Case:
    """The synthetic case with its target split into a core (PTV_High, within 8 mm of the centre) and the shell
    around it (PTV_Low): a simultaneous integrated boost's two targets."""
    import dataclasses

    case = synthetic_case()
    x, y, z = np.meshgrid(*case.grid.axes_mm(), indexing="ij")
    core = x**2 + y**2 + z**2 <= 8.0**2
    shell = case.structures["Target"].mask & ~core
    return dataclasses.replace(case, structures={**case.structures, "PTV_High": Structure(name="PTV_High", mask=core),
                                                 "PTV_Low": Structure(name="PTV_Low", mask=shell)})


def sib_protocol_text(low_goals: str) -> str:
    """A protocol of `sib_case`'s targets, 60 Gy to PTV_High and 40 Gy to PTV_Low in 30 fractions, with
    `low_goals` (a YAML list) on PTV_Low."""
    return f"""specc: 1
name: SIB
site: test
version: 1.0.0
structures:
  PTV_High: {{role: target}}
  PTV_Low: {{role: target}}
  Body: {{role: other}}
prescription:
  fractions: 30
  levels: [{{target: PTV_High, dose: 60 Gy}}, {{target: PTV_Low, dose: 40 Gy}}]
goals:
  PTV_Low: {low_goals}
"""
