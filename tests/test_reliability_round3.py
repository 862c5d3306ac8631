"""Reliability, round three (issue 25): the estimator's and the model's defects D05-D10, D12, D13.

Each test failed before its fix: a fixed prior's checkpoint that could not be loaded, a failed
refit that changed the fitted estimator, a tolerance checked only after training, a fit that
reseeded torch's global generator, data whose standard deviation overflows, NaN posteriors of
far points, and input errors that named the wrong problem.
"""

import copy
import dataclasses

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
        "vmonf_mini.estimator._fit_runs",
        lambda models, *a, **k: [vm.History(diverged="nan") for _ in models],
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

    real = estimator._fit_runs

    def with_interrupt(*args, **kwargs):
        options = dataclasses.replace(args[5], callback=interrupt)
        return real(*args[:5], options, *args[6:], **kwargs)

    monkeypatch.setattr(estimator, "_fit_runs", with_interrupt)
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

    monkeypatch.setattr("vmonf_mini.estimator._fit_runs", no_training)
    with pytest.raises(
        ValueError, match=r"The 'tol' parameter of MixtureOfFlows must be"
    ):
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


# ------------------------------------------------------------------ D12: far points' posteriors
def _far_rows(dtype):
    return torch.tensor(
        [[0.3, -0.2], [1e30, 1e30], [-1e30, 5.0], [1.0, 2.0]], dtype=dtype
    )


@pytest.fixture(scope="module")
def trained():
    """A float32 model trained a little (its encoder's logits overflow near 3e38)."""
    x, _ = vm.data.pinwheel(n_per_class=24, seed=0)
    torch.manual_seed(0)
    model = VMoNF(2, 5, blocks=2, hidden=8, encoder_hidden=(8,))
    vm.fit(model, x, seed=0, epochs=2, batch_size=32, progress=False)
    return model.eval()


def _is_distribution(p):
    return bool(torch.isfinite(p).all()) and torch.allclose(
        p.sum(dim=1), torch.ones(len(p), dtype=p.dtype)
    )


def test_the_exact_posterior_of_far_float32_points_is_computed_in_float64(trained):
    x = _far_rows(torch.float32)
    with torch.no_grad():
        joint = trained.joint(x)
        assert bool(torch.isneginf(joint[1:3]).all())  # log p(x|c) = -inf in float32
        p = trained.exact_posterior(x)
        wide = copy.deepcopy(trained).double()
        expected = torch.softmax(wide.joint(x.double()), dim=1).float()
    assert p.dtype == torch.float32 and _is_distribution(p)
    assert torch.equal(p[1:3], expected[1:3])
    assert torch.equal(p[[0, 3]], torch.softmax(joint[[0, 3]], dim=1))  # rows as before
    assert torch.equal(
        trained.predict(x, exact=True), expected.argmax(dim=1)
    )  # the same components as the posterior


def test_the_amortized_posterior_near_float32s_limit_is_a_distribution(trained):
    x = torch.tensor([[3e38, 3e38], [-3e38, 3e38], [0.5, 0.5]])
    with torch.no_grad():
        assert not bool(torch.isfinite(trained.encoder(x[:1])).any())  # they overflow
        q, log_q = trained.posterior(x), trained.log_posterior(x)
        logits = copy.deepcopy(trained).double().encoder(x.double())
    assert _is_distribution(q) and not bool(torch.isnan(log_q).any())
    assert torch.equal(trained.predict(x), logits.argmax(dim=1))
    assert torch.equal(q.argmax(dim=1), logits.argmax(dim=1))


def test_far_rows_in_training_mode_evaluate_the_whole_batch_in_float64(trained):
    model = copy.deepcopy(trained).train()
    x = torch.cat([_far_rows(torch.float32), torch.randn(6, 2)])
    p = model.exact_posterior(x)
    assert _is_distribution(p)
    assert model.training


