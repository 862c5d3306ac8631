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


# ------------------------------------------------------------------ failed calls
def _state(model: vm.VMoNF) -> dict:
    return {name: t.detach().clone() for name, t in model.state_dict().items()}


def _same(before: dict, model: vm.VMoNF) -> bool:
    after = model.state_dict()
    return before.keys() == after.keys() and all(
        torch.equal(before[name], after[name]) for name in before
    )


@pytest.mark.parametrize(
    "labels, options, message",
    [
        (None, dict(label_graph=10), "labels mark no point"),
        (
            "one per class",
            dict(label_graph=0),
            "label_graph must be a positive integer",
        ),
        (
            "one per class",
            dict(label_graph=10, label_graph_weight=float("nan")),
            "label_graph_weight",
        ),
        ("out of range", dict(label_graph=10), "labels"),
    ],
)
def test_a_refused_label_graph_call_leaves_the_model_unchanged(
    labels, options, message
):
    x, y = small_moons(60)
    if labels == "one per class":
        labels = one_per_class(y)
    elif labels == "out of range":
        labels = np.where(one_per_class(y) == 1, 2, one_per_class(y))
    model = small_model(0)
    model.train()
    before = _state(model)
    with pytest.raises(ValueError, match=message):
        vm.fit(model, x, labels, epochs=1, seed=0, progress=False, **options)
    assert _same(before, model)
    assert model.training  # not even switched to eval mode


def test_fit_many_refuses_a_run_without_labels_before_training_any():
    x, y = small_moons(60)
    models = [small_model(s) for s in (0, 1)]
    before = [_state(m) for m in models]
    with pytest.raises(ValueError, match=r"labels\[1\] mark no point"):
        vm.fit_many(
            models,
            x,
            [one_per_class(y), None],
            seeds=[0, 1],
            label_graph=10,
            epochs=1,
            progress=False,
        )
    assert all(_same(b, m) for b, m in zip(before, models))


def test_a_failed_refit_leaves_the_fitted_estimator_as_it_was():
    x, y = small_moons(120)
    x = x.numpy()
    labels = one_per_class(y)
    small = dict(n_blocks=2, hidden=8, n_init=1, init_epochs=2, max_epochs=2)
    est = vm.MixtureOfFlows(2, random_state=0, **small).fit(x, labels)
    model, fitted = est.model_, dict(vars(est))
    before = _state(model)
    for bad, error in [
        (dict(label_graph=0), "label_graph"),
        (dict(label_graph=2.5), "label_graph"),
    ]:
        est.set_params(**bad)
        with pytest.raises(ValueError, match=error):
            est.fit(x, labels)
    est.set_params(label_graph=10)
    with pytest.raises(ValueError, match="y must be -1"):
        est.fit(x, np.where(labels == 1, 5, labels))
    assert est.model_ is model and _same(before, model)
    for name, value in fitted.items():
        if name.endswith("_") and name != "model_":
            assert (
                np.array_equal(
                    np.asarray(getattr(est, name), dtype=object),
                    np.asarray(value, dtype=object),
                )
                or getattr(est, name) is value
            ), name


def test_labels_propagated_by_default_beat_the_earlier_default_on_two_labels():
    """The estimator's defaults with one label per class (issue 28), small and fast: the
    moons are reached from two labels; ``label_graph=None`` (the earlier default) is not."""
    x, y = small_moons(300, seed=3)
    x = x.numpy()
    labels = one_per_class(y, seed=3)
    small = dict(n_blocks=2, hidden=8, n_init=1, init_epochs=10, max_epochs=30)
    ours = vm.MixtureOfFlows(2, random_state=3, **small).fit(x, labels)
    old = vm.MixtureOfFlows(2, random_state=3, label_graph=None, **small).fit(x, labels)
    assert (ours.predict(x) == y).mean() >= 0.99
    assert (old.predict(x) == y).mean() < 0.95
    assert np.isfinite(ours.score(x)) and ours.score(x) > old.score(x) - 0.1
