"""A scikit-learn estimator for the mixture of flows: what the book learned, behind ``fit`` and ``predict``.

:class:`MixtureOfFlows` follows scikit-learn's conventions (``GaussianMixture`` users know its
methods): numpy in, numpy out; parameters only in ``__init__``; fitted attributes end in ``_``.
It standardises the data, starts from a Gaussian mixture's clusters (chapters 6 and 8), trains ``n_init`` restarts and keeps
the one with the best training objective, never by looking at labels.

Example:
    >>> import numpy as np
    >>> from vmonf_mini import MixtureOfFlows
    >>> from vmonf_mini.data import pinwheel
    >>> x, y = pinwheel(n_per_class=40, seed=0)
    >>> est = MixtureOfFlows(5, n_blocks=2, max_epochs=3, n_init=2, random_state=0).fit(x.numpy())
    >>> est.predict(x.numpy()).shape, est.score_samples(x.numpy()).dtype
    ((200,), dtype('float64'))
    >>> samples, components = est.sample(10)
    >>> samples.shape, components.shape
    ((10, 2), (10,))
"""

from __future__ import annotations

import copy
import math
from numbers import Integral, Real
from typing import Any, Callable, Optional, Tuple

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClusterMixin, DensityMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, column_or_1d

from .checks import check_label_counts, check_positive_int
from .mixture import ModelConfig, VMoNF
from .runtime import default_device
from .training import INIT_METHODS, TrainConfig, _fit_runs, _RunOptions, head_start

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data as _validate_data
except ImportError:  # pragma: no cover - older scikit-learn

    def _validate_data(estimator: Any, X: Any, **kwargs: Any) -> np.ndarray:
        return estimator._validate_data(X, **kwargs)


try:  # scikit-learn >= 1.3: the parameters are checked by scikit-learn's own constraints
    from sklearn.base import _fit_context
    from sklearn.utils._param_validation import Interval, StrOptions
except (
    ImportError
):  # pragma: no cover - older scikit-learn: TrainConfig and ModelConfig check
    _fit_context = None

__all__ = ["MixtureOfFlows"]

_CHUNK = 8192  # rows per forward pass at prediction time
#: Epochs of the main phase for ``max_epochs="auto"``. With labels the ELBO phase is kept short:
#: a long one lets a component drift from its labeled points onto another class (chapter 7).
#: With ``label_graph`` the propagated labels hold the classes in place: the unsupervised length.
AUTO_EPOCHS = {"unsupervised": 100, "semi-supervised": 10}


def _validated(fit: Callable[..., Any]) -> Callable[..., Any]:
    """``fit`` that first checks every parameter against ``_parameter_constraints``
    (scikit-learn's ``_fit_context``); with an older scikit-learn, ``fit`` as it is (the configs
    it builds check the values, their errors naming the config's fields)."""
    if _fit_context is None:  # pragma: no cover
        return fit
    return _fit_context(prefer_skip_nested_validation=True)(fit)


def _constraints() -> dict:
    """The estimator's parameter constraints, in scikit-learn's vocabulary (``{}`` without it)."""
    if _fit_context is None:  # pragma: no cover
        return {}
    count = lambda low: Interval(Integral, low, None, closed="left")  # noqa: E731
    return {
        "n_components": [count(1)],
        "flow": [StrOptions({"realnvp", "maf"})],
        "n_blocks": [count(1)],
        "hidden": [count(1), list, tuple],
        "encoder_hidden": [count(1), list, tuple],
        "n_init": [count(1)],
        "init": [StrOptions(set(INIT_METHODS))],
        "init_epochs": [count(1)],
        "max_epochs": [count(1), StrOptions({"auto"})],
        "pretrain_epochs": [count(0)],
        "label_graph": [count(1), None],
        "batch_size": [count(2)],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "random_state": ["random_state"],
        "device": [str, torch.device, None],
        "verbose": ["boolean"],
    }


