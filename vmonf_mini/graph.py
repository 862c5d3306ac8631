"""Labels propagated along a nearest-neighbour graph: semi-supervised with a handful of labels.

With one or a few labels per class the mixture's own objective cannot tell where a class ends
(chapter 7): the ELBO asks the flows to cover the data, not to follow its classes. The shape of
the unlabeled points can: on two circles or two moons, the points of one class are joined to
each other by chains of near neighbours. :func:`propagate` carries the labels along them,
scikit-learn's ``LabelPropagation`` (Zhu & Ghahramani, 2002) on the graph of :func:`knn_graph`,
and returns for every point a distribution over the components. :func:`vmonf_mini.fit` with
``label_graph=n_neighbors`` trains from it: its ``init`` phase on the propagated labels (each
point's most probable component), and its main phase over every point with the cross-entropy
of ``q(c|x)`` against that label added to the negative ELBO
(:func:`vmonf_mini.objectives.soft_target_loss`, weight ``label_graph_weight``), so that the
ELBO does not undo it.

The graph is scikit-learn's own k-nearest-neighbour graph (a point takes the mean of its
neighbours' distributions) with two additions that make propagation reliable with a single
label per class: a labeled point also passes its label to its own neighbours (a label on an
outlier, which is nobody's neighbour, would otherwise reach nobody), and a group of points from
which no chain of neighbours leads to a label (an arc of a circle behind a gap that ten
neighbours do not bridge) is joined to the nearest point that does; scikit-learn leaves such
points at class 0.

>>> import numpy as np
>>> from sklearn.datasets import make_moons
>>> x, y = make_moons(300, noise=0.05, random_state=0)
>>> labels = np.full(300, -1)
>>> labels[[np.flatnonzero(y == c)[0] for c in (0, 1)]] = (0, 1)
>>> probs = propagate(x, labels, k=2)
>>> probs.shape, float((probs.argmax(1) == y).mean())
((300, 2), 1.0)
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import breadth_first_order, connected_components

from .checks import check_positive_int

__all__ = ["knn_graph", "propagate"]


def knn_graph(
    x: Any, n_neighbors: int = 10, labeled: Optional[Any] = None
) -> sparse.csr_matrix:
    """The directed ``n_neighbors``-nearest-neighbour graph of ``x``, ``(N, N)`` sparse, weights 1.

    Row ``i`` holds the edges ``i -> j`` to the ``n_neighbors`` nearest points ``j`` of ``x[i]``
    (scikit-learn's ``kneighbors_graph``, as ``LabelPropagation(kernel="knn")`` builds it): a
    point takes its label from its neighbours. With ``labeled`` (indices or a boolean mask):

    * a labeled point also passes its label to its own neighbours (the edges ``j -> i`` for
      its neighbours ``j``), so that a label on an outlier, which is nobody's neighbour,
      still reaches the data;
    * every group of points from which no edge path leads to a labeled point (an arc of a
      circle behind a gap wider than its neighbours reach) gets one more edge, from its point
      nearest to the points that do reach a label to the nearest of those, until every point
      reaches a label.
    """
    from sklearn.neighbors import NearestNeighbors, kneighbors_graph

    x = np.asarray(x, dtype=np.float64)
    n = x.shape[0]
    n_neighbors = check_positive_int(n_neighbors, "n_neighbors")
    if n < 2:
        raise ValueError(f"a graph needs at least two points, got {n}")
    graph = kneighbors_graph(
        x, min(n_neighbors, n - 1), mode="connectivity", include_self=False
    ).tocsr()
    if labeled is None:
        return graph
    labeled = np.asarray(labeled)
    labeled = np.flatnonzero(labeled) if labeled.dtype == bool else labeled
    if labeled.size == 0:
        raise ValueError("knn_graph needs at least one labeled point")
    passes = sparse.diags(np.bincount(labeled, minlength=n) > 0, dtype=np.float64)
    graph = _binary(graph + (passes @ graph).T)
    while True:
        reach = _reaching(graph, labeled)
        if reach.all():
            return graph
        cut, rest = np.flatnonzero(~reach), np.flatnonzero(reach)
        count, group = connected_components(graph[cut][:, cut], directed=False)
        distance, nearest = (
            NearestNeighbors(n_neighbors=1).fit(x[rest]).kneighbors(x[cut])
        )
        rows, cols = [], []
        for g in range(count):
            members = np.flatnonzero(group == g)
            i = members[np.argmin(distance[members, 0])]
            rows.append(cut[i])
            cols.append(rest[nearest[i, 0]])
        extra = sparse.coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
        graph = _binary(graph + extra)


def _binary(graph: sparse.spmatrix) -> sparse.csr_matrix:
    return (graph > 0).astype(np.float64).tocsr()


def _reaching(graph: sparse.csr_matrix, labeled: np.ndarray) -> np.ndarray:
    """Which points have a path of edges to a labeled point: a breadth-first search from an
    extra node, joined to every labeled point, along the reversed edges."""
    n = graph.shape[0]
    source = sparse.csr_matrix(
        (np.ones(labeled.size), (np.zeros(labeled.size, dtype=np.int64), labeled)),
        shape=(1, n + 1),
    )
    reversed_ = sparse.hstack([graph.T, sparse.csr_matrix((n, 1))])
    order = breadth_first_order(
        sparse.vstack([reversed_, source]).tocsr(), n, return_predecessors=False
    )
    reach = np.zeros(n, dtype=bool)
    reach[order[order < n]] = True
    return reach


def propagate(
    x: Any, labels: Any, k: int, n_neighbors: int = 10, max_iter: int = 100_000
) -> np.ndarray:
    """Propagate ``labels`` (``-1`` unlabeled, ``0..k-1`` labeled) over ``x``; ``(N, k)`` distributions.

    scikit-learn's ``LabelPropagation`` (Zhu & Ghahramani, 2002: every unlabeled point's
    distribution is the mean of its neighbours', the labeled points clamped to their labels)
    on :func:`knn_graph` ``(x, n_neighbors, labeled)``, iterated to convergence (``max_iter``).
    A labeled point's row is its one-hot label; a component that no point is labeled with has
    probability 0 everywhere.
    """
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.semi_supervised import LabelPropagation

    x = np.asarray(x, dtype=np.float64)
    labels = np.asarray(labels)
    k = check_positive_int(k, "k")
    if labels.shape != (x.shape[0],) or labels.dtype.kind not in "iu":
        raise ValueError(
            f"labels must be integers of shape ({x.shape[0]},) to match x, "
            f"got {labels.dtype} of shape {labels.shape}"
        )
    labels = labels.astype(np.int64)
    if ((labels < -1) | (labels >= k)).any():
        raise ValueError(f"labels must be -1 (unlabeled) or 0..{k - 1}")
    labeled = np.flatnonzero(labels >= 0)
    if labeled.size == 0:
        raise ValueError("propagating labels needs at least one labeled point")
    key = (x.shape, hash(x.tobytes()), hash(labels.tobytes()), k, n_neighbors, max_iter)
    if _LAST[0] == key:  # the restarts of one fit_many call share their data and labels
        return _LAST[1].copy()
    graph = knn_graph(x, n_neighbors, labeled)
    spread = LabelPropagation(kernel=lambda a, b: graph.copy(), max_iter=max_iter)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        spread.fit(x, labels)
    probs = np.zeros((x.shape[0], k))
    probs[:, spread.classes_] = spread.label_distributions_
    probs[labeled] = np.eye(k)[labels[labeled]]
    _LAST[:] = [key, probs.copy()]
    return probs


_LAST: list = [None, None]  # the last call's inputs and result
