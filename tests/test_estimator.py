"""MixtureOfFlows: scikit-learn's conformance checks, pipelines, grid search, densities in the
user's units, and the accuracy its defaults reach on the book's data sets.

The accuracy tests train the estimator with its default settings (one random state each; the
10-seed figures are in ``bench/estimator.py``); the others use tiny flows and a few epochs.
"""

import math

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import make_blobs
from sklearn.decomposition import PCA
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import estimator_checks
from sklearn.utils.estimator_checks import parametrize_with_checks

import vmonf_mini as vm
from vmonf_mini import MixtureOfFlows
from vmonf_mini.metrics import cluster_accuracy

TINY = dict(
    n_blocks=1,
    hidden=4,
    encoder_hidden=(8,),
    n_init=1,
    max_epochs=2,
    init_epochs=20,
    batch_size=64,
    device="cpu",
)


def tiny(n_components=3, **kw):
    return MixtureOfFlows(n_components, **{**TINY, "random_state": 0, **kw})


# ------------------------------------------------------------------ scikit-learn's checks
# These checks pass class labels as ``y`` (0..2, or 0..3) while setting ``n_components=1`` (or
# keeping 3). The estimator reads ``y`` as component labels for semi-supervised training and
# rejects an index beyond its components, as it must; each check is run again below on the same
# estimator with ``y`` left out, so what it checks is still tested.
Y_AS_LABELS = {
    name: "passes class labels as y beyond n_components; y here means component labels (run again without y)"
    for name in [
        "check_dont_overwrite_parameters",
        "check_dtype_object",
        "check_methods_sample_order_invariance",
        "check_methods_subset_invariance",
        "check_fit2d_predict1d",
    ]
}


@parametrize_with_checks([tiny()], expected_failed_checks=lambda estimator: Y_AS_LABELS)
def test_sklearn_compatible(estimator, check):
    check(estimator)


class _WithoutY(MixtureOfFlows):
    """The same estimator, its ``y`` dropped: what the checks above test, without the labels."""

    def fit(self, X, y=None):
        return super().fit(X)


@pytest.mark.parametrize("name", sorted(Y_AS_LABELS))
def test_sklearn_checks_without_y(name):
    getattr(estimator_checks, name)(
        "MixtureOfFlows", _WithoutY(3, **{**TINY, "random_state": 0})
    )


# ------------------------------------------------------------------ composition
def _blobs(n=150, seed=0):
    x, y = make_blobs(
        n_samples=n,
        centers=[[-6, 0], [0, 6], [6, 0]],
        cluster_std=0.6,
        random_state=seed,
    )
    return x * 40 + 300, y  # far from unit scale: the standardisation has to work


def test_clone_keeps_parameters_and_drops_the_fit():
    est = tiny(n_components=4, hidden=6).fit(_blobs()[0])
    copy = clone(est)
    assert copy.get_params() == est.get_params()
    with pytest.raises(NotFittedError):
        copy.predict(_blobs()[0])


def test_pipeline_equals_the_estimator_on_transformed_data():
    x, y = _blobs()
    pipe = make_pipeline(PCA(2, whiten=True, random_state=0), tiny()).fit(x)
    alone = tiny().fit(pipe[0].transform(x))
    np.testing.assert_array_equal(pipe.predict(x), alone.predict(pipe[0].transform(x)))
    np.testing.assert_allclose(
        pipe.score_samples(x), alone.score_samples(pipe[0].transform(x))
    )
    assert cluster_accuracy(y, pipe.predict(x)) > 0.95


def test_grid_search_prefers_the_true_number_of_components():
    """Three separated blobs: by held-out log-likelihood a mixture of three tiny flows beats one."""
    x, _ = _blobs(n=300)
    search = GridSearchCV(
        tiny(n_components=1, max_epochs=10), {"n_components": [1, 3]}, cv=3
    ).fit(x)
    assert search.best_params_ == {"n_components": 3}
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert search.best_estimator_.predict(x).shape == (300,)


