"""result.h5: the solved plan in one file that exporters and other tools read back.

The plan report is for people; result.h5 is for programs. It holds what cannot be
recomputed without the solver (the fluence) and what every exporter needs (the total dose on
the case grid, its geometry, the DICOM identifiers of the source images), plus the case's
content hash so an exporter that needs structures can check it was handed the same case.
Whether the solver converged is a root attribute of its own, not only inside the optional
plan record: a program that reads `/dose_gy` alone must still be able to tell an unusable plan.
Reading refuses what would turn into a wrong number downstream (a dose that is not finite, not in
Gy or not the total, a fraction count that is not one), naming the file and the dataset.
The layout is documented in docs/formats/result-h5.md.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import h5py
import numpy as np

from pydantic import ValidationError

from specc import __version__
from specc.errors import CaseError, SpeccError, validation_text

if TYPE_CHECKING:
    from specc.case import Case, Grid
    from specc.evaluate import PlanRecord
    from specc.export.segments import SegmentsDocument

FORMAT_NAME = "specc-result"
FORMAT_VERSION = 1
# Relative difference allowed between a beam's summed segment weight in segments.json and in the
# plan record: both sum the same weights, in another order.
_WEIGHT_TOLERANCE = 1e-9
# The largest difference allowed between a beamlet's weight rebuilt from segments.json and result.h5's
# `/fluence`, as a fraction of the beam's largest beamlet weight. Both are float64 (segments.json's weights
# are written in the shortest text that reads back to the same float64), and both sum the same segment
# weights, in another order and, for result.h5, before the normalization factor is applied: a few units
# in the last place (~1e-15 of the beam's maximum for tens of segments). 1e-9 leaves a margin of 10^5 over
# that and refuses any edit of a weight a person would make (a 0.2 moved between two segments of a beam
# of maximum 2.9 is 7%).
FLUENCE_TOLERANCE = 1e-9
# What `/dose_gy` and `/prior_dose_gy` hold, as their attributes say; read back and required.
DOSE_UNIT = "Gy"
PLAN_DOSE_SUMMATION = "total over all fractions"
PRIOR_DOSE_SUMMATION = "the prior course(s), total"


class ResultError(SpeccError):
    """A result.h5 file that cannot be read, or that does not belong to the case given with it."""


@dataclass(frozen=True)
class DerivedStructure:
    """A structure the protocol built from the case's (a PTV margin, a ring), as the plan used it."""

    name: str
    mask: np.ndarray  # on the case grid
    color: str
    role: str  # target, oar, other
    expression: str  # as the protocol wrote it


