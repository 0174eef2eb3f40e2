"""Reading and writing a `Case` as one HDF5 file (layout: docs/case-format.md).

The reader checks each dataset against the layout before building the `Case`, so a bad file
fails with the file and dataset named instead of an obscure numpy error later. It reads the
influence matrix straight into the three CSR arrays it keeps (no second copy of A).
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import scipy.sparse as sp

from specc.case.model import (
    MIN_HU,
    Beam,
    Beamlets,
    Case,
    CaseMetadata,
    Grid,
    InfluenceValueError,
    Structure,
    one_based_hint,
    repeated_entry,
)
from specc.errors import CaseError

FORMAT_NAME = "specc-case"
FORMAT_VERSION = 1
# What `/influence` entries are (docs/case-format.md); the `units` attribute may say only this.
INFLUENCE_UNITS = "Gy per unit beamlet weight per fraction"

# Chunks of 2^18 entries (2 MiB) for the other long 1-D arrays (voxel indices, row pointers); masks, density and CT
# one x-slab per chunk.
_CHUNK_1D = 1 << 18
_COMPRESSION = {"compression": "gzip", "compression_opts": 4, "shuffle": True}


def write_case(case: Case, path: str | Path) -> None:
    """Write `case` to `path` (overwritten), with its content hash."""
    path = Path(path)
    try:
        with h5py.File(path, "w") as file:
            file.attrs["format"] = FORMAT_NAME
            file.attrs["format_version"] = FORMAT_VERSION
            file.attrs["case_id"] = case.case_id
            file.attrs["content_hash"] = case.content_hash()

            grid = file.create_group("grid")
            grid.create_dataset("shape", data=np.array(case.grid.shape, dtype=np.int64))
            grid.create_dataset("spacing_mm", data=np.array(case.grid.spacing_mm, dtype=np.float64))
            grid.create_dataset("origin_mm", data=np.array(case.grid.origin_mm, dtype=np.float64))

            influence = file.create_group("influence")
            influence.attrs["n_beamlets"] = case.n_beamlets
            influence.attrs["units"] = INFLUENCE_UNITS
            _write_1d(influence, "voxel_indices", case.voxel_indices.astype(np.int64, copy=False))
            _write_1d(influence, "indptr", case.influence.indptr.astype(np.int64, copy=False))
            # A's values and column indices as they are, contiguous: they are most of a case file and, compressed,
            # most of its load time (the large benchmark case's 32.2M entries: 0.06 s from 257 MB, against 0.61 s
            # from 110 MB with gzip and shuffle, 0.27 s from 156 MB with LZF, which readers outside h5py lack). A
            # planning session loads its case again for every protocol and cohort; disk is the cheaper of the two
            # (docs/performance-history.md, twenty-third pass).
            influence.create_dataset("indices", data=case.influence.indices.astype(np.int32, copy=False))
            influence.create_dataset("data", data=case.influence.data.astype(np.float32, copy=False))

            beams = file.create_group("beams")
            beams.create_dataset("id", data=np.array([b.id for b in case.beams], dtype=np.int64))
            for name in ("gantry_deg", "couch_deg", "collimator_deg", "sad_mm"):
                beams.create_dataset(name, data=np.array([getattr(b, name) for b in case.beams], dtype=np.float64))
            beams.create_dataset(
                "isocenter_mm", data=np.array([b.isocenter_mm for b in case.beams], dtype=np.float64).reshape(-1, 3)
            )
            beams.create_dataset("energy", data=[b.energy for b in case.beams], dtype=h5py.string_dtype())

            beamlets = file.create_group("beamlets")
            beamlets.create_dataset("beam_id", data=case.beamlets.beam_id.astype(np.int64))
            for name in ("x_mm", "y_mm", "width_mm", "height_mm"):
                beamlets.create_dataset(name, data=getattr(case.beamlets, name).astype(np.float64))

            structures = file.create_group("structures")
            names = list(case.structures)
            structures.create_dataset("names", data=names, dtype=h5py.string_dtype())
            structures.create_dataset(
                "colors", data=[case.structures[n].color for n in names], dtype=h5py.string_dtype()
            )
            masks = structures.create_dataset(
                "masks",
                shape=(len(names), *case.grid.shape),
                dtype=np.uint8,
                chunks=(1, 1, *case.grid.shape[1:]) if names else None,
                **(_COMPRESSION if names else {}),
            )
            for position, name in enumerate(names):
                masks[position] = case.structures[name].mask.view(np.uint8)

            for name, values in (("density", case.density), ("ct_hu", case.ct_hu)):
                if values is not None:
                    file.create_dataset(
                        name,
                        data=values.astype(np.float32, copy=False),
                        chunks=(1, *case.grid.shape[1:]),
                        **_COMPRESSION,
                    )

            metadata = file.create_group("metadata")
            for name in ("source", "dose_engine", "created", "notes"):
                metadata.attrs[name] = getattr(case.metadata, name)
            extra = metadata.create_group("extra")
            for key, value in case.metadata.extra.items():
                extra.attrs[key] = value
    except OSError as error:
        raise CaseError(f"{path}: cannot write the case file ({error})") from error


def _write_1d(group: h5py.Group, name: str, values: np.ndarray) -> None:
    chunks = (min(max(len(values), 1), _CHUNK_1D),)
    group.create_dataset(name, data=values, chunks=chunks, **_COMPRESSION)


def read_case(path: str | Path) -> Case:
    """Read and validate a case file; every error names the file and the dataset."""
    path = Path(path)
    if not path.is_file():
        raise CaseError(f"{path}: case file not found")
    try:
        file = h5py.File(path, "r")
    except OSError as error:
        raise CaseError(f"{path}: not a readable HDF5 file ({error})") from error
    with file:
        reader = _Reader(file, path)
        try:
            return reader.case()
        except CaseError:
            raise
        # h5py raises these on damaged data (a link it cannot follow is `_Reader.node`'s CaseError; a
        # KeyError here would be specc's own reader asking for what it never checked: a bug, shown as one)
        except (OSError, ValueError, TypeError) as error:
            raise CaseError(f"{path}: damaged case file ({error})") from error


class _Reader:
    """Reads one open file, checking each dataset before it is used."""

    def __init__(self, file: h5py.File, path: Path) -> None:
        self.file = file
        self.path = path

    def error(self, where: str, message: str) -> CaseError:
        return CaseError(f"{self.path}: {where}: {message}")

    def attr(self, obj: h5py.HLObject, name: str, where: str) -> object:
        if name not in obj.attrs:
            raise self.error(where, f"missing attribute {name!r}")
        return self.attr_value(obj.attrs[name], f"{where} attribute {name!r}")

    def attr_value(self, value: object, where: str) -> object:
        """An attribute's one value as Python: some MATLAB and h5py writers store a string
        or number as a one-element array (`[b'Gy ...']`, `[[1]]`), which holds the same one value; an
        array of several (or no) values is refused, naming what it holds, never read as its text."""
        if isinstance(value, np.ndarray):
            if value.size != 1:
                raise self.error(where, f"holds {value.size} values {_shown(value)}, expected one")
            value = value.reshape(-1)[0]
        if isinstance(value, bytes):
            return value.decode()
        return value.item() if isinstance(value, np.generic) else value

    def node(self, name: str, where: str) -> h5py.HLObject | None:
        """The group or dataset at `name`, or None where nothing is; a link that leads nowhere
        (an external file that cannot be opened, a dangling or looping soft link) is a CaseError."""
        try:
            link = self.file.get(name, getlink=True)
            return None if link is None else self.file[name]
        except (KeyError, RuntimeError, OSError) as error:
            raise self.error(where, _broken_link(self.file, name, error)) from error

    def dataset(self, name: str, kind: str, ndim: int, length: int | None = None, finite: bool = True) -> np.ndarray:
        """Read dataset `name`, requiring a dtype kind ('i' integer, 'f' float, 'u' uint, 'S' string) and, unless
        `finite` is False (values another check covers), finite floats."""
        dataset = self.node(name, f"dataset /{name}")
        if not isinstance(dataset, h5py.Dataset):
            raise self.error(f"dataset /{name}", "missing")
        if kind == "S":
            if h5py.check_string_dtype(dataset.dtype) is None:
                raise self.error(f"dataset /{name}", f"must hold strings, has {dataset.dtype}")
            values = np.array(dataset.asstr()[()], dtype=object)
        else:
            kinds = {"i": "iu", "f": "f", "u": "ub"}[kind]
            if dataset.dtype.kind not in kinds:
                raise self.error(f"dataset /{name}", f"has dtype {dataset.dtype}, expected {_KIND_NAMES[kind]}")
            values = dataset[()]
        if values.ndim != ndim:
            raise self.error(f"dataset /{name}", f"must be {ndim}-D, has shape {values.shape}")
        if length is not None and values.shape[0] != length:
            raise self.error(f"dataset /{name}", f"has {values.shape[0]} entries, expected {length}")
        if kind == "f" and finite and not np.isfinite(values).all():
            raise self.error(f"dataset /{name}", "contains NaN or Inf")
        return values

    def case(self) -> Case:
        file = self.file
        fmt = self.attr(file, "format", "root")
        if fmt != FORMAT_NAME:
            raise self.error("root attribute 'format'", f"is {fmt!r}, expected {FORMAT_NAME!r}")
        version = self.attr(file, "format_version", "root")
        if not isinstance(version, int) or version != FORMAT_VERSION:
            raise self.error(
                "root attribute 'format_version'",
                f"unknown format version {version!r}; this specc reads version {FORMAT_VERSION}",
            )
        case_id = str(self.attr(file, "case_id", "root"))

        grid = self.grid()
        voxel_indices, influence, n_beamlets = self.influence(grid)
        beams = self.beams()
        beamlets = self.beamlets(n_beamlets)
        structures = self.structures(grid)
        density = None
        if self.node("density", "dataset /density") is not None:
            density = self.dataset("density", "f", 3)
            if density.shape != grid.shape:
                raise self.error("dataset /density", f"has shape {density.shape}, the grid is {grid.shape}")
            if (density < 0).any():
                raise self.error("dataset /density", "contains negative values")
        ct_hu = None
        if self.node("ct_hu", "dataset /ct_hu") is not None:
            ct_hu = self.dataset("ct_hu", "f", 3)
            if ct_hu.shape != grid.shape:
                raise self.error("dataset /ct_hu", f"has shape {ct_hu.shape}, the grid is {grid.shape}")
            if ct_hu.min() < MIN_HU:
                raise self.error("dataset /ct_hu", f"has values below {MIN_HU:g} HU (air is -1000 HU)")
        metadata = self.metadata()
        try:
            case = Case(case_id, grid, voxel_indices, influence, beams, beamlets, structures, metadata, density, ct_hu)
        except InfluenceValueError as error:  # the entries' values, checked there alone (`influence`)
            raise self.error("dataset /influence/data", f"the influence matrix {error.issue}") from error
        except CaseError as error:
            raise CaseError(f"{self.path}: {error}") from error

        # Optional for files written by other programs; when present it must match.
        stored_hash = self.attr(file, "content_hash", "root") if "content_hash" in file.attrs else None
        if stored_hash is not None and stored_hash != case.content_hash():
            raise self.error(
                "root attribute 'content_hash'",
                "does not match the content: the file was modified or damaged after it was written",
            )
        return case

    def grid(self) -> Grid:
        shape = self.dataset("grid/shape", "i", 1, 3)
        spacing = self.dataset("grid/spacing_mm", "f", 1, 3)
        origin = self.dataset("grid/origin_mm", "f", 1, 3)
        try:
            return Grid(tuple(int(n) for n in shape), tuple(spacing), tuple(origin))  # type: ignore[arg-type]
        except CaseError as error:
            raise self.error("group /grid", str(error)) from error

    def influence(self, grid: Grid) -> tuple[np.ndarray, sp.csr_matrix, int]:
        group = self.node("influence", "group /influence")
        if not isinstance(group, h5py.Group):
            raise self.error("group /influence", "missing")
        n_beamlets = self.attr(group, "n_beamlets", "group /influence")
        if not isinstance(n_beamlets, int) or n_beamlets < 0:
            raise self.error("group /influence attribute 'n_beamlets'", f"must be a non-negative integer, got {n_beamlets!r}")
        self.influence_units(group)

        voxel_indices = self.dataset("influence/voxel_indices", "i", 1).astype(np.int64, copy=False)
        if len(voxel_indices) and (voxel_indices.min() < 0 or voxel_indices.max() >= grid.n_voxels):
            raise self.error(
                "dataset /influence/voxel_indices",
                f"index out of range: the grid {grid.shape} has flat indices 0..{grid.n_voxels - 1}"
                f"{one_based_hint(voxel_indices.max() == grid.n_voxels)}",
            )
        if len(voxel_indices) > 1 and not (np.diff(voxel_indices) > 0).all():
            raise self.error("dataset /influence/voxel_indices", "must be strictly increasing")
        n_rows = len(voxel_indices)

        indptr = self.dataset("influence/indptr", "i", 1, n_rows + 1).astype(np.int64, copy=False)
        if indptr[0] != 0 or (np.diff(indptr) < 0).any():
            raise self.error("dataset /influence/indptr", "must start at 0 and never decrease")
        indices = self.dataset("influence/indices", "i", 1, int(indptr[-1]))
        if len(indices) and (indices.min() < 0 or indices.max() >= n_beamlets):
            raise self.error(
                "dataset /influence/indices",
                f"column index out of range: the case has {n_beamlets} beamlets (0..{n_beamlets - 1})",
            )
        # its values (finite, >= 0, some dose, no damage) are the Case's validation's to check, once per load: `case`
        # names this dataset in the error it raises
        data = self.dataset("influence/data", "f", 1, int(indptr[-1]), finite=False)
        if data.dtype != np.float32:
            raise self.error("dataset /influence/data", f"has dtype {data.dtype}, expected float32")
        index_dtype = np.int32 if max(n_rows, n_beamlets, int(indptr[-1])) < 2**31 else np.int64
        matrix = sp.csr_matrix(
            (data, indices.astype(index_dtype, copy=False), indptr.astype(index_dtype, copy=False)),
            shape=(n_rows, n_beamlets),
            copy=False,
        )
        if not matrix.has_canonical_format:  # unsorted indices are the writer's choice; a repeated one is not
            matrix.sort_indices()  # in place, no copy
            if (repeated := repeated_entry(matrix)) is not None:
                row, beamlet = repeated
                raise self.error(
                    "dataset /influence/indices",
                    f"row {row} lists beamlet {beamlet} twice: a CSR row holds one entry per beamlet (a writer that "
                    "repeats one would have its values added; sum them before writing, e.g. scipy's sum_duplicates)",
                )
            matrix.has_canonical_format = True  # sorted, each entry once: the Case's validation need not look again
        return voxel_indices, matrix, n_beamlets

    def influence_units(self, group: h5py.Group) -> None:
        """Refuse a `units` label other than the documented one: the entries are read as Gy per unit
        weight per fraction whatever it says, so a case labelled cGy (100x) or total course (x fractions)
        would be planned wrong. No label (other writers need not write one) is the convention."""
        if "units" not in group.attrs:
            return
        label = self.attr(group, "units", "group /influence")
        if isinstance(label, str) and " ".join(label.split()).lower() == INFLUENCE_UNITS.lower():
            return
        raise self.error(
            "group /influence attribute 'units'",
            f"is {label!r}, but specc reads the influence matrix as {INFLUENCE_UNITS!r} (docs/case-format.md); "
            "convert the entries (cGy: x 0.01; a whole course: / its fractions) and write that label, or leave "
            "the attribute out",
        )

    def beams(self) -> list[Beam]:
        ids = self.dataset("beams/id", "i", 1)
        n = len(ids)
        columns = {name: self.dataset(f"beams/{name}", "f", 1, n) for name in ("gantry_deg", "couch_deg", "collimator_deg", "sad_mm")}
        isocenters = self.dataset("beams/isocenter_mm", "f", 2, n)
        if isocenters.shape[1:] != (3,):
            raise self.error("dataset /beams/isocenter_mm", f"must have shape (n_beams, 3), has {isocenters.shape}")
        energies = self.dataset("beams/energy", "S", 1, n)
        try:
            return [
                Beam(
                    id=int(ids[b]),
                    gantry_deg=float(columns["gantry_deg"][b]),
                    couch_deg=float(columns["couch_deg"][b]),
                    collimator_deg=float(columns["collimator_deg"][b]),
                    isocenter_mm=tuple(float(c) for c in isocenters[b]),  # type: ignore[arg-type]
                    sad_mm=float(columns["sad_mm"][b]),
                    energy=str(energies[b]),
                )
                for b in range(n)
            ]
        except CaseError as error:
            raise self.error("group /beams", str(error)) from error

    def beamlets(self, n_beamlets: int) -> Beamlets:
        beam_id = self.dataset("beamlets/beam_id", "i", 1, n_beamlets)
        values = {name: self.dataset(f"beamlets/{name}", "f", 1, n_beamlets) for name in ("x_mm", "y_mm", "width_mm", "height_mm")}
        try:
            return Beamlets(beam_id, **values)
        except CaseError as error:
            raise self.error("group /beamlets", str(error)) from error

    def structures(self, grid: Grid) -> dict[str, Structure]:
        names = self.dataset("structures/names", "S", 1)
        colors = self.dataset("structures/colors", "S", 1, len(names))
        masks = self.node("structures/masks", "dataset /structures/masks")
        if not isinstance(masks, h5py.Dataset):
            raise self.error("dataset /structures/masks", "missing")
        if masks.shape != (len(names), *grid.shape):
            raise self.error(
                "dataset /structures/masks", f"has shape {masks.shape}, expected {(len(names), *grid.shape)}"
            )
        if masks.dtype.kind not in "ub":
            raise self.error("dataset /structures/masks", f"has dtype {masks.dtype}, expected uint8")
        structures: dict[str, Structure] = {}
        for position, name in enumerate(names):
            where = f"dataset /structures/masks[{position}] ({name!r})"
            if name in structures:
                raise self.error("dataset /structures/names", f"structure {name!r} appears twice")
            values = masks[position]
            if values.max(initial=0) > 1:
                raise self.error(where, "mask values must be 0 or 1")
            mask = values.astype(bool)
            if not mask.any():
                raise self.error(where, "structure is empty (no voxel set)")
            try:
                structures[name] = Structure(name, mask, colors[position])
            except CaseError as error:
                raise self.error(where, str(error)) from error
        return structures

    def metadata(self) -> CaseMetadata:
        group = self.node("metadata", "group /metadata")
        if not isinstance(group, h5py.Group):
            raise self.error("group /metadata", "missing")
        values = {name: str(self.attr(group, name, "group /metadata")) for name in ("source", "dose_engine", "created")}
        notes = str(self.attr(group, "notes", "group /metadata")) if "notes" in group.attrs else ""
        extra: dict[str, str] = {}
        extra_group = self.node("metadata/extra", "group /metadata/extra")
        if extra_group is not None:
            for key, value in extra_group.attrs.items():
                extra[key] = str(self.attr_value(value, f"group /metadata/extra attribute {key!r}"))
        return CaseMetadata(notes=notes, extra=extra, **values)


def _broken_link(file: h5py.File, name: str, error: Exception) -> str:
    """Why the object at `name` cannot be opened, naming the link that leads nowhere."""
    parts = name.split("/")
    for depth in range(1, len(parts) + 1):  # the first link along the path that h5py cannot follow
        path = "/".join(parts[:depth])
        try:
            link = file.get(path, getlink=True)
        except (KeyError, RuntimeError, OSError):
            break
        try:
            file[path]
        except (KeyError, RuntimeError, OSError):
            which = "it" if path == name else f"/{path} on its path"
            if isinstance(link, h5py.ExternalLink):
                return f"{which} is an external link to {link.filename}:{link.path}, which cannot be opened ({error})"
            if isinstance(link, h5py.SoftLink):
                return f"{which} is a soft link to {link.path} that leads nowhere or loops ({error})"
            break
    return f"cannot be opened ({error})"


_SHOWN = 5  # values an error shows of an attribute array


def _shown(values: np.ndarray) -> str:
    """An attribute array as a reader writes it: strings decoded, not numpy's repr; its first few values."""
    flat = values.reshape(-1)
    items = [item.decode(errors="replace") if isinstance(item, bytes) else item for item in flat[:_SHOWN].tolist()]
    return repr(items)[:-1] + (", ...]" if flat.size > _SHOWN else "]")


_KIND_NAMES = {"i": "an integer type", "f": "a float type", "u": "uint8", "S": "strings"}