# ------------------------------------------------------------------ densities in the user's units
def test_density_integrates_to_one_in_the_users_units():
    """exp(score_samples) over a grid covering the data sums to 1: the standardisation's
    log-determinant is included (without it the sum would be off by the product of the scales)."""
    rng = np.random.RandomState(0)
    x = rng.normal(size=(400, 2)) * [30.0, 5.0] + [100.0, -20.0]
    est = tiny(n_components=2, max_epochs=20).fit(x)
    assert np.prod(est.scale_) > 100
    g0, g1 = np.linspace(-80, 280, 400), np.linspace(-70, 30, 300)
    grid = np.stack(np.meshgrid(g0, g1), -1).reshape(-1, 2)
    mass = np.exp(est.score_samples(grid)).sum() * (g0[1] - g0[0]) * (g1[1] - g1[0])
    assert abs(mass - 1) < 0.03, mass


def test_samples_are_in_the_users_units():
    x, _ = _blobs()
    est = tiny(max_epochs=20).fit(x)
    samples, components = est.sample(600)
    assert (
        samples.shape == (600, 2)
        and components.shape == (600,)
        and components.dtype == np.int64
    )
    np.testing.assert_allclose(samples.mean(0), x.mean(0), atol=0.15 * x.std(0).max())
    again, _ = est.sample(
        600
    )  # an int random_state makes sampling reproducible, as GaussianMixture
    np.testing.assert_array_equal(samples, again)


def test_fitted_attributes():
    x, _ = _blobs()
    est = tiny(n_init=3, max_epochs=4, tol=0).fit(x)
    assert isinstance(est.model_, vm.VMoNF) and not est.model_.training
    assert est.n_iter_ == 4 == len(est.history_.loss) == len(est.lower_bounds_)
    assert (
        est.run_lower_bounds_.shape == (3,)
        and est.lower_bound_ == est.run_lower_bounds_.max()
    )
    assert (
        est.lower_bound_ <= est.score(x) + 1e-6
    )  # the ELBO bounds the log-likelihood from below
    assert isinstance(est.converged_, bool)
    np.testing.assert_array_equal(est.labels_, est.predict(x))


def test_posteriors():
    x, _ = _blobs()
    est = tiny().fit(x)
    for exact in (False, True):
        proba = est.predict_proba(x, exact=exact)
        assert proba.shape == (len(x), 3)
        np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-9)
        np.testing.assert_array_equal(est.predict(x, exact=exact), proba.argmax(1))


def test_bic_and_aic_count_the_flows_not_the_encoder():
    x, _ = _blobs()
    small, wide = tiny().fit(x), tiny(encoder_hidden=(64, 64)).fit(x)
    n_flow = sum(p.numel() for p in small.model_.components.parameters())
    log_lik = small.score_samples(x).sum()
    assert small.bic(x) == pytest.approx(-2 * log_lik + n_flow * math.log(len(x)))
    assert small.aic(x) == pytest.approx(-2 * log_lik + 2 * n_flow)
    assert wide._n_parameters() == small._n_parameters() == n_flow


# ------------------------------------------------------------------ labels
def test_unlabeled_y_is_the_same_as_no_y():
    x, _ = _blobs()
    a, b = tiny().fit(x), tiny().fit(x, np.full(len(x), -1))
    np.testing.assert_array_equal(a.predict(x), b.predict(x))
    assert a.lower_bound_ == b.lower_bound_


def test_labels_name_the_components():
    """Component c is class c: with a few labels the predicted indices are the classes themselves."""
    x, y = _blobs()
    labels = vm.recipes.labeled_subset(torch.as_tensor(y), per_class=3, seed=0).numpy()
    est = tiny(max_epochs=5).fit(x, labels)
    assert (est.predict(x) == y).mean() > 0.95