@dataclass
class PlanResult:
    """A solved plan as stored in result.h5: fluence, total dose in Gy, grid and provenance."""

    path: Path
    case_id: str
    case_sha256: str
    case_path: Path | None
    fractions: int
    grid: Grid
    fluence: np.ndarray
    dose_gy: np.ndarray
    metadata_extra: dict[str, str] = field(default_factory=dict)
    record_json: str | None = None
    # A composite plan's prior course (Gy in all, on the grid): `dose_gy` is this plan's own
    # dose, and its goals were judged on the two summed (docs/composite.md).
    prior_dose_gy: np.ndarray | None = None
    derived: list[DerivedStructure] = field(default_factory=list)  # the protocol's derived structures
    # The protocol role (target, oar, other) of each case structure the plan's protocol named, by case name:
    # what a study export types them as for a planning system (`specc.export.roi_types`).
    case_roles: dict[str, str] = field(default_factory=dict)
    # The root attributes `solver_status` and `converged`; None where the file has none (written
    # without its plan record, or before result.h5 kept them): the record, if any, then says.
    stored_solver_status: str | None = None
    stored_converged: bool | None = None

    @cached_property
    def record(self) -> PlanRecord | None:
        """The plan record result.h5 carries (plan.json's), parsed once; None for a result written without it.

        Parsed on first use, not on reading: a prior course's result.h5 is read for its dose alone.
        A record that is not one, or that contradicts the root attributes, is a damaged file."""
        from specc.evaluate import PlanRecord

        if self.record_json is None:
            return None
        try:
            record = PlanRecord.model_validate_json(self.record_json)
        except ValidationError as error:
            raise ResultError(
                f"{self.path}: dataset '/plan_json' is not a plan record this specc reads "
                f"({validation_text(error, 'the text')}); a damaged result file"
            ) from None
        said = _solver_attributes(record)
        stored = {"converged": self.stored_converged, "solver_status": self.stored_solver_status}
        for key, value in said.items():
            if stored[key] is not None and stored[key] != value:
                raise ResultError(
                    f"{self.path}: root attribute {key} is {stored[key]!r} and '/plan_json' says {value!r}; "
                    "a damaged result file"
                )
        return record

    @property
    def converged(self) -> bool | None:
        """Whether the plan's solver converged: True, False, or None where the file cannot say (no
        root attribute and no plan record), which every export labels as unknown."""
        if self.stored_converged is not None:
            return self.stored_converged
        record = self.record
        return record.converged if record is not None else None

    @property
    def solver_status(self) -> str | None:
        """The solver's status as the plan ended ('optimal', 'time_limit', ...); None where unknown
        (no attribute, no record) and for a record of a dose specc did not plan."""
        if self.stored_solver_status is not None:
            return self.stored_solver_status
        record = self.record
        return record.solver.status if record is not None and record.solver is not None else None

    @property
    def composite_dose_gy(self) -> np.ndarray:
        """The dose the plan's goals were judged on: its own, plus the prior course's when it has one."""
        return self.dose_gy if self.prior_dose_gy is None else self.dose_gy + self.prior_dose_gy

    def load_case(self, path: str | Path | None = None) -> Case:
        """The case this plan was made on, checked against the stored content hash.

        `path` overrides the case path recorded at planning time (cases move between machines).
        """
        from specc.case import Case

        case_path = Path(path) if path is not None else self.case_path
        if case_path is None:
            raise ResultError(f"{self.path}: the plan does not record where its case file is; {self._case_hint()}")
        if not case_path.exists():
            raise ResultError(
                f"{self.path}: its case file {case_path} does not exist; pass the case with --case"
            )
        case = Case.load(case_path)
        actual = case.content_hash()
        if actual != self.case_sha256:
            raise ResultError(
                f"{case_path} is not the case {self.path} was planned on "
                f"(case sha256 {actual[:12]}..., result expects {self.case_sha256[:12]}...)"
            )
        return case

    def check_segments(self, segments: SegmentsDocument, segments_path: Path, case: Case | None = None) -> None:
        """Refuse a segments.json that is not this plan's own: one copied in from another plan, or
        edited, would be exported as this plan's RT Plan (and referenced by its RT Dose). The case and
        protocol hashes and the fractions must match, and so must the plan's record of its delivery: the
        segments per beam and their summed weight, which tell two plans of one protocol and case apart.
        With the plan's `case` (`load_case`), its beams must be the case's, and the beamlet fluence the
        segments deliver must be result.h5's `/fluence` (`FLUENCE_TOLERANCE`): weight moved between
        segments of a beam keeps the count and the sum. Every export that writes or references an RT
        Plan, and `specc approve`, pass the case: this is the one rule for all of them."""
        mismatch = self._segments_mismatch(segments)
        if mismatch is not None:
            raise ResultError(
                f"{segments_path} is not from the plan {self.path} holds ({mismatch}); "
                f"export the segments.json that specc plan wrote beside it"
            )
        if case is not None:
            from specc.export.segments import geometry_mismatch

            unknown = sorted({entry.beam for entry in segments.beams} - {beam.id for beam in case.beams})
            if unknown:
                raise ResultError(f"{segments_path}: beams {unknown} are not beams of case {case.case_id!r}")
            mismatch = geometry_mismatch(segments, case) or self._fluence_mismatch(segments, case)
            if mismatch is not None:
                raise ResultError(
                    f"{segments_path}: {mismatch}; its segments are not the plan's (edited or damaged): "
                    f"export the segments.json that specc plan wrote beside {self.path}"
                )

    def _fluence_mismatch(self, segments: SegmentsDocument, case: Case) -> str | None:
        """The beam whose fluence from `segments` differs most from `/fluence`, beyond `FLUENCE_TOLERANCE`."""
        from specc.export.segments import segments_fluence

        if self.fluence.shape != (case.n_beamlets,):
            return f"{self.path} holds {self.fluence.size} beamlet weights, case {case.case_id!r} has {case.n_beamlets}"
        rebuilt = segments_fluence(segments, case.beamlets)
        worst: tuple[float, int, float, float] | None = None  # (share of the beam's maximum, beam, difference, maximum)
        for beam in np.unique(case.beamlets.beam_id):
            members = case.beamlets.beam_id == beam
            largest = float(max(np.abs(self.fluence[members]).max(), rebuilt[members].max()))
            difference = float(np.abs(rebuilt[members] - self.fluence[members]).max())
            if largest > 0 and difference > FLUENCE_TOLERANCE * largest and (worst is None or difference / largest > worst[0]):
                worst = (difference / largest, int(beam), difference, largest)
        if worst is None:
            return None
        share, beam, difference, largest = worst
        return (
            f"beam {beam}: the fluence its segments deliver differs from {self.path}'s '/fluence' by up to "
            f"{difference:.4g} beamlet weight ({100 * share:.3g}% of the beam's largest, {largest:.4g}; "
            f"allowed {FLUENCE_TOLERANCE:g} of it)"
        )

    def _segments_mismatch(self, segments: SegmentsDocument) -> str | None:
        if segments.case_sha256 != self.case_sha256:
            return f"case sha256 {segments.case_sha256[:12]}..., the plan's {self.case_sha256[:12]}..."
        if segments.fractions != self.fractions:
            return f"{segments.fractions} fractions, the plan's {self.fractions}"
        if self.converged is not None and segments.converged != self.converged:
            return f"converged {str(segments.converged).lower()}, the plan's {str(self.converged).lower()}"
        record = self.record
        if record is None:  # a result written without its record: only the case can be checked
            return None
        if segments.protocol.sha256 != record.protocol.sha256:
            return f"protocol sha256 {segments.protocol.sha256[:12]}..., the plan's {record.protocol.sha256[:12]}..."
        if record.delivery is None:
            return "the plan has no segments: its protocol asks for no delivery technique"
        planned = {beam.beam: (beam.segments, beam.total_weight) for beam in record.delivery.beams}
        given = {beam.beam: (len(beam.segments), sum(s.weight for s in beam.segments)) for beam in segments.beams}
        if planned.keys() != given.keys():
            return f"beams {sorted(given)}, the plan's {sorted(planned)}"
        for beam, (count, weight) in planned.items():
            given_count, given_weight = given[beam]
            if given_count != count or not math.isclose(given_weight, weight, rel_tol=_WEIGHT_TOLERANCE):
                return (f"beam {beam}: {given_count} segments of summed weight {given_weight:.6g}, "
                        f"the plan's {count} of {weight:.6g}")
        said = {  # what the RT Plan's descriptions repeat from the file: the plan record's own
            "case_id": (segments.case_id, record.case.case_id),
            "protocol name": (segments.protocol.name, record.protocol.name),
            "protocol version": (segments.protocol.version, record.protocol.version),
            "solver_status": (segments.solver_status, record.solver.status),
            "intensity_levels": (segments.intensity_levels, record.delivery.intensity_levels),
            "sequencing": (segments.sequencing, record.delivery.sequencing),
            "segment_weights": (segments.segment_weights, record.delivery.segment_weights),
        }
        for name, (given, planned) in said.items():
            if given != planned:
                return f"{name} {given!r}, the plan's {planned!r}"
        return None

    def _case_hint(self) -> str:
        """How to get the case back: a phantom planned in memory can be built again to a file."""
        info = self.record.case if self.record is not None else None
        if info is None or not info.source.startswith("phantom:"):
            return "pass it with --case"
        name, spacing = info.source.removeprefix("phantom:"), info.grid.spacing_mm[0]
        file = f"{name}.h5"
        return (
            f"it was planned on the phantom '{name}' built in memory: write it to a file with "
            f"`specc phantom {name} --grid {spacing:g} --beams {info.n_beams} --out {file}` "
            f"and pass --case {file} (its content hash is checked)"
        )