def _mean_and_scale(X: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """The features' means and standard deviations (1 for a constant feature), finite for any
    finite ``X``.

    Where the squares (or the sum) of a feature overflow float64 (values beyond about 1e154),
    its moments are computed on the feature divided by its largest magnitude, then scaled back.

    >>> mean, scale = _mean_and_scale(np.array([[1e300, 5.0], [3e300, 5.0]]))
    >>> bool(np.allclose(mean, [2e300, 5.0])), bool(np.allclose(scale, [1e300, 1.0]))
    (True, True)
    """
    with np.errstate(over="ignore", invalid="ignore"):
        mean, scale = X.mean(axis=0), X.std(axis=0)
    far = ~(np.isfinite(mean) & np.isfinite(scale))
    if far.any():
        size = np.abs(X[:, far]).max(axis=0)
        unit = X[:, far] / size
        mean[far], scale[far] = unit.mean(axis=0) * size, unit.std(axis=0) * size
    scale = np.where(
        scale > 10 * np.finfo(np.float64).eps * np.maximum(1.0, np.abs(mean)),
        scale,
        1.0,
    )
    return mean, scale


def _standardise(
    X: np.ndarray, mean: np.ndarray, scale: np.ndarray, problem: str
) -> np.ndarray:
    """``(X - mean) / scale``; where a finite ``X`` overflows float64 on the way, a ValueError
    that says so, ``problem`` naming the cause."""
    with np.errstate(over="ignore", invalid="ignore"):
        x = (X - mean) / scale
    if not np.isfinite(x).all():
        rows = int((~np.isfinite(x)).any(axis=1).sum())
        raise ValueError(
            f"standardising X, (X - mean_) / scale_, overflows float64 in {rows} of "
            f"{x.shape[0]} rows: {problem}; rescale the features"
        )
    return x


@torch.no_grad()
def _evaluate(model: VMoNF, x: np.ndarray, fn: Any) -> np.ndarray:
    """``fn(model, x_chunk)`` over standardised ``x`` in chunks, concatenated as numpy."""
    ref = model.prior_logits
    parts = [
        fn(
            model,
            torch.as_tensor(x[i : i + _CHUNK], dtype=ref.dtype, device=ref.device),
        )
        .cpu()
        .numpy()
        for i in range(0, x.shape[0], _CHUNK)
    ]
    return np.concatenate(parts)


class MixtureOfFlows(ClusterMixin, DensityMixin, BaseEstimator):
    """A variational mixture of normalizing flows as a scikit-learn clusterer and density estimator.

    ``p(x) = sum_c p(c) p(x|c)``, each ``p(x|c)`` a normalizing flow, ``p(c) = 1/K``, and an
    encoder ``q(c|x)`` trained with the flows by the ELBO (Pires & Figueiredo, 2020; chapter 4).
    What the book found is built in: the features are standardised (and the change of units is
    undone exactly in :meth:`score_samples` and :meth:`sample`), the runs start from a
    partition they first learn (a Gaussian mixture's clusters by default: chapter 6's k-means
    head start, chapter 8's Gaussian-mixture start), and ``n_init`` runs are trained together
    (``vm.fit_many``) from different seeds, the one with the highest training objective kept.

    **Semi-supervised.** ``fit(X, y)`` with ``y`` holding a component index ``0..K-1`` for
    labeled points and ``-1`` for unlabeled ones (scikit-learn's convention): component ``c``
    is then class ``c``. The labels are propagated along a ``label_graph``-nearest-neighbour
    graph of the points (``vm.fit(..., label_graph=10)``, :mod:`vmonf_mini.graph`): the runs
    start from the propagated labels, in place of ``init``, and q(c|x) is kept near them
    through the ELBO phase, so that one or a few labels per class suffice where the graph
    joins each class (two moons, two circles); the labeled points keep their labels
    throughout. ``label_graph=None`` gives the earlier head start, scikit-learn's
    ``LabelSpreading`` (15-nearest-neighbour graph), and the paper's objective. (Chapter 7
    pretrains on the labeled points instead; after a head start, pretraining on 64 points made
    the two circles worse, so ``pretrain_epochs`` is 0.)

    **Choosing the run.** The objective is the mean, over the training points, of the ELBO at
    temperature 1 (``log p(x) - KL(q(c|x) || p(c|x))``; for a labeled point ``log p(x, y)``):
    a lower bound on the log-likelihood that also penalises an encoder that disagrees with the
    flows, which is how a run whose encoder failed (dead units, chapter 6) shows up while its
    likelihood can look fine. Labels of the unlabeled points are never used.

    **Defaults that hold on the book's data sets.** Matched accuracy over 10 random states
    (``bench/estimator.py``; median, worst; ``GaussianMixture(n_init=10)`` on the same input):

    =============================================  ==============  ===================
    data set                                       MixtureOfFlows  GaussianMixture
    =============================================  ==============  ===================
    pinwheel, 2,560 points, ``MixtureOfFlows(5)``  0.996, 0.991    0.988, 0.988
    two circles, 64 labels, ``MixtureOfFlows(2)``  1.000, 1.000    0.541, 0.531 (no y)
    digits 0-4, after ``PCA(10, whiten=True)``     0.954, 0.947    0.939, 0.938
    =============================================  ==============  ===================

    Args:
        n_components: number of mixture components K.
        flow: ``"realnvp"`` (affine couplings and batch norm) or ``"maf"`` (MADE layers).
        n_blocks: flow depth per component.
        hidden: hidden width of each coupling net (or MADE).
        encoder_hidden: hidden widths of the encoder q(c|x).
        n_init: number of runs; the one with the best training objective is kept.
        init: the head start without labels: ``"gmm"`` (the clusters of a full-covariance
            ``GaussianMixture``, the best of 10 starts by its likelihood, as chapter 8 starts its
            image recipe), ``"kmeans"`` (each run from scikit-learn's k-means with its own seed,
            chapter 6) or ``"random"`` (the paper: no head start). On the digits the Gaussian
            mixture's start gave 0.95 where k-means' gave 0.935 (median of 10 seeds).
        init_epochs: epochs of the head start (components and encoder on the initial partition).
        max_epochs: the most epochs of the main phase (ELBO on all points); a run stops
            earlier once its loss has settled within ``tol``.
            ``"auto"``: 100, or 10 with labels and ``label_graph=None``, since a long
            ELBO phase then lets a component drift from its labeled points (chapter 7).
        pretrain_epochs: epochs on the labeled points alone before the main phase (with ``y``;
            chapter 7's way, off by default, see above).
        label_graph: with ``y``, the neighbours of the graph the labels are propagated along
            (``vm.fit``'s ``label_graph``); ``None``: the earlier head start, see above.
        batch_size: points per step.
        learning_rate: Adam's learning rate.
        tol: a run stops once the mean training loss over its last tenth of ``max_epochs``
            epochs (at least one) differs from that over the tenth before by at most ``tol``
            nats per point (``vm.TrainConfig``'s ``tol``); 0 stops only on an exactly flat loss.
        random_state: ``None``, an int or a ``numpy.random.RandomState``; the runs' seeds are drawn
            from it, so an int makes ``fit`` and :meth:`sample` reproducible.
        device: torch device to train on; ``None`` picks the GPU when there is one.
        verbose: show progress bars.

    Attributes:
        model_: the trained :class:`~vmonf_mini.VMoNF` of the kept run, on standardised inputs,
            in eval mode and float64.
        history_: its :class:`~vmonf_mini.History`.
        lower_bound_: the kept run's final lower bound on the log-likelihood, mean nats per
            point in the units of ``X`` (as ``GaussianMixture.lower_bound_``): its training
            objective, the ELBO at temperature 1 (``log p(x, y)`` for labeled points).
        lower_bounds_: the kept run's lower bound after every epoch of its main phase, mean nats
            per point in the units of ``X`` (as ``GaussianMixture.lower_bounds_``): minus its
            training loss, at that epoch's temperature, ``(n_iter_,)``.
        run_lower_bounds_: the final lower bound of every run, ``(n_init,)``, the kept run's the
            highest (``-inf`` for a run whose loss became non-finite).
        n_iter_: epochs of the main phase that the kept run trained (at most ``max_epochs``).
        converged_: whether the kept run stopped because its loss had settled within ``tol``.
        labels_: ``predict(X)`` of the training data.
        mean_: the features' means (the standardisation is ``(X - mean_) / scale_``).
        scale_: the features' standard deviations (1 for a constant feature), finite for any
            finite ``X`` (computed in rescaled units where the squares would overflow).
        n_features_in_: number of features seen in ``fit``.
    """

    _parameter_constraints: dict = _constraints()

    def __init__(
        self,
        n_components: int = 1,
        *,
        flow: str = "realnvp",
        n_blocks: int = 8,
        hidden: int = 16,
        encoder_hidden: Tuple[int, ...] = (32, 32),
        n_init: int = 4,
        init: str = "gmm",
        init_epochs: int = 20,
        max_epochs: Any = "auto",
        pretrain_epochs: int = 0,
        label_graph: Optional[int] = 10,
        batch_size: int = 512,
        learning_rate: float = 3e-3,
        tol: float = 1e-2,
        random_state: Any = None,
        device: Any = None,
        verbose: bool = False,
    ) -> None:
        self.n_components = n_components
        self.flow = flow
        self.n_blocks = n_blocks
        self.hidden = hidden
        self.encoder_hidden = encoder_hidden
        self.n_init = n_init
        self.init = init
        self.init_epochs = init_epochs
        self.max_epochs = max_epochs
        self.pretrain_epochs = pretrain_epochs
        self.label_graph = label_graph
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.tol = tol
        self.random_state = random_state
        self.device = device
        self.verbose = verbose

    # ------------------------------------------------------------------ fitting
    @_validated
    def fit(self, X: Any, y: Any = None) -> "MixtureOfFlows":
        """Train ``n_init`` runs on ``X (n_samples, n_features)`` and keep the best; returns ``self``.

        ``y``: optional component indices ``0..K-1`` with ``-1`` for unlabeled points.

        Every parameter is checked before any training (scikit-learn's parameter constraints).
        The new fitted state is built aside and
        replaces the old one only once the fit has succeeded: a fit that fails (a refused
        parameter or input, a non-finite objective, Ctrl-C) leaves a fitted estimator exactly
        as it was. Torch's global random generator is left as the caller had it: the runs draw
        from their own seeds, drawn from ``random_state``.
        """
        # validate_data sets n_features_in_ (and feature_names_in_) on a copy, not on self
        scratch = copy.copy(self)
        X = _validate_data(scratch, X, dtype=np.float64, ensure_min_samples=2)
        k = self.n_components
        if X.shape[0] < k:
            raise ValueError(
                f"Expected n_samples >= n_components, got n_samples={X.shape[0]}, n_components={k}"
            )
        if self.flow == "realnvp" and X.shape[1] < 2:
            raise ValueError(
                "flow='realnvp' needs at least 2 features (a coupling layer splits them), got n_features = 1: use flow='maf'"
            )
        # the labels' one check (their counts too): training and _objective take them as they are
        labels = self._labels(y, X.shape[0], k)
        architecture, config = self._configs(X.shape[1], labels is not None)
        mean, scale = _mean_and_scale(X)
        standardised = _standardise(
            X, mean, scale, "the values of X span more than float64 holds once centred"
        )
        x = torch.as_tensor(standardised, dtype=torch.float32)
        device = (
            torch.device(self.device) if self.device is not None else default_device()
        )
        rng = check_random_state(self.random_state)
        seeds = [int(s) for s in rng.randint(0, 2**31 - 1, size=self.n_init)]

        # the runs seed torch's generators; every one is restored afterwards (CUDA's too)
        gpus = (
            list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
        )
        with torch.random.fork_rng(devices=gpus):
            models = []
            for seed in seeds:
                torch.manual_seed(seed)  # each run's weights from its own seed
                models.append(architecture.build().to(device))
            config = config.replace(init=self._head_start(x, labels, k, seeds[0]))
            histories = _fit_runs(  # X and y were checked above, once
                models,
                x.to(device),
                None if labels is None else labels.to(device),
                seeds,
                config,
                _RunOptions(device, bool(self.verbose), None),
                max_parallel=None,
                per_run=True,
                checked=True,
            )
        objectives = [
            -math.inf if h.diverged else self._objective(m.double(), x, labels)
            for m, h in zip(models, histories)
        ]
        best = int(np.argmax(objectives))
        if not math.isfinite(objectives[best]):
            raise FloatingPointError(
                "every run ended with a non-finite objective: try a lower learning_rate"
            )

        model, history = models[best].eval(), histories[best]
        log_det = float(np.log(scale).sum())  # the standardisation's, per point
        run_lower_bounds = np.asarray(objectives) - log_det
        fitted = dict(
            n_features_in_=scratch.n_features_in_,
            mean_=mean,
            scale_=scale,
            model_=model,
            history_=history,
            lower_bound_=float(run_lower_bounds[best]),
            lower_bounds_=-np.asarray(history.loss) - log_det,
            run_lower_bounds_=run_lower_bounds,
            n_iter_=len(history.loss),
            converged_=history.converged,
            labels_=_evaluate(model, standardised, lambda m, x: m.predict(x)).astype(
                np.int64
            ),
        )
        if hasattr(scratch, "feature_names_in_"):
            fitted["feature_names_in_"] = scratch.feature_names_in_
        else:
            vars(self).pop("feature_names_in_", None)
        vars(self).update(fitted)  # the swap: one update, after everything succeeded
        return self

    def _configs(
        self, n_features: int, semi_supervised: bool
    ) -> Tuple[ModelConfig, TrainConfig]:
        """The one place where the estimator's scikit-learn names become the package's configs
        (``n_components`` -> ``k``, ``n_blocks`` -> ``blocks``, ``learning_rate`` -> ``lr``,
        ``max_epochs`` -> ``epochs``, ``tol`` -> ``tol``; book/api.md has the whole table)."""
        hidden = self.encoder_hidden
        architecture = ModelConfig(
            dim=n_features,
            k=self.n_components,
            flow=self.flow,
            blocks=self.n_blocks,
            hidden=self.hidden,
            encoder_hidden=tuple(hidden)
            if isinstance(hidden, (tuple, list))
            else (hidden,),
        )
        short = (
            semi_supervised and self.label_graph is None
        )  # chapter 7: a short ELBO phase
        epochs = self.max_epochs
        if isinstance(epochs, str):  # "auto"
            epochs = AUTO_EPOCHS["semi-supervised" if short else "unsupervised"]
        config = TrainConfig(
            epochs=epochs,
            batch_size=self.batch_size,
            lr=self.learning_rate,
            init_epochs=self.init_epochs,
            pretrain_epochs=self.pretrain_epochs if semi_supervised else 0,
            label_graph=self.label_graph if semi_supervised else None,
            tol=self.tol,
        )
        return architecture, config

    def _head_start(
        self, x: torch.Tensor, labels: Optional[torch.Tensor], k: int, seed: int
    ) -> Any:
        """The runs' ``init``: ``"kmeans"`` (each run its own k-means), the clusters of one
        Gaussian mixture for all runs (seeded by the first run's seed), ``None``; with labels,
        ``None`` (``label_graph``: training propagates them) or scikit-learn's label spreading
        from the labeled points (k-nearest-neighbour graph)."""
        if labels is not None and self.label_graph is not None:
            return None  # fit propagates the labels and starts from them
        if labels is not None:
            from sklearn.semi_supervised import LabelSpreading

            points = x.double().numpy()
            spread = LabelSpreading(
                kernel="knn", n_neighbors=min(15, len(points) - 1)
            ).fit(points, labels.numpy())
            return torch.as_tensor(spread.transduction_, dtype=torch.long)
        if self.init == "gmm":  # one mixture for all runs
            return head_start("gmm", x, k, seed)
        return self.init  # "kmeans": every run its own; "random": none

    @staticmethod
    def _labels(y: Any, n: int, k: int) -> Optional[torch.Tensor]:
        """``y`` as a tensor of ``-1`` / ``0..K-1``, or ``None`` when absent or all unlabeled: the
        one check of the labels on the estimator's path (``_fit_runs(checked=True)`` and
        :meth:`_objective` take the tensor as it is). With ``n >= 2`` (``fit`` asks for two rows)
        the counts checked here are all that training would refuse."""
        if y is None:
            return None
        y = column_or_1d(np.asarray(y), warn=True)
        if y.shape[0] != n:
            raise ValueError(
                f"y must have one entry per row of X: {y.shape[0]} entries for {n} rows"
            )
        if y.dtype.kind == "f" and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
            y = y.astype(np.int64)
        if y.dtype.kind not in "iu":
            raise ValueError(
                f"y must hold integer component indices (-1 for unlabeled), got dtype {y.dtype}"
            )
        bad = (y < -1) | (y >= k)
        if bad.any():
            raise ValueError(
                f"y must be -1 (unlabeled) or a component index 0..{k - 1}; found {np.unique(y[bad])[:5].tolist()}"
            )
        if np.all(y == -1):
            return None
        # batch norm needs two points in a batch of each kind (training does not check again)
        check_label_counts(int(np.sum(y >= 0)), int(np.sum(y == -1)), "y")
        return torch.tensor(y, dtype=torch.long)  # a copy: y may be read-only

    @torch.no_grad()
    def _objective(
        self, model: VMoNF, x: torch.Tensor, labels: Optional[torch.Tensor]
    ) -> float:
        """Mean over ``x`` of the ELBO at T=1 (``log p(x, y)`` for labeled points), standardised units."""
        model.eval()
        values = model._checked_elbo(x, 1.0, _CHUNK, labels)  # fit checked the labels
        # summed a chunk at a time, in the order the chunks were evaluated (same rounding)
        mean = sum(float(part.sum()) for part in values.split(_CHUNK)) / x.shape[0]
        return mean if math.isfinite(mean) else -math.inf

    # ------------------------------------------------------------------ helpers
    def _input(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        X = _validate_data(self, X, dtype=np.float64, reset=False)
        return _standardise(
            X, self.mean_, self.scale_, "X lies too far from the training data"
        )

    def _per_chunk(self, X: Any, fn: Any) -> np.ndarray:
        """``fn(model, x_chunk)`` over standardised ``X`` in chunks, concatenated as numpy."""
        x = self._input(X)  # checks that the estimator is fitted
        return _evaluate(self.model_, x, fn)

    # ------------------------------------------------------------------ prediction
    def predict(self, X: Any, exact: bool = False) -> np.ndarray:
        """Component of each row: ``argmax_c q(c|x)``, or of the exact ``p(c|x)`` when ``exact``; ``(n_samples,)``."""
        return self._per_chunk(X, lambda m, x: m.predict(x, exact=exact)).astype(
            np.int64
        )

    def predict_proba(self, X: Any, exact: bool = False) -> np.ndarray:
        """The encoder's ``q(c|x)``, or the exact posterior ``p(c|x)`` when ``exact``; ``(n_samples, K)``."""
        return self._per_chunk(
            X, lambda m, x: m.exact_posterior(x) if exact else m.posterior(x)
        )

    def score_samples(self, X: Any) -> np.ndarray:
        """Exact ``log p(x)`` of each row in the units of ``X`` (the standardisation's log-determinant included)."""
        log_det = float(np.log(self.scale_).sum()) if hasattr(self, "scale_") else 0.0
        return self._per_chunk(X, lambda m, x: m.log_prob(x)) - log_det

    def score(self, X: Any, y: Any = None) -> float:
        """Mean exact log-likelihood per row of ``X`` (``y`` is ignored)."""
        return float(self.score_samples(X).mean())

    def sample(self, n_samples: int = 1) -> Tuple[np.ndarray, np.ndarray]:
        """Draw ``n_samples`` points in the units of ``X`` and their components: ``(X (n, D), y (n,))``.

        With an int ``random_state`` every call draws the same points (as ``GaussianMixture``).
        """
        check_is_fitted(self)
        n = check_positive_int(n_samples, "n_samples")
        seed = int(check_random_state(self.random_state).randint(0, 2**31 - 1))
        device = self.model_.prior_logits.device
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            x, c = self.model_.sample(n)
        return x.cpu().numpy() * self.scale_ + self.mean_, c.cpu().numpy().astype(
            np.int64
        )

    # ------------------------------------------------------------------ model selection
    def _n_parameters(self) -> int:
        """Free parameters of the density: the flows (and the prior when learned), not the encoder.

        The encoder q(c|x) is a device of the training, not part of p(x); the standardisation is
        fixed by the data (as is a GaussianMixture's scaling). Batch-norm running statistics are
        estimates of the data's moments, not trained parameters, and are not counted.
        """
        check_is_fitted(self)
        params = sum(p.numel() for p in self.model_.components.parameters())
        if isinstance(self.model_.prior_logits, torch.nn.Parameter):
            params += self.n_components - 1
        return int(params)

    def bic(self, X: Any) -> float:
        """Bayesian information criterion on ``X``: ``-2 sum log p(x) + p log n`` (lower is better)."""
        X = np.asarray(X) if not hasattr(X, "shape") else X
        return float(
            -2 * self.score_samples(X).sum() + self._n_parameters() * math.log(len(X))
        )

    def aic(self, X: Any) -> float:
        """Akaike information criterion on ``X``: ``-2 sum log p(x) + 2 p`` (lower is better)."""
        return float(-2 * self.score_samples(X).sum() + 2 * self._n_parameters())
