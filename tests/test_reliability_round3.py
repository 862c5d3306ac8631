"""Reliability, round three (issue 25): the estimator's and the model's defects D05-D10, D12, D13.

Each test failed before its fix: a fixed prior's checkpoint that could not be loaded, a failed
refit that changed the fitted estimator, a tolerance checked only after training, a fit that
reseeded torch's global generator, data whose standard deviation overflows, NaN posteriors of
far points, and input errors that named the wrong problem.
"""

import numpy as np
import pytest
import torch

import vmonf_mini as vm
from vmonf_mini import MixtureOfFlows, VMoNF


# ------------------------------------------------------------------ D10: a fixed prior's checkpoint
@pytest.mark.parametrize("prior", [[0.3, 0.7], torch.tensor([0.9, 0.1])])
def test_a_model_with_a_fixed_prior_loads_back_and_answers_as_saved(tmp_path, prior):
    model = VMoNF(2, 2, blocks=1, encoder_hidden=(4,), prior=prior).eval()
    model.save(tmp_path / "m.pt")
    loaded = VMoNF.load(tmp_path / "m.pt")
    x = torch.randn(20, 2)
    assert loaded.config == model.config
    assert torch.equal(loaded.prior_logits, model.prior_logits)
    with torch.no_grad():
        assert torch.equal(loaded.log_prob(x), model.log_prob(x))


def test_a_fixed_prior_can_be_built_on_the_meta_device():
    with torch.device("meta"):
        model = VMoNF(2, 2, blocks=1, prior=[0.3, 0.7])
    assert model.prior_logits.device.type == "meta"
    assert model.config["prior"] == pytest.approx([0.3, 0.7])


@pytest.mark.parametrize(
    "prior, message",
    [
        ([0.5, 0.6], "sum to 1"),
        ([1.0, 0.0], "positive probabilities"),
        ([0.3, 0.3, 0.4], "2 positive probabilities"),
        ("uniform", "prior must be None, 'learned'"),
        (["a", "b"], "prior must be None, 'learned' or 2 probabilities"),
        ({"a": 1}, "prior must be None, 'learned' or 2 probabilities"),
    ],
)
def test_a_tampered_prior_in_a_checkpoint_is_refused_with_a_value_error(
    tmp_path, prior, message
):
    path = tmp_path / "m.pt"
    VMoNF(2, 2, blocks=1, prior=[0.3, 0.7]).save(path)
    payload = torch.load(path, weights_only=True)
    payload["config"]["prior"] = prior
    torch.save(payload, path)
    with pytest.raises(ValueError, match=message):
        VMoNF.load(path)


def test_a_checkpoint_whose_prior_logits_are_nan_is_refused(tmp_path):
    path = tmp_path / "m.pt"
    VMoNF(2, 2, blocks=1, prior=[0.3, 0.7]).save(path)
    payload = torch.load(path, weights_only=True)
    payload["state_dict"]["prior_logits"] = torch.tensor([float("nan"), 0.0])
    torch.save(payload, path)
    with pytest.raises(ValueError, match="prior_logits are not a distribution"):
        VMoNF.load(path)


# ------------------------------------------------------------------ the estimator
TINY = dict(
    n_blocks=1,
    hidden=4,
    encoder_hidden=(8,),
    n_init=2,
    max_epochs=2,
    init_epochs=5,
    batch_size=64,
    random_state=0,
    device="cpu",
)


def _blobs():
    from sklearn.datasets import make_blobs

    X, _ = make_blobs(
        150, centers=[[-6, 0], [0, 6], [6, 0]], cluster_std=0.6, random_state=0
    )
    return X


@pytest.fixture(scope="module")
def fitted():
    """A fitted estimator, and what it answers on its training data."""
    X = _blobs()
    est = MixtureOfFlows(3, **TINY).fit(X)
    return est, X


def _fitted_state(est):
    """Every fitted attribute (the objects themselves) and the kept model's weights."""
    attributes = {k: v for k, v in vars(est).items() if k.endswith("_")}
    weights = {k: v.clone() for k, v in est.model_.state_dict().items()}
    return attributes, weights


def _assert_unchanged(est, state, X, scores, labels):
    attributes, weights = state
    now = {k: v for k, v in vars(est).items() if k.endswith("_")}
    assert now.keys() == attributes.keys()
    assert all(now[k] is attributes[k] for k in attributes)
    assert all(torch.equal(est.model_.state_dict()[k], w) for k, w in weights.items())
    assert np.array_equal(est.score_samples(X), scores)
    assert np.array_equal(est.predict(X), labels)


# D05: a refused refit
@pytest.mark.parametrize(
    "params, data, message",
    [
        (dict(learning_rate=-1.0), lambda X: X * 3 + 50, "learning_rate"),
        (dict(batch_size=0), lambda X: X * 3 + 50, "batch_size"),
        (dict(init_epochs=0), lambda X: X * 3 + 50, "init_epochs"),
        (dict(n_components=500), lambda X: X * 3 + 50, "n_samples >= n_components"),
        (  # refused after the new data (three features) was validated
            dict(learning_rate=float("nan")),
            lambda X: np.c_[X, X[:, 0]] * 3 + 50,
            "learning_rate",
        ),
    ],
    ids=["learning_rate", "batch_size", "init_epochs", "too many K", "more features"],
)
def test_a_refused_refit_leaves_every_fitted_attribute_as_it_was(
    fitted, params, data, message
):
    est, X = fitted
    scores, labels = est.score_samples(X), est.predict(X)
    state, settings = _fitted_state(est), est.get_params()
    try:
        with pytest.raises(ValueError, match=message):
            est.set_params(**params).fit(data(X))
    finally:
        est.set_params(**settings)
    _assert_unchanged(est, state, X, scores, labels)
    assert est.n_features_in_ == 2


