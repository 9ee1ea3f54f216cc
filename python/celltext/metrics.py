"""Classification metrics on label arrays (the CLI's reports; scikit-learn's definitions)."""

from __future__ import annotations

import json
from typing import Any, Dict, Sequence

from . import _celltext
from ._errors import translated


def _labels(y: Sequence[Any]) -> list:
    return ["" if v is None else str(v) for v in y]


@translated()
def classification_report(y_true: Sequence[Any], y_pred: Sequence[Any]) -> Dict[str, Any]:
    """Accuracy, macro and weighted precision/recall/F1, Cohen's kappa, per-class scores and
    the confusion matrix.

    Parameters
    ----------
    y_true : sequence
        True labels (compared as strings).
    y_pred : sequence
        Predicted labels, one per true label.

    Returns
    -------
    dict
        ``accuracy``, ``macro_f1``, ``weighted_f1``, ``cohen_kappa``, ...; ``classes``: the
        class names (sorted distinct labels of both arrays); ``labels``: their indices;
        ``per_class``: one dict per class (``name``, ``precision``, ``recall``, ``f1``,
        ``support``); ``confusion[i][j]``: cells of class ``classes[i]`` predicted as
        ``classes[j]``; ``confusion_normalized``: rows divided by their sums.

    Examples
    --------
    >>> celltext.metrics.classification_report(["a", "b", "b"], ["a", "b", "a"])["accuracy"]
    0.6666666666666666
    """
    yt, yp = _labels(y_true), _labels(y_pred)
    r = json.loads(_celltext.classification_report(yt, yp))
    names = sorted(set(yt) | set(yp))
    r["classes"] = [names[i] for i in r["labels"]]
    return r


def accuracy(y_true: Sequence[Any], y_pred: Sequence[Any]) -> float:
    """Share of cells whose prediction equals the true label.

    Parameters
    ----------
    y_true : sequence
        True labels.
    y_pred : sequence
        Predicted labels.

    Returns
    -------
    float
        Accuracy in [0, 1].

    Examples
    --------
    >>> celltext.metrics.accuracy(["a", "b"], ["a", "a"])
    0.5
    """
    return classification_report(y_true, y_pred)["accuracy"]


def macro_f1(y_true: Sequence[Any], y_pred: Sequence[Any]) -> float:
    """Unweighted mean of the per-class F1 scores.

    Parameters
    ----------
    y_true : sequence
        True labels.
    y_pred : sequence
        Predicted labels.

    Returns
    -------
    float
        Macro F1 in [0, 1].

    Examples
    --------
    >>> celltext.metrics.macro_f1(["a", "b"], ["a", "b"])
    1.0
    """
    return classification_report(y_true, y_pred)["macro_f1"]


def weighted_f1(y_true: Sequence[Any], y_pred: Sequence[Any]) -> float:
    """Per-class F1 averaged with class support as weights.

    Parameters
    ----------
    y_true : sequence
        True labels.
    y_pred : sequence
        Predicted labels.

    Returns
    -------
    float
        Weighted F1 in [0, 1].

    Examples
    --------
    >>> celltext.metrics.weighted_f1(["a", "b"], ["a", "b"])
    1.0
    """
    return classification_report(y_true, y_pred)["weighted_f1"]


def cohen_kappa(y_true: Sequence[Any], y_pred: Sequence[Any]) -> float:
    """Cohen's kappa: agreement corrected for chance.

    Parameters
    ----------
    y_true : sequence
        True labels.
    y_pred : sequence
        Predicted labels.

    Returns
    -------
    float
        Kappa in [-1, 1].

    Examples
    --------
    >>> celltext.metrics.cohen_kappa(["a", "b"], ["a", "b"])
    1.0
    """
    return classification_report(y_true, y_pred)["cohen_kappa"]


__all__ = ["classification_report", "accuracy", "macro_f1", "weighted_f1", "cohen_kappa"]
