"""Plots in scanpy's style, drawn with matplotlib: each takes the AnnData (and the keys the
``tl`` functions wrote), draws on ``ax`` or a new figure, and returns the axes. They show the
same pictures as the CLI's reports: a row-normalized confusion matrix, a k sweep on a log
axis, and accuracy by embedding source."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import pandas as pd

from . import _adata, _celltext
from ._errors import translated


def _plt() -> Any:
    try:
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError(
            "celltext.pl draws with matplotlib: pip install matplotlib (or celltext[plot])"
        ) from None
    return plt


def _axes(ax: Any, size: Sequence[float]) -> Any:
    if ax is not None:
        return ax
    _, ax = _plt().subplots(figsize=tuple(size))
    return ax


def _finish(ax: Any, show: bool) -> Any:
    if show:
        _plt().show()
    return ax


def _missing(v: Any) -> bool:
    if v is None:
        return True
    if isinstance(v, float) and np.isnan(v):
        return True
    s = str(v).strip()
    return not s or s.lower() == "nan"


@translated()
def confusion(
    adata: Any,
    label: str,
    pred: str,
    split: Optional[str] = "test",
    normalize: bool = True,
    annotate: bool = True,
    cmap: str = "viridis",
    ax: Any = None,
    show: bool = False,
) -> Any:
    """Confusion matrix of ``obs[label]`` (rows) against ``obs[pred]`` (columns): the CLI
    report's heatmap (cells coloured by their row-normalized value, viridis, annotated with
    their counts).

    Parameters
    ----------
    adata : anndata.AnnData
        Cells with true and predicted labels.
    label : str
        ``obs`` column of the true labels.
    pred : str
        ``obs`` column of the predictions (e.g. ``celltext_knn_pred``).
    split : str, optional
        Only cells whose ``obs[<prefix>_split]`` (the prediction's prefix, e.g.
        ``celltext_knn_split``) equals this (default ``test``: the cells the metrics score);
        None: every labelled cell.
    normalize : bool
        Colour by each row divided by its sum (the share of a true class predicted as each
        class); False: by the counts.
    annotate : bool
        Write each non-zero cell's count (up to 30 classes).
    cmap : str
        Matplotlib colour map.
    ax : matplotlib.axes.Axes, optional
        Draw here instead of on a new figure.
    show : bool
        Call ``plt.show()`` (in a notebook the figure shows anyway).

    Returns
    -------
    matplotlib.axes.Axes
        The axes; the matrix is ``ax.images[0].get_array()``, classes in the order of the
        label's categories (sorted labels for a non-categorical column).

    Examples
    --------
    >>> celltext.tl.knn_classify(adata, "label", use_rep="X_celltext_genept_w")
    >>> celltext.pl.confusion(adata, "label", "celltext_knn_pred")
    """
    for key, arg in ((label, "label"), (pred, "pred")):
        if key not in adata.obs.columns:
            raise KeyError(
                f"{arg}={key!r}: no such obs column; available: {', '.join(map(str, adata.obs.columns))}"
            )
    truth, guess = adata.obs[label], adata.obs[pred]
    keep = np.array([not _missing(v) for v in truth.tolist()])
    where = "labelled cells"
    if split is not None:
        base = pred[: -len("_pred")] if pred.endswith("_pred") else pred
        col = f"{base}_split"
        if col not in adata.obs.columns:
            raise KeyError(
                f"split={split!r}: no obs column {col!r} beside pred={pred!r}; pass split=None "
                "to use every labelled cell"
            )
        keep &= (adata.obs[col].astype(str) == split).to_numpy()
        where = f"{split} cells"
    if not keep.any():
        raise ValueError(f"no {where} to draw (label={label!r}, split={split!r})")
    if isinstance(truth.dtype, pd.CategoricalDtype):
        classes = list(truth.cat.categories)
    else:
        classes = sorted({v for v in truth[keep].tolist()} | {v for v in guess[keep].tolist()},
                         key=str)
    index = {str(c): i for i, c in enumerate(classes)}
    t = [index[str(v)] for v in truth[keep].tolist()]
    p = [index.get(str(v), -1) for v in guess[keep].tolist()]
    if min(p) < 0:
        extra = sorted({str(v) for v, i in zip(guess[keep].tolist(), p) if i < 0})
        raise ValueError(f"pred={pred!r} has classes not in label={label!r}: {', '.join(extra)}")
    n = len(classes)
    cm = np.zeros((n, n), dtype=np.int64)
    np.add.at(cm, (np.array(t), np.array(p)), 1)
    shown = cm.astype(np.float64)
    if normalize:
        sums = shown.sum(axis=1, keepdims=True)
        shown = np.divide(shown, sums, out=np.zeros_like(shown), where=sums > 0)
    size = max(4.0, 0.45 * n + 2.5)
    ax = _axes(ax, (size + 1.0, size))
    im = ax.imshow(shown, cmap=cmap, vmin=0.0, vmax=1.0 if normalize else None)
    ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04,
                       label="share of the true class" if normalize else "cells")
    names = [str(c) for c in classes]
    ax.set_xticks(range(n), names, rotation=90)
    ax.set_yticks(range(n), names)
    ax.set_xlabel(f"predicted ({pred})")
    ax.set_ylabel(f"true ({label})")
    ax.set_title(f"{pred}: {where}, n = {int(keep.sum())}")
    if annotate and n <= 30:
        top = shown.max() if shown.size else 1.0
        for i in range(n):
            for j in range(n):
                if cm[i, j]:
                    dark = shown[i, j] < 0.5 * top  # viridis is dark at the low end
                    ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", fontsize=7,
                            color="white" if dark else "black")
    return _finish(ax, show)


@translated()
def k_sweep(
    adata: Any,
    label: str,
    use_rep: str = "X_celltext_genept_w",
    ks: Sequence[int] = (1, 3, 5, 10, 20, 50),
    metrics: Sequence[str] = ("accuracy", "macro_f1"),
    vote: str = "majority",
    test_fraction: float = 0.2,
    seed: int = 0,
    ax: Any = None,
    show: bool = False,
) -> Any:
    """Test metrics of cosine KNN against k (log axis), one line per metric.

    Each k is :func:`celltext.tl.knn_classify` with the same split (``test_fraction``,
    ``seed``); nothing is written into ``adata``.

    Parameters
    ----------
    adata : anndata.AnnData
        Cells with an embedding and labels.
    label : str
        ``obs`` column of the cell types.
    use_rep : str
        ``obsm`` key of the embedding.
    ks : sequence of int
        The k values (at least 1).
    metrics : sequence of str
        Keys of the metrics dict to draw (``accuracy``, ``macro_f1``, ``weighted_f1``,
        ``cohen_kappa``, ...).
    vote : {'majority', 'distance'}
        Vote of the neighbours.
    test_fraction : float
        Share of each class held out.
    seed : int
        Seed of the split.
    ax : matplotlib.axes.Axes, optional
        Draw here instead of on a new figure.
    show : bool
        Call ``plt.show()``.

    Returns
    -------
    matplotlib.axes.Axes
        The axes; line ``i`` is ``metrics[i]`` at the sorted ``ks``.

    Examples
    --------
    >>> celltext.pl.k_sweep(adata, "label", use_rep="X_celltext_genept_w", ks=[1, 5, 10, 30])
    """
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1:
        raise ValueError(f"ks={list(ks)!r}: give k values of at least 1")
    labels = _adata.obs_labels(adata, label)
    x = _adata.representation(adata, use_rep)
    import json

    values: Dict[str, List[float]] = {m: [] for m in metrics}
    for k in ks:
        _, _, _, report = _celltext.knn_classify(
            x, labels, label, k, vote, float(test_fraction), int(seed)
        )
        r = json.loads(report)
        for m in metrics:
            if m not in r or not isinstance(r[m], (int, float)):
                raise ValueError(
                    f"metrics=: {m!r} is not a metric; use accuracy, macro_f1, weighted_f1, "
                    "cohen_kappa, macro_precision, macro_recall, ..."
                )
            values[m].append(float(r[m]))
    ax = _axes(ax, (6.0, 4.0))
    for m in metrics:
        ax.plot(ks, values[m], marker="o", label=m.replace("_", " "))
    ax.set_xscale("log")
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.minorticks_off()
    ax.set_xlabel("k (neighbours)")
    ax.set_ylabel("test score")
    ax.set_title(f"KNN on {use_rep}: {label}")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    return _finish(ax, show)


def _runs(adata: Any) -> List[str]:
    out = []
    for k, v in adata.uns.items():
        if isinstance(v, dict) and isinstance(v.get("metrics"), dict) and isinstance(
            v.get("params"), dict
        ) and "use_rep" in v["params"]:
            out.append(str(k))
    return out


@translated()
def sources(
    adata: Any,
    keys: Optional[Sequence[str]] = None,
    metric: str = "accuracy",
    ax: Any = None,
    show: bool = False,
) -> Any:
    """A metric by embedding source: one bar per classification run stored in ``uns``.

    Parameters
    ----------
    adata : anndata.AnnData
        The AnnData :func:`celltext.tl.knn_classify` / :func:`celltext.tl.mlp_classify`
        wrote into (each run under its ``key_added``).
    keys : sequence of str, optional
        The ``uns`` keys of the runs (default: every run found, in ``uns`` order).
    metric : str
        Which test metric (``accuracy``, ``macro_f1``, ``weighted_f1``, ``cohen_kappa``).
    ax : matplotlib.axes.Axes, optional
        Draw here instead of on a new figure.
    show : bool
        Call ``plt.show()``.

    Returns
    -------
    matplotlib.axes.Axes
        The axes; bar ``i`` is run ``keys[i]``, labelled with its method and embedding(s).

    Examples
    --------
    >>> celltext.tl.knn_classify(adata, "label", use_rep="X_celltext_genept_w",
    ...                          key_added="knn_genept_w")
    >>> celltext.tl.knn_classify(adata, "label", use_rep="X_celltext_sentences",
    ...                          key_added="knn_sentences")
    >>> celltext.pl.sources(adata, metric="macro_f1")
    """
    keys = list(keys) if keys is not None else _runs(adata)
    if not keys:
        raise ValueError(
            "keys=: no classification runs in adata.uns; run celltext.tl.knn_classify or "
            "mlp_classify first (each key_added is one bar)"
        )
    names, vals = [], []
    for k in keys:
        run = adata.uns.get(k)
        if not isinstance(run, dict) or "metrics" not in run:
            raise KeyError(f"keys=: uns[{k!r}] is not a classification run; found: {', '.join(_runs(adata)) or '(none)'}")
        if metric not in run["metrics"]:
            raise ValueError(f"metric={metric!r}: not in uns[{k!r}]['metrics']")
        reps = run["params"].get("use_rep", "?")
        reps = reps if isinstance(reps, str) else " + ".join(map(str, list(reps)))
        method = run.get("method", "")
        names.append(f"{k}\n{method}: {reps}" if method else f"{k}\n{reps}")
        vals.append(float(run["metrics"][metric]))
    ax = _axes(ax, (max(4.0, 1.3 * len(keys) + 1.5), 4.0))
    bars = ax.bar(range(len(keys)), vals, color="#4c72b0")
    for b, v in zip(bars, vals):
        ax.text(b.get_x() + b.get_width() / 2, v, f"{v:.3f}", ha="center", va="bottom",
                fontsize=8)
    ax.set_xticks(range(len(keys)), names, fontsize=8)
    ax.set_ylim(0, 1.05 if max(vals) <= 1 else max(vals) * 1.1)
    ax.set_ylabel(f"test {metric.replace('_', ' ')}")
    ax.set_title(f"{metric.replace('_', ' ')} by embedding source")
    return _finish(ax, show)


__all__ = ["confusion", "k_sweep", "sources"]