def write_result(
    path: str | Path,
    case: Case,
    fluence: np.ndarray,
    dose_gy: np.ndarray,
    fractions: int,
    record_json: str | None = None,
    *,
    case_path: str | Path | None = None,
    prior_dose_gy: np.ndarray | None = None,
    derived: Sequence[DerivedStructure] = (),
    case_roles: Mapping[str, str] | None = None,
) -> Path:
    """Write result.h5. `dose_gy` is the plan's total dose over all `fractions`, shape `case.grid.shape`;
    `prior_dose_gy`, of a composite plan, the prior course's, beside it.

    The file is built in memory and written to `path` in one plain write: HDF5 writing to a disk
    that fills (or a file-size limit) fails while closing the file and then crashes the process
    (a segmentation fault, exit 139), where a Python write raises an OSError that says why
    ('No space left on device'). The price is the file's size in memory, once (compressed dose)."""
    fluence = np.asarray(fluence, dtype=np.float64)
    dose_gy = np.asarray(dose_gy, dtype=np.float32)
    n_beamlets = case.influence.shape[1]
    if fluence.shape != (n_beamlets,):
        raise ValueError(f"fluence has shape {fluence.shape}, the case has {n_beamlets} beamlets")
    if dose_gy.shape != tuple(case.grid.shape):
        raise ValueError(f"dose has shape {dose_gy.shape}, the case grid is {tuple(case.grid.shape)}")
    if not (np.all(np.isfinite(fluence)) and np.all(np.isfinite(dose_gy))):
        raise ValueError("fluence and dose must be finite")
    if isinstance(fractions, bool) or int(fractions) != fractions or fractions < 1:
        raise ValueError(f"fractions must be a positive integer, got {fractions!r}")
    solver = _solver_attributes(_parsed_record(record_json)) if record_json is not None else {}

    path = Path(path)
    image = io.BytesIO()
    with h5py.File(image, "w") as out:
        out.attrs["format"] = FORMAT_NAME
        out.attrs["format_version"] = FORMAT_VERSION
        out.attrs["specc_version"] = __version__
        out.attrs["case_id"] = case.case_id
        out.attrs["case_sha256"] = case.content_hash()
        out.attrs["case_path"] = str(Path(case_path).resolve()) if case_path is not None else ""
        out.attrs["fractions"] = int(fractions)
        for key, value in solver.items():  # the convergence marker, beside the optional record (1 or 0)
            out.attrs[key] = int(value) if isinstance(value, bool) else value

        grid = out.create_group("grid")
        grid.attrs["shape"] = np.asarray(case.grid.shape, dtype=np.int64)
        grid.attrs["spacing_mm"] = np.asarray(case.grid.spacing_mm, dtype=np.float64)
        grid.attrs["origin_mm"] = np.asarray(case.grid.origin_mm, dtype=np.float64)

        flu = out.create_dataset("fluence", data=fluence)
        flu.attrs["unit"] = "beamlet weight per fraction"
        dose = out.create_dataset("dose_gy", data=dose_gy, compression="gzip", shuffle=True)
        dose.attrs["unit"] = DOSE_UNIT
        dose.attrs["summation"] = PLAN_DOSE_SUMMATION
        if prior_dose_gy is not None:
            prior = np.asarray(prior_dose_gy, dtype=np.float32)
            if prior.shape != dose_gy.shape:
                raise ValueError(f"prior dose has shape {prior.shape}, the case grid is {dose_gy.shape}")
            stored = out.create_dataset("prior_dose_gy", data=prior, compression="gzip", shuffle=True)
            stored.attrs["unit"] = DOSE_UNIT
            stored.attrs["summation"] = PRIOR_DOSE_SUMMATION

        if case_roles:
            roles = out.create_group("case_structure_roles")
            for name, role in sorted(case_roles.items()):
                roles.attrs[name] = role
        if derived:
            group = out.create_group("derived_structures")
            for index, structure in enumerate(derived):
                if structure.mask.shape != dose_gy.shape:
                    raise ValueError(f"derived structure {structure.name!r} is not on the case grid")
                stored = group.create_dataset(f"{index:03d}", data=np.packbits(structure.mask.ravel()), compression="gzip")
                for key in ("name", "color", "role", "expression"):
                    stored.attrs[key] = getattr(structure, key)

        extra = out.create_group("case_metadata")
        for key, value in case.metadata.extra.items():
            extra.attrs[key] = str(value)

        if record_json is not None:
            out.create_dataset("plan_json", data=record_json, dtype=h5py.string_dtype("utf-8"))
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as file:
        file.write(image.getbuffer())
    return path


