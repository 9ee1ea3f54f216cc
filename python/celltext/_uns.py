"""Provenance as data: values for ``adata.uns`` that h5ad and zarr store natively (nested
dicts of str keys, scalars, strings and NumPy arrays; no None, no lists of dicts, no JSON
strings). Internal."""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any, Dict, List, Optional

import numpy as np

SAMPLE = 10  # items kept of a long list unless the full list is asked for


def summary(items: List[str], full: bool, sample: int = SAMPLE) -> Dict[str, Any]:
    """A long list as its count and first ``sample`` items (``full``: every item)."""
    out: Dict[str, Any] = {"n": len(items), "sample": to_uns(list(items[:sample]))}
    if full:
        out["all"] = to_uns(list(items))
    return out


def to_uns(obj: Any, max_list: Optional[int] = None) -> Any:
    """``obj`` (parsed JSON, dicts, lists, scalars) as a value anndata writes to h5ad and zarr.

    Dict keys become strings and None values are dropped; lists of one scalar type become
    1-D arrays, rectangular lists of number lists 2-D arrays, other lists dicts keyed "0",
    "1", ...; with ``max_list``, string lists longer than that are summarised
    (:func:`summary`)."""
    if isinstance(obj, dict):
        return {str(k): to_uns(v, max_list) for k, v in obj.items() if v is not None}
    if isinstance(obj, np.ndarray):
        return obj
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, Integral):
        return int(obj)
    if isinstance(obj, Real):
        return float(obj)
    if isinstance(obj, str):
        return obj
    if obj is None:
        return ""
    if isinstance(obj, (list, tuple)):
        items = list(obj)
        if not items:
            return np.zeros(0, dtype=np.int64)
        if all(isinstance(v, str) for v in items):
            if max_list is not None and len(items) > max_list:
                return summary(items, full=False)
            return np.array(items, dtype=object)
        if all(isinstance(v, (bool, np.bool_)) for v in items):
            return np.array(items, dtype=bool)
        if all(isinstance(v, Integral) and not isinstance(v, bool) for v in items):
            return np.array(items, dtype=np.int64)
        if all(isinstance(v, Real) and not isinstance(v, bool) for v in items):
            return np.array(items, dtype=np.float64)
        if all(isinstance(v, (list, tuple)) for v in items):
            lens = {len(v) for v in items}
            flat = [x for v in items for x in v]
            if len(lens) == 1 and flat and all(
                isinstance(x, Real) and not isinstance(x, bool) for x in flat
            ):
                dtype = np.int64 if all(isinstance(x, Integral) for x in flat) else np.float64
                return np.array(items, dtype=dtype)
        return {str(i): to_uns(v, max_list) for i, v in enumerate(items) if v is not None}
    raise TypeError(f"cannot store a {type(obj).__name__} in uns")


def metrics_to_uns(metrics: Dict[str, Any]) -> Dict[str, Any]:
    """A classification report as uns data: class names, confusion matrices as 2-D arrays and
    the per-class scores as one array per score (rows in the order of ``classes``)."""
    out = {k: v for k, v in metrics.items() if k not in ("per_class",)}
    per = metrics.get("per_class") or []
    if per:
        cols: Dict[str, List[Any]] = {}
        for row in per:
            for k, v in row.items():
                cols.setdefault(k, []).append(v)
        out["per_class"] = cols
    return to_uns(out)
