"""One vocabulary for the settings: TrainConfig, ModelConfig, and what holds them (issue 26)."""

import dataclasses
import sys

import numpy as np
import pytest
import torch
from sklearn.datasets import make_blobs

import vmonf_mini as vm
from vmonf_mini import ModelConfig, TrainConfig, checks
from vmonf_mini.experiments import PAPER_MNIST, PaperMNIST


def _model(seed=0):
    torch.manual_seed(seed)
    return vm.VMoNF(2, 3, blocks=2, hidden=8, encoder_hidden=(8,)).double()


def _x():
    return vm.data.pinwheel(n_per_class=24, seed=0)[0].double()


def _states_equal(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# ------------------------------------------------------------------ TrainConfig
@pytest.mark.parametrize(
    "changes, error, message",
    [
        (dict(epochs=0), ValueError, "epochs must be a positive integer"),
        (dict(batch_size=1), ValueError, "batch_size must be at least 2"),
        (dict(lr=-1.0), ValueError, "lr must be a positive number"),
        (dict(pretrain_epochs=-1), ValueError, "pretrain_epochs must be an integer"),
        (dict(objective="mle"), ValueError, "objective must be 'elbo' or 'exact'"),
        (dict(init="spectral"), ValueError, "init must be None, 'kmeans', 'gmm'"),
        (dict(temperature=True), TypeError, "temperature must be a number"),
        (dict(min_temperature=0.0), ValueError, "min_temperature"),
        (dict(tol=-1.0), ValueError, "tol must be None or a number >= 0"),
        (dict(label_graph=3, objective="exact"), ValueError, "objective='elbo'"),
        (dict(epoch=3), TypeError, r"unknown training settings \['epoch'\]"),
    ],
)
def test_train_config_refuses_a_bad_setting_naming_it(changes, error, message):
    with pytest.raises(error, match=message):
        TrainConfig(epochs=2).replace(**changes)


def test_train_config_is_frozen_and_a_mapping_of_its_fields():
    config = TrainConfig(epochs=3, lr=3e-3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.lr = 1.0
    assert dict(config)["lr"] == config["lr"] == 3e-3 and len(config) == len(
        dataclasses.fields(TrainConfig)
    )
    assert TrainConfig(**config) == config and config.replace(lr=3e-3) == config


def test_fit_with_a_config_is_fit_with_its_keyword_arguments_bit_for_bit():
    settings = dict(epochs=2, batch_size=32, lr=3e-3, init="kmeans", init_epochs=2)
    a, b, c = _model(), _model(), _model()
    ha = vm.fit(a, _x(), seed=4, progress=False, **settings)
    hb = vm.fit(b, _x(), None, TrainConfig(**settings), seed=4, progress=False)
    hc = vm.fit(c, _x(), config=TrainConfig(epochs=9, lr=1.0).replace(**settings), seed=4, progress=False)  # fmt: skip
    assert ha.loss == hb.loss == hc.loss and ha.temperature == hb.temperature
    assert _states_equal(a, b) and _states_equal(a, c)


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda m, x: vm.fit(m, x, epoch=2), TypeError, r"\['epoch'\]"),
        (lambda m, x: vm.fit(m, x), TypeError, "needs epochs="),
        (lambda m, x: vm.fit(m, x, None, {"epochs": 2}), TypeError, "TrainConfig"),
        (lambda m, x: vm.fit(m, x, epochs=2, lr=0), ValueError, "lr must be"),
        (lambda m, x: vm.fit_many([m], x, lrr=1, epochs=1), TypeError, r"\['lrr'\]"),
    ],
)
def test_fit_refuses_unknown_or_bad_overrides_before_touching_the_model(
    call, error, message
):
    model = _model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(error, match=message):
        call(model, _x())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_history_records_the_temperature_that_was_used():
    history = vm.fit(
        _model(), _x(), epochs=1, temperature=1e-6, min_temperature=1e-4, progress=False
    )
    assert history.temperature == [1e-4]