@pytest.mark.parametrize(
    "params, y, match",
    [
        (
            {},
            np.r_[np.zeros(149, int), 3],
            r"y must be -1 \(unlabeled\) or a component index 0..2; found \[3\]",
        ),
        ({}, np.full(150, "a"), "y must hold integer component indices"),
        ({}, np.zeros(10, int), "one entry per row of X: 10 entries for 150 rows"),
        (
            {"init": "spectral"},
            None,
            "The 'init' parameter of MixtureOfFlows must be a str among .* Got 'spectral'",
        ),
        ({"n_components": 200}, None, "Expected n_samples >= n_components"),
        ({"n_init": 0}, None, r"'n_init' parameter .* in the range \[1, inf\). Got 0"),
        ({"max_epochs": "long"}, None, "'max_epochs' parameter .* Got 'long'"),
        (
            {"learning_rate": -1.0},
            None,
            r"'learning_rate' parameter .* range \(0.0, inf\). Got -1.0",
        ),
    ],
)
def test_errors_name_the_problem(params, y, match):
    with pytest.raises(ValueError, match=match):
        tiny(**params).fit(_blobs()[0], y)


# ------------------------------------------------------------------ the book's data sets, default settings
@pytest.mark.slow
class TestDefaultSettingsOnTheBooksDataSets:
    """One random state each (the 10-seed figures: bench/estimator.py). A class, so that
    pytest-xdist's --dist loadscope runs these beside the rest of this module."""

    def test_pinwheel(self):
        x, y = vm.data.pinwheel()
        est = MixtureOfFlows(5, random_state=3, device="cpu").fit(x.numpy())
        assert cluster_accuracy(y, est.predict(x.numpy())) >= 0.98

    def test_two_circles_64_labels(self):
        x, y = vm.data.two_circles()
        labels = vm.recipes.labeled_subset(y, per_class=32, seed=3)
        est = MixtureOfFlows(2, random_state=3, device="cpu").fit(
            x.numpy(), labels.numpy()
        )
        assert cluster_accuracy(y, est.predict(x.numpy())) >= 0.99

    def test_digits_0_to_4(self):
        x, y = vm.data.digits(range(5))
        pipe = make_pipeline(
            PCA(10, whiten=True, random_state=0),
            MixtureOfFlows(5, random_state=3, device="cpu"),
        )
        assert cluster_accuracy(y, pipe.fit(x.numpy()).predict(x.numpy())) >= 0.94


def test_standard_scaler_in_front_changes_nothing():
    """The estimator standardises inside, so a StandardScaler before it is a no-op (up to rounding)."""
    x, _ = _blobs()
    np.testing.assert_allclose(
        make_pipeline(StandardScaler(), tiny()).fit(x).score_samples(x)
        - np.log(x.std(0)).sum(),
        tiny().fit(x).score_samples(x),
        rtol=1e-4,
    )


def test_a_failed_run_is_never_kept(monkeypatch):
    """Runs whose loss became non-finite (History.diverged) get -inf; if all failed, fit says so."""
    import vmonf_mini.estimator as module

    train = module._fit_runs

    def first_fails(models, *args, **kwargs):
        histories = train(models, *args, **kwargs)
        histories[
            0
        ].diverged = "non-finite loss (nan) in the main phase, epoch 1, step 1"
        return histories

    monkeypatch.setattr(module, "_fit_runs", first_fails)
    x, _ = _blobs()
    est = tiny(n_init=2).fit(x)
    assert est.run_lower_bounds_[0] == -np.inf and np.isfinite(est.lower_bound_)
    monkeypatch.setattr(
        module,
        "_fit_runs",
        lambda models, *a, **k: [vm.History(diverged="nan") for _ in models],
    )
    with pytest.raises(
        FloatingPointError, match="every run ended with a non-finite objective"
    ):
        tiny(n_init=2).fit(x)
