"""MATLAB .mat files (v5/v7 via scipy, v7.3 via h5py) as plain Python values.

Both readers return the same shapes, so the matRad importer reads a workspace without
knowing how it was saved: a 1x1 struct is a `dict`, a struct array a `list[dict]` (in
MATLAB's linear order), a cell array a 2-D object `ndarray` in MATLAB's shape, a char array
a `str`, a numeric or logical array an `ndarray` in MATLAB's shape (at least 2-D, as MATLAB
has no vectors), and a sparse matrix a `scipy.sparse.csc_matrix`.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import scipy.io
import scipy.sparse as sp
from scipy.io.matlab import MatReadError, mat_struct

from specc.errors import CaseError


def load_mat(path: str | Path, names: Collection[str] | None = None) -> dict[str, Any]:
    """Top-level variables of a .mat file, by name; only those in `names` when given, so that a
    reader of the small variables (cst, pln) does not load a workspace's influence matrix."""
    path = Path(path)
    if not path.exists():
        raise CaseError(f"{path}: no such file")
    if h5py.is_hdf5(path):
        # A v7.3 file copied in part (an interrupted transfer of a large dij) opens or reads with an OSError
        # (truncated file), and a damaged one with a KeyError or ValueError from a dangling reference.
        try:
            with h5py.File(path, "r") as handle:
                return {
                    name: _from_hdf5(handle[name], handle)
                    for name in handle
                    if not name.startswith("#") and (names is None or name in names)
                }
        except (OSError, KeyError, ValueError, RuntimeError) as error:
            raise CaseError(f"{path}: not a readable MATLAB v7.3 (HDF5) .mat file ({error})") from None
    try:
        raw = scipy.io.loadmat(
            path,
            struct_as_record=False,
            squeeze_me=False,
            chars_as_strings=True,
            variable_names=None if names is None else list(names),
        )
    # scipy probes the header by index: a file shorter than the header gives an IndexError.
    except (MatReadError, ValueError, OSError, IndexError) as error:
        raise CaseError(f"{path}: not a readable MATLAB .mat file ({error})") from None
    return {name: _from_scipy(value) for name, value in raw.items() if not name.startswith("__")}


def _from_scipy(value: Any) -> Any:
    if isinstance(value, mat_struct):
        return {name: _from_scipy(getattr(value, name)) for name in value._fieldnames}
    if sp.issparse(value):
        return sp.csc_matrix(value)
    if isinstance(value, str):
        return value
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "US":
            return "".join(str(v) for v in value.ravel(order="F"))
        if value.dtype == object:
            items = [_from_scipy(v) for v in value.ravel(order="F")]
            if items and all(isinstance(item, dict) for item in items) and _is_struct_array(value):
                return items[0] if len(items) == 1 else items
            cell = np.empty(len(items), dtype=object)
            cell[:] = items
            return cell.reshape(value.shape, order="F")
        return value
    return value


def _is_struct_array(value: np.ndarray) -> bool:
    return all(isinstance(v, mat_struct) for v in value.ravel())


def _from_hdf5(node: h5py.Group | h5py.Dataset, root: h5py.File) -> Any:
    matlab_class = node.attrs.get("MATLAB_class", b"")
    matlab_class = matlab_class.decode() if isinstance(matlab_class, bytes) else str(matlab_class)
    if isinstance(node, h5py.Group):
        if "MATLAB_sparse" in node.attrs:
            n_rows = int(node.attrs["MATLAB_sparse"])
            jc = node["jc"][()].astype(np.int64)
            ir = node["ir"][()].astype(np.int64) if "ir" in node else np.empty(0, dtype=np.int64)
            data = node["data"][()] if "data" in node else np.empty(0)
            if data.dtype.names:  # complex sparse: not a dose
                raise CaseError(f"{node.name}: complex sparse matrices are not supported")
            return sp.csc_matrix((data.astype(np.float64), ir, jc), shape=(n_rows, len(jc) - 1))
        fields = [name for name in node if not name.startswith("#")]
        values = {name: node[name] for name in fields}
        # A struct array stores every field as a dataset of references, one per element.
        if fields and all(
            isinstance(v, h5py.Dataset) and v.dtype == h5py.ref_dtype and _class(v) != "cell" for v in values.values()
        ):
            refs = {name: values[name][()].T.ravel(order="F") for name in fields}
            count = len(next(iter(refs.values())))
            return [{name: _from_hdf5(root[refs[name][i]], root) for name in fields} for i in range(count)]
        return {name: _from_hdf5(value, root) for name, value in values.items()}
    if node.attrs.get("MATLAB_empty", 0):
        return "" if matlab_class == "char" else np.zeros((0, 0))
    data = node[()]
    if matlab_class == "cell" or node.dtype == h5py.ref_dtype:
        refs = np.asarray(data).T  # HDF5 stores MATLAB arrays transposed
        cell = np.empty(refs.shape, dtype=object)
        for index in np.ndindex(refs.shape):
            cell[index] = _from_hdf5(root[refs[index]], root)
        return cell
    if matlab_class == "char":
        return "".join(chr(c) for c in np.asarray(data).T.ravel(order="F"))
    array = np.asarray(data).T
    if matlab_class == "logical":
        array = array.astype(bool)
    return np.atleast_2d(array)


def _class(dataset: h5py.Dataset) -> str:
    value = dataset.attrs.get("MATLAB_class", b"")
    return value.decode() if isinstance(value, bytes) else str(value)