def test_points_beyond_float64s_reach_get_a_clear_error():
    model = VMoNF(2, 3, blocks=2, hidden=8).double().eval()
    x = torch.tensor([[0.1, 0.2], [1e300, 1e300]], dtype=torch.float64)
    assert bool(torch.isneginf(model.log_prob(x)[1]))
    for call in (model.exact_posterior, lambda x: model.predict(x, exact=True)):
        with pytest.raises(ValueError, match=r"1 of 2 rows of x: they lie too far"):
            call(x)
    assert _is_distribution(model.exact_posterior(x[:1]))


def test_a_model_with_nan_weights_is_named_as_the_cause():
    model = VMoNF(2, 3, blocks=2).double().eval()
    with torch.no_grad():
        next(model.components.parameters()).fill_(float("nan"))
    with pytest.raises(ValueError, match="weights hold NaN or infinite values"):
        model.exact_posterior(torch.zeros(2, 2, dtype=torch.float64))


# ------------------------------------------------------------------ D13: input messages
@pytest.fixture
def small():
    return VMoNF(2, 3, blocks=1, encoder_hidden=(4,)).eval()


@pytest.mark.parametrize(
    "dtype",
    [torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8, torch.uint16],
)
def test_integer_inputs_of_any_width_are_converted(small, dtype):
    x = torch.tensor([[1, 2], [3, 0]], dtype=dtype)
    with torch.no_grad():
        expected = small.log_prob(x.float())
        assert torch.equal(small.log_prob(x), expected)
        assert torch.equal(small.log_prob(x.numpy()), expected)


@pytest.mark.parametrize(
    "bad, what",
    [
        (torch.ones(2, 2, dtype=torch.bool), "dtype torch.bool"),
        (torch.ones(2, 2, dtype=torch.complex64), "dtype torch.complex64"),
        (np.array([["a", "b"]]), "<U1"),
        ([["a", "b"]], "list"),
    ],
)
def test_what_is_not_numbers_is_refused_naming_what_is_accepted(small, bad, what):
    with pytest.raises(TypeError, match=r"real numbers \(a floating-point or integer"):
        small.log_prob(bad)
    with pytest.raises(TypeError, match=what):
        small.log_prob(bad)


def test_finite_float64_beyond_float32s_range_is_called_an_overflow(small):
    x = np.array([[1e39, 0.0], [0.0, 0.0], [-5e40, 1.0]])
    with pytest.raises(ValueError, match="beyond the range of torch.float32") as error:
        small.log_prob(x)
    assert "NaN" not in str(error.value) and "2 of 3 rows" in str(error.value)
    assert torch.isfinite(
        small.double().log_prob(x)
    ).all()  # a float64 model takes them


def test_nan_and_infinite_inputs_are_still_called_so(small):
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match=r"NaN or infinite values \(in 1 of 2"):
            small.log_prob(np.array([[bad, 0.0], [0.0, 0.0]]))


@pytest.mark.parametrize("temperature", ["0.5", b"1", True])
@pytest.mark.parametrize("method", ["posterior", "log_posterior", "elbo"])
def test_a_temperature_that_is_not_a_number_is_refused(small, method, temperature):
    with pytest.raises(TypeError, match="temperature must be a positive number"):
        getattr(small, method)(torch.zeros(2, 2), temperature=temperature)


@pytest.mark.parametrize("temperature", ["0.5", lambda step: "0.5"])
def test_fit_refuses_a_string_temperature(temperature):
    model = VMoNF(2, 3, blocks=1, encoder_hidden=(4,))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(TypeError, match="temperature.* must be a positive number"):
        vm.fit(
            model,
            torch.randn(32, 2),
            epochs=1,
            batch_size=16,
            temperature=temperature,
            progress=False,
        )
    if isinstance(temperature, str):  # refused before any training
        assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())


def test_numeric_temperatures_are_still_accepted(small):
    x = torch.zeros(2, 2)
    for t in (0.5, 1, np.float32(0.5), torch.tensor(0.5)):
        assert _is_distribution(small.posterior(x, temperature=t))