def _parsed_record(record_json: str) -> PlanRecord:
    """The plan record written into result.h5; what is not one is the caller's error (`write_result`)."""
    from specc.evaluate import PlanRecord

    try:
        return PlanRecord.model_validate_json(record_json)
    except ValidationError as error:
        raise ValueError(f"record_json is not a plan record ({validation_text(error, 'the text')})") from None


def _solver_attributes(record: PlanRecord) -> dict[str, bool | str]:
    """The root attributes that say whether the plan is usable: `converged`, and `solver_status`
    when specc planned the dose (a checked dose's record has no solver)."""
    said: dict[str, bool | str] = {"converged": bool(record.converged)}
    if record.solver is not None:
        said["solver_status"] = record.solver.status
    return said


def read_result(path: str | Path, data: bytes | None = None) -> PlanResult:
    """Read result.h5 back; errors name the file and the dataset or attribute that is missing or wrong. `data`: the
    file's bytes where the caller has read them (an approval judges the very bytes it hashes:
    `specc.approval.PlanFiles`), read instead of the file at `path`, which then only names them."""
    path = Path(path)
    if data is None and not path.exists():
        raise ResultError(f"{path}: no such result file")
    try:
        handle = h5py.File(path if data is None else io.BytesIO(data), "r")
    except OSError as error:
        raise ResultError(f"{path}: not an HDF5 file ({error})") from None
    with handle as src:
        if src.attrs.get("format") != FORMAT_NAME:
            raise ResultError(f"{path}: not a specc result file (attribute 'format' is not {FORMAT_NAME!r})")
        version = int(src.attrs.get("format_version", -1))
        if version != FORMAT_VERSION:
            raise ResultError(f"{path}: result format version {version}, this specc reads {FORMAT_VERSION}")
        try:
            return _read_contents(src, path)
        except (KeyError, OSError, ValueError, TypeError, UnicodeDecodeError) as error:
            # h5py's own errors for a dataset it cannot read (a damaged chunk, a missing attribute)
            raise ResultError(f"{path}: a damaged result file ({error})") from None