def test_tol_stops_a_run_once_its_loss_settles():
    x = _x()
    settled = vm.fit(_model(), x, epochs=30, tol=1e9, seed=0, progress=False)
    assert settled.converged and len(settled.loss) == 6  # 2 windows of 30 // 10 epochs
    full = vm.fit(_model(), x, epochs=4, tol=0.0, seed=0, progress=False)
    assert not full.converged and len(full.loss) == 4


def test_fit_with_the_gmm_head_start():
    history = vm.fit(
        _model(), _x(), epochs=1, init="gmm", init_epochs=2, seed=0, progress=False
    )
    assert history.init_agreement is not None


# ------------------------------------------------------------------ ModelConfig
def test_model_config_builds_what_vmonf_builds():
    config = ModelConfig(dim=2, k=3, blocks=2, hidden=(8, 8), encoder_hidden=[8])
    torch.manual_seed(0)
    built = config.build()
    torch.manual_seed(0)
    direct = vm.VMoNF(2, 3, blocks=2, hidden=[8, 8], encoder_hidden=(8,))
    assert _states_equal(built, direct) and built.config == direct.config
    assert built.config == dict(config.as_dict(), custom_components=False)


@pytest.mark.parametrize(
    "changes, error, message",
    [
        (dict(k=0), ValueError, "k must be a positive integer"),
        (dict(flow="glow"), ValueError, "flow must be one of"),
        (dict(encoder_hidden=(0,)), ValueError, "encoder_hidden must be"),
        (dict(prior=[0.5, 0.6, 0.1]), ValueError, "sum to 1"),
        (dict(blocs=2), TypeError, r"unknown model settings \['blocs'\]"),
    ],
)
def test_model_config_refuses_a_bad_setting_naming_it(changes, error, message):
    with pytest.raises(error, match=message):
        ModelConfig(dim=2, k=3).replace(**changes)


def test_a_recipe_holds_both_configs_and_checks_dicts():
    recipe = vm.recipes.pinwheel(epochs=3)
    assert isinstance(recipe.model, ModelConfig) and isinstance(
        recipe.training, TrainConfig
    )
    again = dataclasses.replace(
        recipe, model=dict(recipe.model), training=dict(recipe.training)
    )
    assert again == recipe
    with pytest.raises(TypeError, match=r"unknown training settings \['epoch'\]"):
        dataclasses.replace(recipe, training=dict(epoch=3))


def test_paper_mnist_holds_the_configs_and_keeps_its_record_format():
    config = PAPER_MNIST["smoke"]
    assert set(config.as_dict()) == {f.name for f in dataclasses.fields(PaperMNIST)}
    assert config.training.epochs == config.epochs and config.training.lr == config.lr
    # the floor in one place: the schedule's (the training adds none of its own)
    assert config.training.temperature.floor == config.temperature_floor
    assert config.training.min_temperature is None
    assert config.model.k == config.k and config.model.flow == "maf"


# ------------------------------------------------------------------ the estimator
def _blobs():
    x, _ = make_blobs(150, centers=[[-6, 0], [0, 6], [6, 0]], cluster_std=0.6, random_state=0)  # fmt: skip
    return x


TINY = dict(n_blocks=1, hidden=4, encoder_hidden=(8,), n_init=2, init_epochs=5)


def test_estimator_tol_stops_early_and_n_iter_says_how_many_epochs_ran():
    x = _blobs()
    est = vm.MixtureOfFlows(3, max_epochs=40, tol=1e9, random_state=0, **TINY).fit(x)
    assert est.converged_ and est.n_iter_ == 8 < 40
    assert est.lower_bounds_.shape == (8,) and est.run_lower_bounds_.shape == (2,)
    assert est.lower_bound_ == est.run_lower_bounds_.max()
    full = vm.MixtureOfFlows(3, max_epochs=3, tol=0, random_state=0, **TINY).fit(x)
    assert full.n_iter_ == 3 and not full.converged_


