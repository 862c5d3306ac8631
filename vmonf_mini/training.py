"""Training a VMoNF: unsupervised by the ELBO, semi-supervised with labels (chapters 4-7).

:func:`fit` trains one model; :func:`fit_many` trains R models of one architecture together
(seeds, label budgets), R times the work in far less than R times the time.  Both run the
same loop (``_Loop``): an optional ``init`` phase, an optional ``pretrain`` phase and the
``main`` phase, the loss terms coming from :mod:`vmonf_mini.objectives`.

Example:
    >>> import torch
    >>> from vmonf_mini import VMoNF, fit
    >>> from vmonf_mini.data import pinwheel
    >>> x, y = pinwheel(n_per_class=64, seed=0)
    >>> model = VMoNF(dim=2, k=5, blocks=2, encoder_hidden=(8,))
    >>> history = fit(model, x, epochs=2, batch_size=64, lr=1e-3, seed=0, progress=False)
    >>> len(history.loss)
    2
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from typing import (
    Any,
    Callable,
    Dict,
    List,
    Optional,
    Sequence,
    Tuple,
    Union,
)

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import trange

from .checks import (
    as_data,
    as_labels,
    SettingsMapping,
    check_fields,
    check_label_counts,
    check_number,
    check_positive_int,
    check_temperature,
)
from .layers import StackedLinear
from .mixture import VMoNF
from .objectives import (
    MIN_TEMPERATURE,
    consistency_kl,
    floor_temperature,
    labeled_loss,
    soft_target_loss,
    tempered_log_q,
    unlabeled_loss,
)
from .stacking import RunStack, SingleRun, first_difference, first_shared

__all__ = [
    "TrainConfig",
    "ExponentialDecay",
    "History",
    "INIT_METHODS",
    "fit",
    "fit_many",
    "fit_density",
    "head_start",
    "gaussian_mixture",
]


@dataclass(frozen=True)
class ExponentialDecay:
    """Temperature schedule ``T(t) = max(floor, start * exp(-rate * t))``, ``t`` = global step from 1.

    The paper uses ``rate=1e-3`` with no floor (``floor=None``; chapter 5). Without one, the
    encoder saturates: once the gap between two logits exceeds about 104 T, the smaller
    ``q(c|x)`` is exactly 0 in float32 and the encoder's gradient exactly 0 (from a few thousand
    steps on); ``logits / T`` overflows float32 only after about 84,000 steps. A floor keeps
    the encoder learning late in training.

    >>> ExponentialDecay(rate=1e-3, floor=0.05)(1000)
    0.36787944117144233
    >>> ExponentialDecay(floor=None)(25_600) < 1e-11
    True
    """

    rate: float = 1e-3
    start: float = 1.0
    floor: Optional[float] = 1e-2

    def __post_init__(self) -> None:
        check_number(self.rate, "rate", positive=False)
        check_temperature(self.start, "start")
        if self.floor is not None:
            check_temperature(self.floor, "floor")

    def __call__(self, step: int) -> float:
        value = self.start * math.exp(-self.rate * step)
        return floor_temperature(value, self.floor)


@dataclass
class History:
    """Per-epoch record of a :func:`fit` run (chapter 4).

    ``loss``, ``temperature`` and ``seconds`` have one entry per epoch of the main phase, and
    ``steps`` counts its optimiser steps; ``pretrain_loss`` has one entry per pretraining epoch.
    ``temperature`` is the temperature the last step of the epoch divided the logits by: the
    schedule's value, floored at ``min_temperature``.
    ``init_agreement`` is the fraction of points whose prediction (eval mode) matches the
    initial assignment at the end of the ``init`` phase (``None`` without one): well below 1,
    the encoder has not learned the initialisation yet (raise ``init_epochs`` or ``init_lr``).
    ``converged``: with a ``tol`` (:class:`TrainConfig`), whether the loss settled, which
    stopped the run (``len(loss)`` epochs ran).
    ``diverged`` is ``None`` for a run trained to the end; for a run of :func:`fit_many` whose
    loss became NaN or infinite, where it did (phase, epoch, step, loss): the run was frozen at
    its last finite step while the other runs went on, and its lists stop there.
    """

    loss: List[float] = field(default_factory=list)
    temperature: List[float] = field(default_factory=list)
    seconds: List[float] = field(default_factory=list)
    pretrain_loss: List[float] = field(default_factory=list)
    steps: int = 0
    init_agreement: Optional[float] = None
    diverged: Optional[str] = None
    converged: bool = False


Schedule = Union[None, float, Callable[[int], float]]

#: The values of ``init`` (:class:`TrainConfig`) that name a head start; ``None`` is ``"random"``.
INIT_METHODS = ("random", "kmeans", "gmm")


@dataclass(frozen=True)
class TrainConfig(SettingsMapping):
    """The settings of a training, validated: what :func:`fit`, :func:`fit_many`, the recipes
    (:mod:`vmonf_mini.recipes`) and the paper's experiment hold (chapters 4 to 9).

    Every field is checked when the config is made; an error names the field. ``replace``
    returns a copy with some fields changed (unknown names are refused), and the config is a
    read-only mapping of its fields too: ``fit(model, x, **config)`` is ``fit(model, x, config)``.

    Args:
        epochs: passes over the unlabeled points (over the labeled ones when all are labeled).
        batch_size: points per step, at least 2 (the last, smaller batch of an epoch is kept
            unless it has one point).
        lr: Adam's learning rate.
        weight_decay: Adam's weight decay (an L2 penalty).
        temperature: a number, ``None`` (1.0) or a schedule ``step -> T`` (default: the
            paper's ``exp(-1e-3 t)``, floored at 0.01). It divides the posterior's logits.
        pretrain_epochs: epochs on the labeled points alone before the main phase.
        clip_grad_norm: clip the gradients' global norm to this value.
        objective: ``"elbo"`` (the paper) or ``"exact"``: maximum likelihood of the exact
            ``log p(x)``, no encoder involved (chapter 9); predict with ``exact=True`` then.
        consistency: weight of a consistency term ``KL(q(c|x) || q(c|x+noise))`` on the
            unlabeled points (chapter 9).
        consistency_noise: standard deviation of that noise, in the units of ``x``.
        init: the head start, one vocabulary for the whole package: ``None`` or ``"random"``
            (no head start, the paper), ``"kmeans"`` (scikit-learn's k-means on ``x``, seeded
            by the run's seed, as scikit-learn's GaussianMixture initialises), ``"gmm"`` (the
            clusters of a full-covariance Gaussian mixture, the best of 10 starts, seeded by the
            run's seed; chapter 8) or ``(N,)`` initial assignments in ``0..K-1``. With a head
            start, ``init_epochs`` epochs first train each component on its assigned points and
            q(c|x) to predict the assignment (the labeled loss); ``History.init_agreement`` then
            says how well q(c|x) reproduces it.
        init_epochs: epochs of that initialisation phase.
        init_lr: Adam's learning rate in that phase (default ``lr``; the main phase then starts
            a fresh Adam at ``lr``). A small encoder learns a partition slowly: the paper's
            three-unit pinwheel encoder learns the k-means partition within 100 epochs at
            ``init_lr=1e-2``, far more slowly at the paper's 1e-3 (chapter 6).
        min_temperature: the smallest temperature the training divides the logits by (default
            ``vmonf_mini.mixture.MIN_TEMPERATURE``, 1e-3); ``None`` for none, as the paper
            (its MNIST run, chapter 8).
        label_graph: with a handful of labels (chapter 7), the number of neighbours of a
            k-nearest-neighbour graph of ``x`` along which the labels are propagated
            (:func:`vmonf_mini.graph.propagate`: scikit-learn's ``LabelPropagation``); ``None``
            (default) for none, the paper's objective. The ``init`` phase then trains on the
            propagated labels (unless ``init`` is given), and the main phase runs over every
            point, adding to its negative ELBO ``label_graph_weight`` times the cross-entropy
            of q(c|x) against its propagated label (a labeled point's: its label;
            :func:`~vmonf_mini.objectives.soft_target_loss`), so that the ELBO does not undo
            the start. (No separate batch of labeled points: a few labels would make a
            batch of a few points, whose batch-norm statistics spoil the flows.) Needs labels
            and ``objective="elbo"``.
        label_graph_weight: the weight of that cross-entropy (0: the propagated start only,
            then the ELBO over all points, the labeled ones included).
        tol: stop a run early once its loss has settled: when the mean loss of its last
            ``max(1, epochs // 10)`` epochs differs from that of as many epochs before by at
            most ``tol`` (nats per point); ``None`` (default): every epoch runs.
            ``History.converged`` says whether it did.

    Example:
        >>> config = TrainConfig(epochs=400, lr=1e-3)
        >>> config.replace(epochs=2).epochs, config["batch_size"]
        (2, 128)
        >>> config.replace(epoch=2)
        Traceback (most recent call last):
        ...
        TypeError: unknown training settings ['epoch']; TrainConfig has epochs, batch_size, lr, weight_decay, temperature, pretrain_epochs, clip_grad_norm, objective, consistency, consistency_noise, init, init_epochs, init_lr, min_temperature, label_graph, label_graph_weight, tol
    """

    _what = "training settings"  # how SettingsMapping.replace names them

    epochs: int
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0
    temperature: Schedule = ExponentialDecay()
    pretrain_epochs: int = 0
    clip_grad_norm: Optional[float] = None
    objective: str = "elbo"
    consistency: float = 0.0
    consistency_noise: float = 0.05
    init: Any = None
    init_epochs: int = 20
    init_lr: Optional[float] = None
    min_temperature: Optional[float] = MIN_TEMPERATURE
    label_graph: Optional[int] = None
    label_graph_weight: float = 3.0
    tol: Optional[float] = None

    def __post_init__(self) -> None:
        batch_size = check_positive_int(self.batch_size, "batch_size")
        if batch_size < 2:
            raise ValueError(
                "batch_size must be at least 2 (batch norm needs two points)"
            )
        pretrain = self.pretrain_epochs
        if (
            isinstance(pretrain, (bool, np.bool_))
            or not isinstance(pretrain, (int, np.integer))
            or pretrain < 0
        ):
            raise ValueError(
                f"pretrain_epochs must be an integer >= 0, got {pretrain!r}"
            )
        if self.objective not in ("elbo", "exact"):
            raise ValueError(
                f"objective must be 'elbo' or 'exact', got {self.objective!r}"
            )
        if isinstance(self.init, str) and self.init not in INIT_METHODS:
            raise ValueError(
                f"init must be None, 'kmeans', 'gmm', 'random' or (N,) assignments, got {self.init!r}"
            )
        _schedule(self.temperature)  # refuses what is neither a number nor a schedule
        graph = self.label_graph
        if graph is not None:
            graph = check_positive_int(graph, "label_graph")
            if self.objective != "elbo":
                raise ValueError(
                    "label_graph trains the encoder q(c|x), which objective='exact' does not use: "
                    "use objective='elbo'"
                )
        checked = dict(
            epochs=check_positive_int(self.epochs, "epochs"),
            batch_size=batch_size,
            lr=check_number(self.lr, "lr"),
            weight_decay=check_number(
                self.weight_decay, "weight_decay", positive=False
            ),
            pretrain_epochs=int(pretrain),
            clip_grad_norm=check_number(
                self.clip_grad_norm, "clip_grad_norm", optional=True
            ),
            consistency=check_number(self.consistency, "consistency", positive=False),
            consistency_noise=check_number(
                self.consistency_noise, "consistency_noise", positive=False
            ),
            init_epochs=check_positive_int(self.init_epochs, "init_epochs"),
            init_lr=check_number(self.init_lr, "init_lr", optional=True),
            min_temperature=None
            if self.min_temperature is None
            else check_temperature(self.min_temperature, "min_temperature"),
            label_graph=graph,
            label_graph_weight=check_number(
                self.label_graph_weight, "label_graph_weight", positive=False
            ),
            tol=check_number(self.tol, "tol", positive=False, optional=True),
        )
        for name, value in checked.items():
            object.__setattr__(self, name, value)

    def temperature_at(self, step: int) -> float:
        """The temperature step ``step`` (from 1) divides the logits by: the schedule's value,
        floored at ``min_temperature`` (what :class:`History` records).

        >>> TrainConfig(epochs=1, temperature=1e-5).temperature_at(1)
        0.001
        """
        return floor_temperature(
            _schedule(self.temperature)(step), self.min_temperature
        )


def _train_config(
    config: Optional[TrainConfig], overrides: Dict[str, Any]
) -> TrainConfig:
    """``config`` with ``overrides`` (fit's keyword arguments), or a config of the overrides alone."""
    if config is not None and not isinstance(config, TrainConfig):
        raise TypeError(
            f"config must be a vmonf_mini.TrainConfig or None, got {type(config).__name__}"
        )
    check_fields(overrides, TrainConfig, "training settings")
    if config is not None:
        return config.replace(**overrides)
    if "epochs" not in overrides:
        raise TypeError("training needs epochs= (or a TrainConfig as config)")
    return TrainConfig(**overrides)


#: Steps of one epoch whose batch-norm statistics a failed step would have corrupted are undone;
#: the parameters are only ever changed by a step whose loss was finite.
_ADVICE = "try a lower lr, clip_grad_norm=1.0, standardised x, or a temperature floor"


@dataclass
class _RunData:
    """One training run's own data: its seed, random stream, labeled points and history."""

    index: int
    seed: int
    generator: torch.Generator
    x: Tensor  # the run's data, (N, D)
    labeled: Tensor  # indices into x of the labeled points (CPU)
    targets: Tensor  # their labels (CPU)
    unlabeled: Tensor  # indices into x of the other points (CPU)
    init: Optional[Tensor]  # initial assignment of every point (CPU), or None
    history: History = field(default_factory=History)
    # label_graph: every point's propagated label, one-hot (N, K) on the CPU, or None
    soft: Optional[Tensor] = None


def fit(
    model: VMoNF,
    x: Any,
    labels: Any = None,
    config: Optional[TrainConfig] = None,
    *,
    seed: Optional[int] = None,
    device: Union[None, str, torch.device] = None,
    progress: bool = True,
    callback: Optional[Callable[[int, VMoNF], None]] = None,
    **overrides: Any,
) -> History:
    """Train ``model`` on ``x`` with Adam; returns a :class:`History`. The model ends in eval mode.

    The settings are a :class:`TrainConfig`: ``config``, with any of its fields given as
    keyword arguments (``overrides``) replacing its own; without ``config``, the keyword
    arguments alone (``epochs`` at least): ``fit(model, x, epochs=400)``. Training runs up to
    three phases, each a number of epochs: ``init`` (with a head start), ``pretrain`` (when
    ``pretrain_epochs > 0``) and ``main``.  To train several models of one architecture
    (seeds, label budgets), :func:`fit_many` trains them together, several times faster.

    Args:
        model: the mixture to train (moved to ``device`` if given).
        x: data, ``(N, D)``.
        labels: optional ``(N,)`` integers, ``-1`` for unlabeled points. Labeled points train
            their own component's likelihood ``log p(x|y) + log p(y)`` and q(c|x) by
            cross-entropy; each step sees a batch of unlabeled and a batch of labeled points.
            Label at least two points (batch norm needs two), or none.
        config: the training's settings (:class:`TrainConfig`).
        seed: seeds torch's global generator, the shuffling, the consistency noise and the
            head start (k-means, Gaussian mixture).
        device: where to train; default the model's device. A device that cannot hold data
            (``"meta"``, or CUDA on a machine without it) is refused before the model is touched.
        progress: show a tqdm bar (notebook-aware).
        callback: called as ``callback(epoch, model)`` after every epoch, model in eval mode.
        **overrides: fields of :class:`TrainConfig` (``epochs=``, ``lr=``, ...); an unknown
            name is a ``TypeError`` that names it, a bad value a ``ValueError``.

    Raises:
        FloatingPointError: the loss became NaN or infinite; the message names the phase
            (init, pretrain, main), epoch and step. The model is left in eval mode with the
            parameters and batch-norm statistics of the last finite step.
    """
    if not isinstance(model, VMoNF):
        raise TypeError(f"model must be a VMoNF, got {type(model).__name__}")
    seeds = None if seed is None else [_check_seed(seed, "seed")]
    run = _RunOptions.checked(device, progress, callback)
    config = _train_config(config, overrides)
    if seed is not None:
        torch.manual_seed(seed)
    return _fit_runs([model], x, labels, seeds, config, run, max_parallel=1)[0]


def fit_many(
    models: Sequence[VMoNF],
    x: Any,
    labels: Any = None,
    config: Optional[TrainConfig] = None,
    *,
    seeds: Optional[Sequence[int]] = None,
    max_parallel: Optional[int] = None,
    device: Union[None, str, torch.device] = None,
    progress: bool = True,
    callback: Optional[Callable[[int, VMoNF], None]] = None,
    **overrides: Any,
) -> List[History]:
    """Train R models of one architecture on ``x`` together; returns their R histories in order.

    Every model ends trained, in eval mode, exactly as :func:`fit` with ``seed=seeds[r]``
    would leave it (up to the rounding of batched products), but the R runs share each step:
    their components are stacked R*K along the flows' leading axis and their encoders into one
    stacked network, so R runs cost a few times one (``bench/speed.py``; chapter 6).  Each run
    keeps its own seed, shuffling, initial assignment, labels and gradient clipping.
    Parameters the models froze (``requires_grad=False``) stay as they were, as in :func:`fit`,
    and what a callback changes in a model is what its training goes on from.

    A run whose loss becomes NaN or infinite is frozen at its last finite step (parameters and
    batch-norm statistics) while the other runs train to the end; its ``History.diverged``
    says where (phase, epoch, step), and its lists end at its last complete epoch.

    Args:
        models: R :class:`VMoNF` of one configuration, dtype and device, each as that
            configuration builds it (no swapped layers), none sharing a module with another,
            all freezing the same parameters.
        x: data, ``(N, D)``, shared by all runs; or a list of R data sets (tensors or arrays),
            one per run (chapter 7 appends each seed's own labeled points).
        labels: ``None``, one ``(N,)`` tensor for all runs, or a list of R such tensors (runs
            may label different points, and different numbers of points; ``None`` for a run
            without labels). Runs with as many points and as many labeled points (and all or
            none with an initial assignment) share a pass; other runs are trained in turn.
        config: the training's settings (:class:`TrainConfig`), as in :func:`fit`; its
            ``init`` may also be a list of R entries (``None``, a method name or assignments).
        seeds: R integers (default: drawn from torch's global generator). Unlike :func:`fit`,
            torch's global generator is not re-seeded.
        max_parallel: at most this many runs share a pass (default: as many as half the free
            memory of the device holds, by an estimate of a run's parameters, optimizer state and
            activations); more runs are trained in turn.
        device: as in :func:`fit`.
        progress: as in :func:`fit`.
        callback: ``callback(epoch, model)`` is called for every model after every epoch.
            ``History.seconds`` holds the wall time of an epoch of all runs that shared a pass.
        **overrides: fields of :class:`TrainConfig`, as in :func:`fit`.

    Raises:
        ValueError: before any model is moved or trained, for models that differ or share a
            module, or a per-run list without one entry per model; the message names the
            argument and the run (``models[1].encoder.0``, ``labels[1]``).

    Example:
        >>> import vmonf_mini as vm
        >>> x, _ = vm.data.pinwheel(n_per_class=64, seed=0)
        >>> models = [vm.VMoNF(2, 5, blocks=2, encoder_hidden=(8,)) for _ in range(3)]
        >>> histories = vm.fit_many(
        ...     models, x, seeds=[0, 1, 2], epochs=2, batch_size=64, progress=False
        ... )
        >>> [len(h.loss) for h in histories]
        [2, 2, 2]
    """
    models = list(models) if isinstance(models, (list, tuple)) else models
    if (
        not isinstance(models, list)
        or not models
        or not all(isinstance(m, VMoNF) for m in models)
    ):
        raise TypeError("models must be a non-empty list of VMoNF")
    if len({id(m) for m in models}) != len(models):
        raise ValueError(
            "models holds the same VMoNF more than once; give every run its own model"
        )
    shared = first_shared(models)
    if shared:
        raise ValueError(
            f"fit_many needs models that share no module or tensor: {shared}; give every "
            "run its own copy (copy.deepcopy)"
        )
    if "seed" in overrides:
        raise TypeError("fit_many takes seeds=[...] (one per model), not seed=")
    run = _RunOptions.checked(device, progress, callback)
    config = _train_config(config, overrides)
    if seeds is not None:
        if (
            isinstance(seeds, (str, bytes))
            or not hasattr(seeds, "__len__")
            or len(seeds) != len(models)
        ):
            raise ValueError(
                f"seeds must hold one integer per model ({len(models)}), got {seeds!r}"
            )
        seeds = [_check_seed(s, f"seeds[{i}]") for i, s in enumerate(seeds)]
    if max_parallel is not None:
        max_parallel = check_positive_int(max_parallel, "max_parallel")
    return _fit_runs(models, x, labels, seeds, config, run, max_parallel, per_run=True)


@dataclass(frozen=True)
class _RunOptions:
    """How a training runs, apart from its settings: device, progress bar, callback."""

    device: Optional[torch.device]
    progress: bool
    callback: Optional[Callable[[int, VMoNF], None]]

    @staticmethod
    def checked(device: Any, progress: Any, callback: Any) -> "_RunOptions":
        if not isinstance(progress, (bool, np.bool_)):
            raise TypeError(f"progress must be True or False, got {progress!r}")
        if callback is not None and not callable(callback):
            raise TypeError(f"callback must be callable, got {type(callback).__name__}")
        return _RunOptions(_device(device), bool(progress), callback)


def _device(device: Any) -> Optional[torch.device]:
    """``None``, or a device that can hold data: checked before any model is moved."""
    if device is None:
        return None
    try:
        chosen = torch.device(device)
    except (TypeError, RuntimeError, ValueError) as err:
        raise ValueError(f"device {device!r} is not a torch device: {err}") from None
    if chosen.type == "meta":
        raise ValueError(
            "cannot train on the 'meta' device: it holds shapes, not data (use 'cpu' or 'cuda')"
        )
    try:
        torch.empty(1, device=chosen)
    except (RuntimeError, AssertionError) as err:
        raise ValueError(f"cannot train on device {str(chosen)!r}: {err}") from None
    return chosen


def _check_seed(seed: Any, name: str) -> int:
    if (
        isinstance(seed, bool)
        or not isinstance(seed, (int, np.integer))
        or not 0 <= seed < 2**32
    ):
        raise ValueError(f"{name} must be an integer in [0, 2**32), got {seed!r}")
    return int(seed)


def _per_run(value: Any, runs: int, name: str) -> Tuple[List[Any], List[str]]:
    """``value`` for every run and the name its errors give it.

    A list or tuple of per-run entries (for ``x`` 2-D tensors or arrays; otherwise ``None``,
    strings, lists and arrays) must hold one per run: ``labels[1]`` names run 1's.  Anything
    else is one value for all runs (a list of numbers, or of a data set's rows, is one array)."""
    if name == "x":
        entry = lambda v: isinstance(v, (Tensor, np.ndarray)) and v.ndim >= 2  # noqa: E731
    else:
        entry = lambda v: (  # noqa: E731
            v is None
            or isinstance(v, (str, list, tuple))
            or (isinstance(v, (Tensor, np.ndarray)) and v.ndim > 0)
        )
    if isinstance(value, (list, tuple)) and any(entry(v) for v in value):
        if len(value) != runs:
            raise ValueError(
                f"{name} is a per-run list of length {len(value)} but there are {runs} "
                "models: give one entry per model, or one value for all"
            )
        return list(value), [f"{name}[{i}]" for i in range(runs)]
    return [value] * runs, [name] * runs


def _fit_runs(
    models: List[VMoNF],
    x: Any,
    labels: Any,
    seeds: Optional[List[int]],
    config: TrainConfig,
    options: _RunOptions,
    max_parallel: Optional[int],
    per_run: bool = False,
    checked: bool = False,
) -> List[History]:
    """Validate everything, then move the models and train them in passes of runs alike.

    ``per_run``: ``x``, ``labels`` and ``init`` may be lists of one entry per model (fit_many).
    ``checked``: the caller (the estimator, a public entry) has already checked ``x`` and
    ``labels``: ``x`` is a tensor in the models' dtype, ``labels`` ``None`` or a tensor of
    ``-1`` and ``0..K-1`` whose counts pass :func:`_check_counts`, ``init`` ``None``, a method
    name or checked assignments.
    """
    problem = first_difference(models, compare_device=options.device is None)
    if problem:
        raise ValueError(f"fit_many needs models of one architecture: {problem}")
    ref = models[0].prior_logits
    r, k = len(models), models[0].k
    one = lambda v, runs, name: ([v] * runs, [name] * runs)  # noqa: E731
    split = _per_run if per_run else one
    (datasets, x_names), (labels, label_names), (inits, init_names) = (
        split(x, r, "x"),
        split(labels, r, "labels"),
        split(config.init, r, "init"),
    )
    shared = datasets[0] is x
    points = [
        d.detach()
        if checked
        else as_data(d, models[0].dim, name, dtype=ref.dtype).detach()
        for d, name in zip(datasets[:1] if shared else datasets, x_names)
    ]  # .detach(): a graph on x is not trained
    points = points * r if shared else points
    if not checked:
        labels = [
            None if y is None else as_labels(y, data.shape[0], k, name).cpu()
            for y, data, name in zip(labels, points, label_names)
        ]
        inits = [
            _checked_init(init, data.shape[0], k, name)
            for init, data, name in zip(inits, points, init_names)
        ]
        for i, (y, data, name) in enumerate(zip(labels, points, label_names)):
            _check_counts(i, y, data.shape[0], name, config)
    if seeds is None:
        seeds = [int(torch.randint(0, 2**31 - 1, ()).item()) for _ in models]
    runs = [
        _new_run(i, seeds[i], labels[i], inits[i], data, k, config)
        for i, data in enumerate(points)
    ]
    device = options.device or ref.device
    for model in models:
        model.to(device)
    # runs alike: as many points, as many of them labeled, all or none with an init phase
    groups: Dict[Tuple[int, int, bool], List[int]] = {}
    for i, run in enumerate(runs):
        alike = (run.x.shape[0], run.labeled.numel(), run.init is not None)
        groups.setdefault(alike, []).append(i)
    width = max_parallel or _runs_that_fit(models[0], config, device)
    if models[0].config[
        "custom_components"
    ]:  # flows of unknown structure cannot be stacked
        width = 1
    for members in groups.values():
        for start in range(0, len(members), width):
            chosen = members[start : start + width]
            _Loop(
                [models[i] for i in chosen],
                [runs[i] for i in chosen],
                device,
                config,
                options,
                freeze_diverged=per_run,
            ).train()
    return [run.history for run in runs]


def _checked_init(init: Any, n: int, k: int, name: str) -> Any:
    """``None`` (no head start), a method of :data:`INIT_METHODS`, or checked assignments (CPU)."""
    if init is None or (isinstance(init, str) and init == "random"):
        return None
    if isinstance(init, str):
        if init not in INIT_METHODS:
            raise ValueError(
                f"{name} must be None, 'kmeans', 'gmm', 'random' or (N,) assignments, got {init!r}"
            )
        return init
    return as_labels(init, n, k, name, allow_unlabeled=False).cpu()


def _check_counts(
    index: int, y: Optional[Tensor], n: int, label_name: str, config: TrainConfig
) -> None:
    """What run ``index``'s labels ``y`` (``None``: none; ``label_name`` in the errors) of ``n``
    points must hold for its batches: two points of each kind that it has (batch norm needs
    two), and labels where ``pretrain_epochs`` or ``label_graph`` needs them. Checked at the
    entry of :func:`fit` and :func:`fit_many`; the estimator checks its ``y`` at its own entry
    with the same :func:`~vmonf_mini.checks.check_label_counts`."""
    labeled = 0 if y is None else int((y >= 0).sum())
    unlabeled = n - labeled
    where = f" (run {index})" if index else ""
    if n < 2:
        raise ValueError(
            f"x needs at least two points to train on (batch norm needs two){where}"
        )
    check_label_counts(labeled, unlabeled, label_name, where)
    if config.pretrain_epochs and labeled < 2:
        raise ValueError(
            f"pretrain_epochs needs at least two labeled points (labels >= 0){where}"
        )
    if config.label_graph is not None and labeled == 0:
        raise ValueError(
            f"label_graph propagates labels, but {label_name} mark no point: "
            "label a few points per class (labels >= 0), or set label_graph=None"
        )


def _new_run(
    index: int,
    seed: int,
    y: Optional[Tensor],
    init: Any,
    x: Tensor,
    k: int,
    config: TrainConfig,
) -> _RunData:
    """Run ``index`` from checked inputs (:func:`_check_counts` included): labels ``y``
    (``None``: none), ``init`` (``None``, a method name or assignments) and data ``x``."""
    n = x.shape[0]
    y = torch.full((n,), -1, dtype=torch.long) if y is None else y.cpu()
    labeled = (y >= 0).nonzero(as_tuple=True)[0]
    unlabeled = (y < 0).nonzero(as_tuple=True)[0]
    soft = None
    if config.label_graph is not None:
        from .graph import propagate

        probs = propagate(
            x.detach().cpu().double().numpy(), y.numpy(), k, config.label_graph
        )
        propagated = torch.as_tensor(probs).argmax(1)
        soft = torch.nn.functional.one_hot(propagated, k).to(x.dtype)
        if init is None:
            init = propagated
    return _RunData(
        index=index,
        seed=seed,
        generator=torch.Generator().manual_seed(seed),
        x=x,
        labeled=labeled,
        targets=y[labeled],
        unlabeled=unlabeled,
        init=head_start(init, x, k, seed),
        soft=soft,
    )


def _runs_that_fit(model: VMoNF, config: TrainConfig, device: torch.device) -> int:
    """How many runs of ``model`` half of the device's free memory holds, by a rough estimate.

    A run needs its parameters four times (the stack's copy, gradients, Adam's two moments) and
    the activations of up to three batches (unlabeled, perturbed, labeled), about four values
    per output of every layer.
    """
    params = sum(p.numel() for p in model.parameters())
    outputs = sum(
        m.k * m.out_features if isinstance(m, StackedLinear) else m.out_features
        for m in model.modules()
        if isinstance(m, (StackedLinear, nn.Linear))
    )
    per_run = model.prior_logits.element_size() * (
        4 * params + 3 * 4 * config.batch_size * outputs
    )
    if device.type == "cuda":
        free = torch.cuda.mem_get_info(device)[0]
    else:
        try:
            free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return 64
    return max(1, int(0.5 * free // max(per_run, 1)))


class _AllFrozen(Exception):
    """Every run of a pass has diverged: nothing is left to train."""


class _Loop:
    """The one training loop: every phase, for one run or many (a :class:`SingleRun` or :class:`RunStack`).

    ``freeze_diverged`` (fit_many): a run whose loss becomes non-finite is frozen at its last
    finite step and the others go on; otherwise (fit) a ``FloatingPointError`` ends training.
    """

    def __init__(
        self,
        models: List[VMoNF],
        runs: List[_RunData],
        device: torch.device,
        config: TrainConfig,
        options: _RunOptions,
        freeze_diverged: bool = False,
    ) -> None:
        self.models, self.runs = models, runs
        self.config, self.options = config, options
        self.freeze_diverged = freeze_diverged
        #: run index -> its parameters and statistics at its last finite step
        self.frozen: Dict[int, List[Tensor]] = {}
        first = runs[0].x
        if all(run.x is first for run in runs):  # one data set for all: a view, no copy
            self.x = first.to(device).expand(len(runs), *first.shape)
        else:
            self.x = torch.stack([run.x for run in runs]).to(device)
        self.rows = torch.arange(len(runs), device=device).unsqueeze(
            1
        )  # x[rows, idx]: run r's points idx[r]
        # the models were compared once, in _fit_runs
        self.stack = (
            SingleRun(models[0]) if len(models) == 1 else RunStack(models, checked=True)
        )
        self.with_init = runs[0].init is not None
        self.soft = (  # label_graph: (R, N, K) propagated labels
            None
            if runs[0].soft is None
            else torch.stack([run.soft for run in runs]).to(self.x)
        )
        self.optimizer = self._adam(
            config.init_lr
            if self.with_init and config.init_lr is not None
            else config.lr
        )
        self.steps = 0
        self.label = "" if len(runs) == 1 else f" ({len(runs)} runs)"

    def _adam(self, lr: float) -> torch.optim.Optimizer:
        return _adam(list(self.stack.parameters()), lr, self.config.weight_decay)

    def train(self) -> None:
        config, stack = self.config, self.stack
        stack.train()
        try:
            if self.with_init:
                every = torch.arange(self.x.shape[1])
                for epoch in self._epochs("init", config.init_epochs):
                    self._supervised_epoch(
                        "init",
                        epoch,
                        [every] * len(self.runs),
                        [r.init for r in self.runs],
                    )
                self._record_agreement()
                if (
                    config.init_lr is not None
                ):  # the later phases train at lr, with Adam's moments started afresh
                    self.optimizer = self._adam(config.lr)
            for epoch in self._epochs("pretrain", config.pretrain_epochs):
                means = self._supervised_epoch(
                    "pretrain",
                    epoch,
                    [r.labeled for r in self.runs],
                    [r.targets for r in self.runs],
                )
                for r, (run, mean) in enumerate(zip(self.runs, means)):
                    if r not in self.frozen:
                        run.history.pretrain_loss.append(mean)
            bar = self._epochs("main", config.epochs)
            for epoch in bar:
                start = time.perf_counter()
                if self.runs[0].unlabeled.numel():
                    means = self._unlabeled_epoch(epoch)
                else:
                    means = self._supervised_epoch(
                        "main",
                        epoch,
                        [r.labeled for r in self.runs],
                        [r.targets for r in self.runs],
                    )
                seconds, temperature = time.perf_counter() - start, self._temperature()
                active = [r for r in range(len(self.runs)) if r not in self.frozen]
                for r in active:
                    history = self.runs[r].history
                    history.loss.append(means[r])
                    history.temperature.append(temperature)
                    history.seconds.append(seconds)
                    history.steps = self.steps
                if self.options.progress:
                    mean = sum(means[r] for r in active) / len(active)
                    bar.set_postfix(loss=f"{mean:.3f}", T=f"{temperature:.3f}")
                if self.options.callback is not None:
                    self._call_back(epoch)
                if config.tol is not None and self._stop_settled_runs(active):
                    break
        except _AllFrozen:
            pass
        finally:
            stack.write_back()
            for model in self.models:
                model.eval()

    def _stop_settled_runs(self, active: List[int]) -> bool:
        """Freeze the runs whose loss has settled (``tol``); True when no run is left to train."""
        window = max(1, self.config.epochs // 10)
        for r in active:
            history = self.runs[r].history
            if _settled(history.loss, window, self.config.tol):
                history.converged = True
                self.frozen[r] = self.stack.run_state(r)
        return len(self.frozen) == len(self.runs)

    def _epochs(self, phase: str, count: int) -> Any:
        return trange(
            1,
            count + 1,
            desc=phase + self.label,
            disable=not self.options.progress or not count,
        )

    def _temperature(self) -> float:
        """The temperature of the current step: what divides the logits and what History records."""
        return self.config.temperature_at(max(self.steps, 1))

    def _batches(self, index_sets: List[Tensor]) -> List[Tensor]:
        """One epoch's batches, ``(R, B)`` indices into x: each run shuffles its own set."""
        order = torch.stack(
            [
                idx[torch.randperm(idx.numel(), generator=r.generator)]
                for idx, r in zip(index_sets, self.runs)
            ]
        )
        parts = list(order.to(self.x.device).split(self.config.batch_size, dim=1))
        if (
            len(parts) > 1 and parts[-1].shape[1] < 2
        ):  # batch norm cannot use a batch of one
            parts.pop()
        return parts

    def _supervised_epoch(
        self, phase: str, epoch: int, index_sets: List[Tensor], targets: List[Tensor]
    ) -> List[float]:
        """An epoch of the labeled loss: the init, pretrain and labeled-only main phases."""
        by_point = torch.full((self.x.shape[1],), -1, dtype=torch.long)
        lookup = []
        for idx, t in zip(index_sets, targets):
            table = by_point.clone()
            table[idx] = t
            lookup.append(table)
        lookup_all = torch.stack(lookup).to(
            self.x.device
        )  # (R, N): each run's target of every point
        totals = [0.0] * len(self.runs)
        batches = self._batches(index_sets)
        for i, idx in enumerate(batches, 1):
            if phase == "main":
                self.steps += 1
            loss = lambda idx=idx: self._labeled(idx, lookup_all.gather(1, idx)).mean(1)  # noqa: E731
            for r, value in enumerate(self._step(loss, phase, epoch, i)):
                totals[r] += value
        return [t / len(batches) for t in totals]

    def _unlabeled_epoch(self, epoch: int) -> List[float]:
        totals = [0.0] * len(self.runs)
        if self.soft is None:
            batches = self._batches([r.unlabeled for r in self.runs])
        else:  # label_graph: every point, a labeled one's target its label (one-hot)
            batches = self._batches([torch.arange(self.x.shape[1])] * len(self.runs))
        for i, idx in enumerate(batches, 1):
            self.steps += 1
            temperature = self._temperature()
            for r, value in enumerate(
                self._step(
                    lambda idx=idx, t=temperature: self._main_loss(idx, t),
                    "main",
                    epoch,
                    i,
                )
            ):
                totals[r] += value
        return [t / len(batches) for t in totals]

    def _main_loss(self, idx: Tensor, temperature: float) -> Tensor:
        """Per run: the unlabeled loss, the consistency term, and a batch of labeled points."""
        config, x = self.config, self.x[self.rows, idx]
        logits = None if config.objective == "exact" else self.stack.logits(x)
        log_q = None if logits is None else tempered_log_q(logits, temperature)
        loss = unlabeled_loss(self.stack.joint(x), log_q, config.objective).mean(1)
        if self.soft is not None and config.label_graph_weight:  # q(c|x) kept near them
            ce = soft_target_loss(logits, self.soft[self.rows, idx])
            loss = loss + config.label_graph_weight * ce.mean(1)
        if config.consistency:
            with torch.no_grad():
                target = tempered_log_q(self.stack.logits(x), temperature)
            noise = torch.stack(
                [
                    torch.randn(x.shape[1:], generator=r.generator, dtype=x.dtype)
                    for r in self.runs
                ]
            )
            perturbed = tempered_log_q(
                self.stack.logits(x + config.consistency_noise * noise.to(x.device)),
                temperature,
            )
            loss = loss + config.consistency * consistency_kl(target, perturbed).mean(1)
        if self.runs[0].labeled.numel() >= 2 and self.soft is None:
            draws = [
                torch.randperm(r.labeled.numel(), generator=r.generator)[
                    : config.batch_size
                ]
                for r in self.runs
            ]
            picks = torch.stack([r.labeled[d] for r, d in zip(self.runs, draws)]).to(
                x.device
            )
            targets = torch.stack([r.targets[d] for r, d in zip(self.runs, draws)]).to(
                x.device
            )
            loss = loss + self._labeled(picks, targets).mean(1)
        return loss

    def _labeled(self, idx: Tensor, targets: Tensor) -> Tensor:
        x = self.x[self.rows, idx]
        logits = None if self.config.objective == "exact" else self.stack.logits(x)
        return labeled_loss(self.stack.joint(x), logits, targets, self.config.objective)

    def _step(
        self, loss_of_runs: Callable[[], Tensor], phase: str, epoch: int, index: int
    ) -> List[float]:
        """One optimizer step on every run not frozen; a non-finite loss undoes the step's
        batch-norm updates and raises (fit) or freezes the run (fit_many)."""
        saved = self.stack.snapshot()
        try:
            losses = loss_of_runs()
            values = losses.detach().tolist()
            for r, (run, value) in enumerate(zip(self.runs, values)):
                if not math.isfinite(value) and r not in self.frozen:
                    where = f"{phase} phase, epoch {epoch}, step {index}"
                    if not self.freeze_diverged:
                        raise FloatingPointError(
                            f"non-finite loss ({value}) in run {run.index} (seed {run.seed}), "
                            f"{where}: {_ADVICE}"
                        )
                    self._freeze(r, saved, f"non-finite loss ({value}) in the {where}")
            if self.frozen:  # their losses play no part in the step
                active = [r not in self.frozen for r in range(len(self.runs))]
                keep = torch.tensor(active, device=losses.device)
                losses = torch.where(keep, losses, torch.zeros_like(losses))
            self.optimizer.zero_grad(set_to_none=True)
            losses.sum().backward()
            if self.config.clip_grad_norm is not None:
                self._clip(self.config.clip_grad_norm)
            self.optimizer.step()
            for r, state in self.frozen.items():  # frozen runs stay as they were
                self.stack.set_run_state(r, state)
        except BaseException:
            self.stack.restore(saved)
            raise
        return values

    def _freeze(self, r: int, saved: List[Tensor], message: str) -> None:
        """Freeze run ``r`` at its state before this step; the others keep this step's statistics."""
        self.runs[r].history.diverged = message
        after = [t.clone() for t in self.stack.statistics()]
        self.stack.restore(saved)
        self.frozen[r] = self.stack.run_state(r)
        if len(self.frozen) == len(self.runs):
            raise _AllFrozen
        self.stack.restore(after)

    @torch.no_grad()
    def _clip(self, max_norm: float) -> None:
        """Each run's gradients scaled to a norm of at most ``max_norm`` (as clip_grad_norm_ does per model)."""
        grads = self.stack.run_views(
            [p.grad for p in self.stack.parameters() if p.grad is not None]
        )
        norms = torch.stack([g.pow(2).sum(1) for g in grads]).sum(0).sqrt()
        scale = (max_norm / (norms + 1e-6)).clamp(max=1.0).unsqueeze(1)
        for g in grads:
            g.mul_(scale)

    def _record_agreement(self) -> None:
        self.stack.write_back()
        for model, run, x in zip(self.models, self.runs, self.x):
            assign = run.init.to(x.device)
            run.history.init_agreement = _agreement(
                model, x, assign, exact=self.config.objective == "exact"
            )
        self.stack.train()

    def _call_back(self, epoch: int) -> None:
        """The callback sees every model as trained so far; what it changes, training keeps."""
        self.stack.write_back()
        for model in self.models:
            model.eval()
            with torch.no_grad():
                self.options.callback(epoch, model)
        self.stack.read_in()
        self.stack.train()


def _settled(loss: Sequence[float], window: int, tol: float) -> bool:
    """Whether the mean of the last ``window`` losses is within ``tol`` of the ``window`` before.

    >>> _settled([3.0, 2.0, 1.5, 1.49], 1, 0.05), _settled([3.0, 2.0, 1.5, 1.49], 2, 0.05)
    (True, False)
    """
    if len(loss) < 2 * window:
        return False
    last, before = np.mean(loss[-window:]), np.mean(loss[-2 * window : -window])
    return bool(abs(last - before) <= tol)


def _adam(params: List[Tensor], lr: float, weight_decay: float) -> torch.optim.Adam:
    """Adam, fused into one kernel where this torch supports it (CPU since torch 2.4): the
    per-parameter update loop otherwise costs as much as a small flow's forward pass."""
    try:
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)


@torch.no_grad()
def _agreement(
    model: VMoNF, x: Tensor, assign: Tensor, exact: bool, chunk: int = 4096
) -> float:
    """Fraction of ``x`` that ``model.predict`` (eval mode, in chunks) puts where ``assign`` does."""
    model.eval()
    pairs = zip(x.split(chunk), assign.split(chunk))
    hits = sum(int((model.predict(part, exact=exact) == a).sum()) for part, a in pairs)
    return hits / x.shape[0]


def head_start(init: Any, x: Tensor, k: int, seed: Optional[int]) -> Optional[Tensor]:
    """The initial assignment ``(N,)`` (CPU) of ``x``'s points to ``k`` components that a run
    first learns, or ``None`` for no head start: the one place that computes ``init``
    (:class:`TrainConfig`; the estimator and :func:`~vmonf_mini.recipes.cluster_images` call it).

    ``init``: ``None`` or ``"random"`` (none), ``"kmeans"`` (scikit-learn's k-means, 10
    starts, chapter 6), ``"gmm"`` (:func:`gaussian_mixture`'s clusters, chapter 8), or
    assignments (returned as they are: the caller checked them). ``seed`` seeds the method.

    >>> import torch
    >>> x = torch.cat([torch.zeros(5, 2), torch.ones(5, 2)]) + 0.01 * torch.randn(10, 2)
    >>> head_start("kmeans", x, 2, seed=0).bincount().tolist()
    [5, 5]
    """
    if init is None or (isinstance(init, str) and init == "random"):
        return None
    if not isinstance(init, str):
        return torch.as_tensor(init, dtype=torch.long).cpu()
    points = x.detach().cpu().double().numpy()
    if init == "gmm":
        assign = gaussian_mixture(points, k, seed).predict(points)
    else:
        from sklearn.cluster import KMeans

        assign = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(points)
    return torch.as_tensor(assign, dtype=torch.long)


def gaussian_mixture(
    points: np.ndarray,
    k: int,
    seed: Optional[int],
    n_init: int = 10,
    reg_covar: float = 1e-4,
) -> Any:
    """scikit-learn's full-covariance ``GaussianMixture`` of ``k`` components fitted to
    ``points``, the best of ``n_init`` starts by likelihood: the ``"gmm"`` head start.

    >>> import numpy as np
    >>> gaussian_mixture(np.random.default_rng(0).normal(size=(50, 2)), 2, seed=0).n_init
    10
    """
    from sklearn.mixture import GaussianMixture

    gmm = GaussianMixture(
        n_components=k,
        covariance_type="full",
        n_init=n_init,
        reg_covar=reg_covar,
        random_state=seed,
    )
    return gmm.fit(points)


def _schedule(temperature: Schedule) -> Callable[[int], float]:
    if temperature is None:
        return lambda step: 1.0
    if isinstance(temperature, (bool, np.bool_)):
        raise TypeError(
            f"temperature must be a number, None or a schedule step -> T, got {temperature!r}"
        )
    if callable(temperature):
        return lambda step: check_temperature(temperature(step), "temperature(step)")
    value = check_temperature(temperature)
    return lambda step: value


def fit_density(
    model: Union[nn.Module, Callable[[Tensor], Tensor]],
    data: Tensor,
    *,
    steps: int,
    batch_size: int = 512,
    lr: float = 5e-3,
    seed: int = 0,
    parameters: Optional[Sequence[Tensor]] = None,
) -> Tuple[List[float], float]:
    """Minibatch maximum likelihood with Adam for a single density: ``(losses, ms per step)``
    (chapter 2; chapter 3 reuses it for the autoregressive flows).

    ``model`` is a module with ``log_prob`` (trained in train mode, left in eval mode) or a
    function ``log_prob(x)`` together with its ``parameters``. Minibatches are drawn with
    replacement from a generator seeded by ``seed``, so two models given the same seed see the
    same batches.

    >>> import torch
    >>> shift = torch.zeros(2, requires_grad=True)
    >>> log_prob = lambda x: -0.5 * ((x - shift) ** 2).sum(1)
    >>> losses, _ = fit_density(
    ...     log_prob, torch.ones(64, 2), steps=200, lr=0.05, parameters=[shift]
    ... )
    >>> round(losses[-1], 3), [round(v, 2) for v in shift.tolist()]
    (0.0, [1.0, 1.0])
    """
    steps = check_positive_int(steps, "steps")
    batch_size = check_positive_int(batch_size, "batch_size")
    data = as_data(data)
    module = model if isinstance(model, nn.Module) else None
    if module is not None:
        log_prob = module.log_prob
        parameters = (
            list(module.parameters()) if parameters is None else list(parameters)
        )
    elif callable(model):
        log_prob = model
        if parameters is None:
            raise ValueError(
                "fit_density needs the parameters to train when the model is a function"
            )
        parameters = list(parameters)
    else:
        raise TypeError(
            f"model must be a module with log_prob or a function, got {type(model).__name__}"
        )
    optimizer = torch.optim.Adam(parameters, lr=check_number(lr, "lr", positive=True))
    batches = torch.Generator().manual_seed(int(seed))
    if module is not None:
        module.train()
    losses: List[float] = []
    start = time.perf_counter()
    try:
        for _ in range(steps):
            idx = torch.randint(len(data), (batch_size,), generator=batches).to(
                data.device
            )
            loss = -log_prob(data[idx]).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    finally:
        if module is not None:
            module.eval()
    return losses, 1e3 * (time.perf_counter() - start) / steps
