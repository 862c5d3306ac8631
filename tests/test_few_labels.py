"""Semi-supervised with a handful of labels (issue 28): labels propagated along a
nearest-neighbour graph (``vmonf_mini.graph``) and ``fit(..., label_graph=n)``.

Small data and short runs (seconds); ``bench/few_labels.py`` measures the full-size targets.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from sklearn.datasets import make_moons
from sklearn.semi_supervised import LabelPropagation

import vmonf_mini as vm
from vmonf_mini.graph import knn_graph, propagate
from vmonf_mini.objectives import labeled_loss, soft_target_loss


def one_per_class(y: np.ndarray, seed: int = 0) -> np.ndarray:
    return vm.recipes.labeled_subset(torch.as_tensor(y), 1, seed=seed).numpy()


def arcs() -> tuple:
    """Two concentric circles (radii 1 and 4), each in two arcs with gaps that ten
    neighbours do not bridge; one label per circle, on its first arc: no chain of neighbours
    leads from the second arcs to a label."""
    inner = np.radians(np.r_[np.linspace(0, 120, 40), np.linspace(180, 300, 40)])
    outer = np.radians(np.r_[np.linspace(0, 160, 120), np.linspace(180, 340, 120)])
    points = [r * np.c_[np.cos(a), np.sin(a)] for r, a in ((1.0, inner), (4.0, outer))]
    x, y = np.concatenate(points), np.repeat([0, 1], [80, 240])
    labels = np.full(320, -1)
    labels[[0, 80]] = (0, 1)
    return x, y, labels


def small_moons(n: int = 300, seed: int = 0) -> tuple:
    x, y = make_moons(n, noise=0.05, random_state=seed)
    x = (x - x.mean(0)) / x.std(0)
    return torch.as_tensor(x, dtype=torch.float32), y


def small_model(seed: int) -> vm.VMoNF:
    torch.manual_seed(seed)
    return vm.VMoNF(2, 2, blocks=2, hidden=8, encoder_hidden=(16, 16))


FIT = dict(epochs=30, batch_size=128, lr=3e-3, init_epochs=20, progress=False)


# ------------------------------------------------------------------ the graph
def test_unreached_arcs_are_joined_to_their_own_circle():
    x, y, labels = arcs()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn warns of the unreached points
        plain = LabelPropagation(kernel="knn", n_neighbors=10).fit(x, labels)
    assert (
        plain.transduction_ == y
    ).mean() < 0.8  # scikit-learn's graph: arcs left at 0
    probs = propagate(x, labels, k=2)
    assert probs.shape == (320, 2)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-9)
    assert (probs.argmax(1) == y).all()
    graph = knn_graph(x, 10, labeled=labels >= 0)
    between = graph[:80][:, 80:].nnz + graph[80:][:, :80].nnz
    assert between == 0  # the joins stay within each circle


def test_a_label_on_an_outlier_still_spreads():
    x, y = make_moons(200, noise=0.05, random_state=0)
    far = np.array([[2.8, 1.6]])  # class 1's outlier, nobody's neighbour
    x, y = np.concatenate([x, far]), np.r_[y, 1]
    labels = np.full(201, -1)
    labels[np.flatnonzero(y == 0)[0]] = 0
    labels[200] = 1
    probs = propagate(x, labels, k=2)
    assert (probs.argmax(1) == y).mean() == 1.0


def test_propagate_checks_its_arguments():
    x, y, labels = arcs()
    with pytest.raises(ValueError, match="at least one labeled point"):
        propagate(x, np.full(320, -1), k=2)
    with pytest.raises(ValueError, match="-1 \\(unlabeled\\) or 0..1"):
        propagate(x, np.where(labels == 1, 2, labels), k=2)
    with pytest.raises(ValueError, match="shape \\(320,\\)"):
        propagate(x, labels[:10], k=2)
    with pytest.raises(ValueError, match="n_neighbors must be a positive integer"):
        propagate(x, labels, k=2, n_neighbors=0)


def test_soft_target_loss_of_a_label_is_the_labeled_cross_entropy():
    logits, labels = torch.randn(6, 3), torch.tensor([0, 1, 2, 2, 1, 0])
    joint = torch.zeros(6, 3)  # -log p(x, y) = 0: only the cross-entropy is left
    expected = labeled_loss(joint, logits, labels, "elbo")
    one_hot = torch.nn.functional.one_hot(labels, 3).float()
    torch.testing.assert_close(soft_target_loss(logits, one_hot), expected)


# ------------------------------------------------------------------ fit
def test_label_graph_reaches_the_classes_from_one_label_each():
    x, y = small_moons()
    labels = one_per_class(y)
    graph_model, paper_model = small_model(0), small_model(0)
    history = vm.fit(graph_model, x, labels, label_graph=10, seed=0, **FIT)
    vm.fit(paper_model, x, labels, seed=0, **FIT)
    with torch.no_grad():
        with_graph = (graph_model.predict(x).numpy() == y).mean()
        without = (paper_model.predict(x).numpy() == y).mean()
    assert history.init_agreement is not None and history.init_agreement > 0.95
    assert with_graph >= 0.99, with_graph
    assert without < 0.95, without  # the same run without the graph misses it


def test_label_graph_weight_changes_the_training():
    x, y = small_moons(200)
    labels = one_per_class(y)
    states = []
    for weight in (0.0, 3.0):
        model = small_model(1)
        vm.fit(
            model,
            x,
            labels,
            label_graph=10,
            label_graph_weight=weight,
            seed=1,
            **dict(FIT, epochs=3, init_epochs=2),
        )
        states.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert not torch.allclose(states[0], states[1])


def test_fit_many_takes_per_run_labels_with_label_graph():
    x, y = small_moons(200)
    labels = [torch.as_tensor(one_per_class(y, seed)) for seed in (0, 1)]
    models = [small_model(s) for s in (0, 1)]
    histories = vm.fit_many(
        models,
        x,
        labels,
        seeds=[0, 1],
        label_graph=10,
        **dict(FIT, epochs=2, init_epochs=2),
    )
    assert all(h.init_agreement is not None for h in histories)


def test_fit_many_with_label_graph_ends_where_fit_ends():
    """In float64, each run of one fit_many call ends with the state fit gives it."""
    import copy

    x, y = small_moons(160)
    x = x.double()
    labels = [torch.as_tensor(one_per_class(y, seed)) for seed in (0, 1)]
    originals = [small_model(s).double() for s in (0, 1)]
    alone, together = copy.deepcopy(originals), copy.deepcopy(originals)
    options = dict(FIT, epochs=2, init_epochs=2, batch_size=64, label_graph=10)
    for model, lab, seed in zip(alone, labels, (5, 6)):
        vm.fit(model, x, lab, seed=seed, **options)
    vm.fit_many(together, x, labels, seeds=[5, 6], **options)
    for a, b in zip(alone, together):
        for (name, ta), tb in zip(a.state_dict().items(), b.state_dict().values()):
            if ta.is_floating_point():
                torch.testing.assert_close(ta, tb, atol=1e-6, rtol=0, msg=name)
    first = [p.detach() for p in together[0].parameters()]
    second = [p.detach() for p in together[1].parameters()]
    assert not all(torch.equal(p, q) for p, q in zip(first, second))


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(label_graph=0), "label_graph must be a positive integer"),
        (dict(label_graph=2.5), "label_graph must be a positive integer"),
        (dict(label_graph=10, objective="exact"), "objective='elbo'"),
        (dict(label_graph=10, label_graph_weight=-1.0), "label_graph_weight"),
    ],
)
def test_label_graph_arguments_are_checked(options, message):
    x, y = small_moons(40)
    with pytest.raises(ValueError, match=message):
        vm.fit(small_model(0), x, one_per_class(y), progress=False, epochs=1, **options)


def test_label_graph_needs_labels():
    x, _ = small_moons(40)
    with pytest.raises(ValueError, match="labels mark no point"):
        vm.fit(small_model(0), x, label_graph=10, epochs=1, progress=False)
    with pytest.raises(ValueError, match="labels mark no point"):
        vm.fit(
            small_model(0),
            x,
            torch.full((40,), -1),
            label_graph=10,
            epochs=1,
            progress=False,
        )


# ------------------------------------------------------------------ the estimator
def test_the_estimator_uses_the_graph_by_default_with_labels():
    est = vm.MixtureOfFlows(2)
    assert est.get_params()["label_graph"] == 10
    x, y = small_moons(200)
    labels = one_per_class(y)
    small = dict(n_blocks=2, hidden=8, n_init=1, init_epochs=10, max_epochs=20)
    fitted = vm.MixtureOfFlows(2, random_state=0, **small).fit(x.numpy(), labels)
    assert fitted.history_.init_agreement is not None
    assert (fitted.labels_ == y).mean() >= 0.99
    with pytest.raises(
        ValueError, match="The .label_graph. parameter of MixtureOfFlows"
    ):
        vm.MixtureOfFlows(2, label_graph=-3, **small).fit(x.numpy(), labels)