@pytest.mark.parametrize(
    "params, name",
    [
        (dict(batch_size=1), "batch_size"),
        (dict(verbose="yes"), "verbose"),
        (dict(flow="glow"), "flow"),
        (dict(label_graph=0), "label_graph"),
        (dict(pretrain_epochs=-1), "pretrain_epochs"),
        (dict(tol=float("nan")), "tol"),
    ],
)
def test_estimator_parameters_are_checked_by_scikit_learns_constraints(params, name):
    from sklearn.utils._param_validation import InvalidParameterError

    with pytest.raises(InvalidParameterError, match=f"The '{name}' parameter"):
        vm.MixtureOfFlows(3, **TINY, **params).fit(_blobs())


@pytest.mark.parametrize("label_graph", [None, 10])
def test_estimator_labels_are_checked_once_at_its_entry(monkeypatch, label_graph):
    """y is checked once, by MixtureOfFlows.fit (its ``_labels``); neither training nor the
    choice of run (VMoNF's ELBO with labels, per run) checks the tensor again: every module
    of the package that imports ``as_labels`` counts its calls."""
    calls = []
    entry = vm.MixtureOfFlows._labels

    def counted_entry(*args):
        calls.append("MixtureOfFlows._labels")
        return entry(*args)

    as_labels = checks.as_labels

    def counted(*args, **kwargs):
        calls.append("as_labels")
        return as_labels(*args, **kwargs)

    monkeypatch.setattr(vm.MixtureOfFlows, "_labels", staticmethod(counted_entry))
    patched = set()
    for name, module in list(sys.modules.items()):
        if (
            name.startswith("vmonf_mini")
            and getattr(module, "as_labels", None) is as_labels
        ):
            monkeypatch.setattr(module, "as_labels", counted)
            patched.add(name)
    assert {"vmonf_mini.checks", "vmonf_mini.training", "vmonf_mini.mixture"} <= patched
    x = _blobs()
    y = np.full(len(x), -1)
    y[:6] = [0, 0, 1, 1, 2, 2]
    est = vm.MixtureOfFlows(
        3, max_epochs=1, label_graph=label_graph, random_state=0, **TINY
    )
    assert est.fit(x, y).n_iter_ == 1
    assert calls == ["MixtureOfFlows._labels"]
    # the public entries still check: VMoNF.elbo and fit refuse a label out of range
    y[0] = 3
    with pytest.raises(ValueError, match=r"labels must be -1 \(unlabeled\) or 0..2"):
        est.model_.elbo(torch.zeros(len(x), 2), labels=y)
    assert calls.count("as_labels") == 1


@pytest.mark.parametrize(
    "labeled, unlabeled, message",
    [
        (1, 149, "y: exactly one point is labeled"),
        (149, 1, "y: exactly one point is unlabeled"),
    ],
)
def test_estimator_refuses_a_lone_point_of_either_kind_at_its_entry(
    labeled, unlabeled, message
):
    """Training takes the estimator's labels unchecked, so its entry refuses what batch norm
    cannot train on (fit's own entry refuses the same for vm.fit callers)."""
    y = np.array([0] * labeled + [-1] * unlabeled)
    est = vm.MixtureOfFlows(3, max_epochs=1, random_state=0, **TINY)
    with pytest.raises(ValueError, match=message):
        est.fit(_blobs(), y)


@pytest.mark.parametrize(
    "lone, message",
    [(0, "exactly one point is labeled"), (-1, "exactly one point is unlabeled")],
)
def test_fit_refuses_a_lone_point_of_either_kind_at_its_entry(lone, message):
    x, model = _x(), _model()
    labels = torch.full((len(x),), 1 if lone == -1 else -1)
    labels[0] = lone
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=message):
        vm.fit(model, x, labels, epochs=1, progress=False)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
