"""Clustering metrics, built on scikit-learn and SciPy (chapters 6-8).

>>> import numpy as np
>>> y = np.array([0, 0, 1, 1, 2, 2])
>>> c = np.array([2, 2, 0, 0, 1, 1])          # the same partition, other names
>>> cluster_accuracy(y, c), round(nmi(y, c), 6), round(ari(y, c), 6)
(1.0, 1.0, 1.0)
"""

from __future__ import annotations

from typing import Any, Tuple

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from sklearn.metrics.cluster import contingency_matrix

__all__ = [
    "cluster_accuracy",
    "nmi",
    "ari",
    "scores",
    "linearity",
    "contingency",
    "match_clusters",
]


def _pair(y: Any, c: Any) -> Tuple[np.ndarray, np.ndarray]:
    y_arr = np.asarray(y.detach().cpu() if hasattr(y, "detach") else y)
    c_arr = np.asarray(c.detach().cpu() if hasattr(c, "detach") else c)
    if y_arr.ndim != 1 or c_arr.ndim != 1:
        raise ValueError(
            f"labels and clusters must be 1-D, got shapes {y_arr.shape} and {c_arr.shape}"
        )
    if y_arr.shape != c_arr.shape:
        raise ValueError(
            f"labels and clusters must have the same length, got {y_arr.shape[0]} and {c_arr.shape[0]}"
        )
    if y_arr.size == 0:
        raise ValueError("labels and clusters are empty")
    for name, arr in (("labels", y_arr), ("clusters", c_arr)):
        if arr.dtype.kind in "fc" and not np.isfinite(arr).all():
            raise ValueError(
                f"{name} contain NaN or infinite values ({int((~np.isfinite(arr)).sum())} of {arr.size})"
            )
    return y_arr, c_arr


def match_clusters(y: Any, c: Any) -> dict:
    """The one-to-one map cluster -> label that maximises agreement (Hungarian algorithm)."""
    y_arr, c_arr = _pair(y, c)
    labels, clusters = np.unique(y_arr), np.unique(c_arr)
    table = contingency_matrix(y_arr, c_arr)  # rows: labels, columns: clusters
    rows, cols = linear_sum_assignment(-table)
    return {int(clusters[j]): int(labels[i]) for i, j in zip(rows, cols)}


def cluster_accuracy(y: Any, c: Any) -> float:
    """Matched accuracy: the fraction of points whose cluster maps to their label under the best one-to-one map."""
    y_arr, c_arr = _pair(y, c)
    table = contingency_matrix(y_arr, c_arr)
    rows, cols = linear_sum_assignment(-table)
    return float(table[rows, cols].sum() / y_arr.size)


def nmi(y: Any, c: Any) -> float:
    """Normalized mutual information (arithmetic normalisation, scikit-learn's default)."""
    return float(normalized_mutual_info_score(*_pair(y, c)))


def ari(y: Any, c: Any) -> float:
    """Adjusted Rand index."""
    return float(adjusted_rand_score(*_pair(y, c)))


def scores(y: Any, c: Any) -> dict:
    """The three clustering scores of the paper's tables: ``{"acc", "nmi", "ari"}`` (chapter 6).

    >>> scores([0, 0, 1, 1], [1, 1, 0, 0])
    {'acc': 1.0, 'nmi': 1.0, 'ari': 1.0}
    """
    y_arr, c_arr = _pair(y, c)
    return {
        "acc": cluster_accuracy(y_arr, c_arr),
        "nmi": nmi(y_arr, c_arr),
        "ari": ari(y_arr, c_arr),
    }


def linearity(x: Any, c: Any) -> float:
    """How well one straight line (a logistic regression) reproduces the clustering ``c`` of the
    points ``x``: the fraction of points it assigns as ``c`` does; 1.0 for a split into two
    half-planes, and for a single cluster (chapter 7).

    >>> import numpy as np
    >>> x = np.array([[-2.0, 0.0], [-1.0, 1.0], [1.0, 0.0], [2.0, 1.0]])
    >>> linearity(x, [0, 0, 1, 1])
    1.0
    """
    from sklearn.linear_model import LogisticRegression

    x_arr = np.asarray(x.detach().cpu() if hasattr(x, "detach") else x, dtype=float)
    c_arr = np.asarray(c.detach().cpu() if hasattr(c, "detach") else c)
    if x_arr.ndim != 2 or len(x_arr) != len(c_arr):
        raise ValueError(
            f"x must be (N, D) with one cluster per point, got {x_arr.shape} and {c_arr.shape}"
        )
    if len(np.unique(c_arr)) < 2:
        return 1.0
    return float(LogisticRegression().fit(x_arr, c_arr).score(x_arr, c_arr))


def contingency(y: Any, c: Any, normalize: bool = True) -> np.ndarray:
    """Label-by-cluster counts (rows: labels in sorted order; columns: clusters), rows summing to 1 if ``normalize``."""
    table = contingency_matrix(*_pair(y, c)).astype(float)
    return table / table.sum(axis=1, keepdims=True) if normalize else table
