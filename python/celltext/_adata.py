"""AnnData → the buffers the Rust core reads. Internal."""

from __future__ import annotations

from typing import Any, List, NamedTuple, Optional

import numpy as np
import scipy.sparse as sp


class Matrix(NamedTuple):
    """A cells × genes CSR matrix as the core takes it."""

    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray
    n_rows: int
    n_cols: int
    field: str
    copied: bool


def _layers_list(adata: Any) -> str:
    names = list(adata.layers.keys())
    return ", ".join(names) if names else "(none)"


def check_source(adata: Any, layer: Optional[str], raw: bool) -> None:
    """``raw=`` and ``layer=`` name a matrix that exists (before anything reads it)."""
    if raw and layer is not None:
        raise ValueError(
            f"raw=True and layer={layer!r} are mutually exclusive (adata.raw has no layers): "
            "pass raw=True to read adata.raw.X, or layer= to read adata.layers[layer]"
        )
    if raw and getattr(adata, "raw", None) is None:
        raise ValueError(
            "raw=True but adata.raw is None; drop raw=True, or read a layer with layer= "
            f"(available layers: {_layers_list(adata)})"
        )
    if layer is not None and layer not in adata.layers:
        raise KeyError(
            f"layer={layer!r}: not found in adata.layers; available layers: {_layers_list(adata)}"
        )


def matrix(adata: Any, layer: Optional[str] = None, raw: bool = False) -> Matrix:
    """The expression matrix of ``adata`` (``X``, ``layers[layer]`` or ``raw.X``) as CSR.

    A scipy CSR matrix with float32 values is read in place (no copy). Other layouts are
    converted first, which copies: CSC and dense arrays to CSR, other dtypes to float32, and
    rows with unsorted column indices are sorted in a copy.
    """
    check_source(adata, layer, raw)
    if raw:
        x, field = adata.raw.X, "raw.X"
    elif layer is not None:
        x, field = adata.layers[layer], f"layers['{layer}']"
    else:
        x, field = adata.X, "X"
        if x is None:
            raise ValueError(
                "adata.X is None; choose a matrix with layer= (available layers: "
                f"{_layers_list(adata)})"
            )
    copied = False
    if sp.issparse(x):
        if x.format != "csr":
            x, copied = sp.csr_matrix(x.tocsr()), True
        if x.dtype != np.float32:
            x, copied = x.astype(np.float32), True
        if not x.has_sorted_indices:
            if not copied:
                x = x.copy()
            x.sort_indices()
            copied = True
    elif isinstance(x, np.ndarray) or hasattr(x, "__array__"):
        arr = np.asarray(x)
        if arr.ndim != 2:
            raise ValueError(f"AnnData: {field}: expected a 2-D matrix, found shape {arr.shape}")
        x, copied = sp.csr_matrix(arr.astype(np.float32, copy=False)), True
    else:
        raise TypeError(
            f"AnnData: {field} is a {type(x).__name__}; celltext reads scipy sparse matrices and "
            "NumPy arrays (load backed or dask data into memory first)"
        )
    n_rows, n_cols = x.shape
    if n_rows != adata.n_obs:
        raise ValueError(
            f"AnnData: dimension mismatch: {field} is {n_rows} × {n_cols} but obs has "
            f"{adata.n_obs} cells"
        )
    return Matrix(x.indptr, x.indices, x.data, n_rows, n_cols, field, copied)


def _utf8_names(values: Any, what: str) -> List[str]:
    out = []
    for i, v in enumerate(values):
        if isinstance(v, bytes):
            try:
                v = v.decode("utf-8")
            except UnicodeDecodeError as e:
                raise ValueError(
                    f"AnnData: {what}: name {i} ({v!r}) is not valid UTF-8 ({e.reason} at byte "
                    f"{e.start}); re-encode the names as UTF-8 text"
                ) from None
        v = str(v)
        try:
            v.encode("utf-8")
        except UnicodeEncodeError as e:
            raise ValueError(
                f"AnnData: {what}: name {i} ({v!r}) is not valid UTF-8 (unpaired surrogate at "
                f"character {e.start}); re-encode the names as UTF-8 text"
            ) from None
        out.append(v)
    return out


def gene_names(
    adata: Any, gene_symbols_key: Optional[str] = None, raw: bool = False
) -> List[str]:
    """Gene names: var_names, or the var column ``gene_symbols_key``."""
    check_source(adata, None, raw)
    var = adata.raw.var if raw else adata.var
    if gene_symbols_key is None:
        return _utf8_names(var.index, "var_names")
    if gene_symbols_key not in var.columns:
        raise KeyError(
            f"gene_symbols_key={gene_symbols_key!r}: no such column in adata.{'raw.' if raw else ''}var; available columns: "
            f"{', '.join(map(str, var.columns)) or '(none)'}"
        )
    return _utf8_names(var[gene_symbols_key], f"var['{gene_symbols_key}']")


def cell_names(adata: Any) -> List[str]:
    return _utf8_names(adata.obs_names, "obs_names")


def obs_labels(adata: Any, key: str) -> List[str]:
    """An obs column as label strings (missing values as ""), as the CLI reads it."""
    if key not in adata.obs.columns:
        cols = list(map(str, adata.obs.columns))
        hint = next(
            (f" (did you mean '{c}'? names are case-sensitive)" for c in cols if c.lower() == key.lower()),
            "",
        )
        if not cols:
            raise KeyError(
                f"label={key!r}: obs column '{key}' not found: this input has no obs (cell annotation) "
                f"columns{hint}"
            )
        raise KeyError(f"label={key!r}: obs column '{key}' not found{hint}; available columns: {', '.join(cols)}")
    col = adata.obs[key]
    out = []
    for v in col.astype(object):
        if v is None or (isinstance(v, float) and np.isnan(v)):
            out.append("")
        elif isinstance(v, (float, np.floating)) and float(v).is_integer() and abs(v) < 1e15:
            out.append(str(int(v)))
        else:
            out.append(str(v))
    return out


def representation(adata: Any, use_rep: str) -> np.ndarray:
    """``obsm[use_rep]`` (or ``X`` for ``use_rep="X"``) as a C-contiguous float32 array."""
    if use_rep == "X":
        x = adata.X
        x = x.toarray() if sp.issparse(x) else np.asarray(x)
    else:
        if use_rep not in adata.obsm:
            keys = ", ".join(adata.obsm.keys()) or "(none)"
            raise KeyError(f"use_rep={use_rep!r}: obsm['{use_rep}'] not found; available: {keys}")
        x = adata.obsm[use_rep]
        x = x.toarray() if sp.issparse(x) else np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"use_rep={use_rep!r}: obsm['{use_rep}'] must be 2-D, found shape {x.shape}")
    return np.ascontiguousarray(x, dtype=np.float32)