# D05: a refit whose every run fails (non-finite objective)
def test_a_refit_whose_runs_all_fail_leaves_the_fitted_state(fitted, monkeypatch):
    est, X = fitted
    scores, labels = est.score_samples(X), est.predict(X)
    state = _fitted_state(est)
    monkeypatch.setattr(
        "vmonf_mini.estimator._train_runs", lambda models, *a, **k: [None] * len(models)
    )
    with pytest.raises(FloatingPointError, match="every run"):
        est.fit(np.c_[X, X[:, 0]] * 3 + 50)
    _assert_unchanged(est, state, X, scores, labels)


# D06: Ctrl-C during a refit's training
def test_a_refit_interrupted_during_training_leaves_the_fitted_state(
    fitted, monkeypatch
):
    import vmonf_mini.estimator as estimator

    est, X = fitted
    scores, labels = est.score_samples(X), est.predict(X)
    state = _fitted_state(est)
    epochs = []

    def interrupt(*args, **kwargs):
        epochs.append(1)
        raise KeyboardInterrupt

    real = estimator.fit_many
    monkeypatch.setattr(
        estimator, "fit_many", lambda *a, **k: real(*a, **k, callback=interrupt)
    )
    with pytest.raises(KeyboardInterrupt):
        est.fit(X * 3 + 50)
    assert epochs, "the refit was interrupted during training"
    _assert_unchanged(est, state, X, scores, labels)


def test_a_successful_refit_replaces_the_fitted_state(fitted):
    est, X = fitted
    refit = MixtureOfFlows(3, **TINY).fit(X)
    refit.fit(np.c_[X, X[:, 0]] * 3 + 50)
    assert refit.n_features_in_ == 3 and refit.mean_.shape == (3,)
    assert refit.labels_.shape == (150,)
    assert np.array_equal(refit.predict(np.c_[X, X[:, 0]] * 3 + 50), refit.labels_)


# D07: tol checked before training
@pytest.mark.parametrize("tol", [None, "x", -1.0, float("nan"), [0.1]])
def test_a_bad_tol_is_refused_before_any_training(tol, monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr("vmonf_mini.estimator._train_runs", no_training)
    with pytest.raises(ValueError, match=r"tol must be a number >= 0, got "):
        MixtureOfFlows(3, **{**TINY, "tol": tol}).fit(_blobs())


def test_tol_zero_is_accepted():
    est = MixtureOfFlows(3, **{**TINY, "n_init": 1, "tol": 0}).fit(_blobs())
    assert isinstance(est.converged_, bool)


# D08: torch's global generator
def test_fit_leaves_torch_global_random_stream_as_the_caller_seeded_it():
    X = _blobs()
    torch.manual_seed(1)
    expected = torch.rand(3)
    draws = {}
    for seed in (1, 2):
        torch.manual_seed(seed)
        MixtureOfFlows(3, **{**TINY, "n_init": 1}).fit(X)
        draws[seed] = torch.rand(3)
    assert torch.equal(draws[1], expected)
    assert not torch.equal(draws[1], draws[2])


def test_a_fit_is_reproducible_whatever_the_global_seed():
    X = _blobs()
    results = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        est = MixtureOfFlows(3, **TINY).fit(X)
        results.append((est.score_samples(X), est.labels_, est.lower_bounds_))
    for a, b in zip(*results):
        assert np.array_equal(a, b)


# D09: data whose squares overflow float64
def test_a_fit_on_huge_values_equals_the_fit_on_the_same_data_in_other_units():
    X = _blobs()
    small = MixtureOfFlows(3, **TINY).fit(X)
    huge = MixtureOfFlows(3, **TINY).fit(X * 1e200)
    assert np.all(np.isfinite(huge.scale_)) and np.allclose(
        huge.scale_, small.scale_ * 1e200
    )
    assert np.allclose(huge.mean_, small.mean_ * 1e200)
    scores = huge.score_samples(X * 1e200)
    assert np.all(np.isfinite(scores))
    assert np.allclose(scores, small.score_samples(X) - 2 * np.log(1e200))
    assert np.array_equal(huge.labels_, small.labels_)
    assert len(np.unique(huge.labels_)) == 3
    samples, _ = huge.sample(20)
    assert np.all(np.isfinite(samples))


def test_values_whose_centring_overflows_float64_are_refused_clearly(fitted):
    X = np.array([[-1.7e308, 0.0], [1.7e308, 1.0], [1.7e308, 2.0], [1.7e308, 3.0]])
    with pytest.raises(ValueError, match="overflows float64 in 1 of 4 rows"):
        MixtureOfFlows(2, **TINY).fit(X)
    est, X = fitted
    small = MixtureOfFlows(3, **TINY).fit(X * 1e-3)
    with pytest.raises(ValueError, match="X lies too far from the training data"):
        small.predict(np.array([[1e308, 0.0]]))