def _read_contents(src: h5py.File, path: Path) -> PlanResult:
    for name in ("grid", "fluence", "dose_gy", "case_metadata"):
        if name not in src:
            raise ResultError(f"{path}: dataset '/{name}' is missing")
    grid = _grid(src, path)
    dose_gy = _dose(src, "dose_gy", PLAN_DOSE_SUMMATION, path)
    if dose_gy.shape != tuple(grid.shape):
        raise ResultError(f"{path}: '/dose_gy' has shape {dose_gy.shape}, '/grid' says {tuple(grid.shape)}")
    prior = _dose(src, "prior_dose_gy", PRIOR_DOSE_SUMMATION, path) if "prior_dose_gy" in src else None
    if prior is not None and prior.shape != dose_gy.shape:
        raise ResultError(f"{path}: '/prior_dose_gy' has shape {prior.shape}, '/dose_gy' {dose_gy.shape}")
    fluence = src["fluence"][...]
    if not np.all(np.isfinite(fluence)):
        raise ResultError(f"{path}: '/fluence' contains NaN or Inf; a damaged result file")
    record = src["plan_json"][()] if "plan_json" in src else None
    derived = [
        DerivedStructure(
            name=str(stored.attrs["name"]),
            mask=np.unpackbits(stored[...], count=grid.n_voxels).astype(bool).reshape(grid.shape),
            color=str(stored.attrs["color"]),
            role=str(stored.attrs["role"]),
            expression=str(stored.attrs["expression"]),
        )
        for _, stored in sorted(src["derived_structures"].items())
    ] if "derived_structures" in src else []
    case_roles = (
        {str(name): str(role) for name, role in src["case_structure_roles"].attrs.items()}
        if "case_structure_roles" in src else {}
    )
    case_path = str(src.attrs.get("case_path", ""))
    status = src.attrs.get("solver_status")
    return PlanResult(
        path=path,
        case_id=str(src.attrs["case_id"]),
        case_sha256=str(src.attrs["case_sha256"]),
        case_path=Path(case_path) if case_path else None,
        fractions=_fractions(src, path),
        grid=grid,
        fluence=fluence,
        dose_gy=dose_gy,
        metadata_extra={key: str(value) for key, value in src["case_metadata"].attrs.items()},
        record_json=record.decode("utf-8") if isinstance(record, bytes) else record,
        prior_dose_gy=prior,
        derived=derived,
        case_roles=case_roles,
        stored_solver_status=str(status) if status is not None else None,
        stored_converged=_converged(src, path),
    )


