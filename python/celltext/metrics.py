"""Classification metrics on label arrays (the CLI's reports; scikit-learn's definitions)."""

from __future__ import annotations

import json
from typing import Any, Dict, Sequence

from . import _celltext


def _labels(y: Sequence[Any]) -> list:
    return ["" if v is None else str(v) for v in y]


def classification_report(y_true: Sequence[Any], y_pred: Sequence[Any]) -> Dict[str, Any]:
    """Accuracy, macro and weighted precision/recall/F1, Cohen's kappa, per-class scores and
    the confusion matrix; classes are the sorted distinct labels of both arrays."""
    return json.loads(_celltext.classification_report(_labels(y_true), _labels(y_pred)))


def accuracy(y_true: Sequence[Any], y_pred: Sequence[Any]) -> float:
    """Share of cells whose prediction equals the true label."""
    return classification_report(y_true, y_pred)["accuracy"]


def macro_f1(y_true: Sequence[Any], y_pred: Sequence[Any]) -> float:
    """Unweighted mean of the per-class F1 scores."""
    return classification_report(y_true, y_pred)["macro_f1"]


def weighted_f1(y_true: Sequence[Any], y_pred: Sequence[Any]) -> float:
    """Per-class F1 averaged with class support as weights."""
    return classification_report(y_true, y_pred)["weighted_f1"]


def cohen_kappa(y_true: Sequence[Any], y_pred: Sequence[Any]) -> float:
    """Cohen's kappa: agreement corrected for chance."""
    return classification_report(y_true, y_pred)["cohen_kappa"]


__all__ = ["classification_report", "accuracy", "macro_f1", "weighted_f1", "cohen_kappa"]