def _grid(src: h5py.File, path: Path) -> Grid:
    from specc.case import Grid

    stored = src["grid"].attrs
    try:
        return Grid(
            shape=tuple(int(n) for n in stored["shape"]),
            spacing_mm=tuple(float(s) for s in stored["spacing_mm"]),
            origin_mm=tuple(float(o) for o in stored["origin_mm"]),
        )
    except CaseError as error:
        raise ResultError(f"{path}: '/grid': {error}") from None


def _dose(src: h5py.File, name: str, summation: str, path: Path) -> np.ndarray:
    """A dose dataset, refused unless it says it holds what specc wrote there (Gy, `summation`) and
    every value is finite: a NaN would reach an RT Dose as a voxel of billions of Gy."""
    dataset = src[name]
    for key, expected in (("unit", DOSE_UNIT), ("summation", summation)):
        said = dataset.attrs.get(key)
        if said is None or str(said) != expected:
            which = f"has no attribute {key}" if said is None else f"attribute {key} is {str(said)!r}"
            raise ResultError(
                f"{path}: '/{name}' {which}, not {expected!r}: specc reads only the dose it wrote there"
            )
    dose = dataset[...]
    if not np.all(np.isfinite(dose)):
        bad = int(np.count_nonzero(~np.isfinite(dose)))
        raise ResultError(f"{path}: '/{name}' contains NaN or Inf ({bad} of {dose.size} voxels); a damaged result file")
    return dose


def _fractions(src: h5py.File, path: Path) -> int:
    stored = src.attrs["fractions"]
    value = stored.item() if isinstance(stored, np.generic) else stored
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ResultError(f"{path}: root attribute fractions is {value!r}, not a positive whole number of fractions")
    return int(value)


def _converged(src: h5py.File, path: Path) -> bool | None:
    stored = src.attrs.get("converged")
    if stored is None:
        return None
    value = stored.item() if isinstance(stored, np.generic) else stored
    if isinstance(value, (str, bytes, float)) or value not in (0, 1):
        raise ResultError(f"{path}: root attribute converged is {value!r}, not 1 or 0")
    return bool(value)
