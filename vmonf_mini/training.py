"""Training a VMoNF: unsupervised by the ELBO, semi-supervised with labels (chapters 4-7).

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
import time
from dataclasses import dataclass, field
from typing import Any, Callable, List, Optional, Union

import torch
from torch import Tensor
from tqdm.auto import trange

from .checks import as_data, as_labels, check_number, check_positive_int, check_temperature
from .mixture import VMoNF

__all__ = ["ExponentialDecay", "History", "fit"]


@dataclass(frozen=True)
class ExponentialDecay:
    """Temperature schedule ``T(t) = max(floor, start * exp(-rate * t))``, ``t`` = global step from 1.

    The paper uses ``rate=1e-3`` with no floor (chapter 5); the floor keeps ``logits / T``
    from overflowing late in long runs.

    >>> ExponentialDecay(rate=1e-3, floor=0.05)(1000)
    0.36787944117144233
    """

    rate: float = 1e-3
    start: float = 1.0
    floor: float = 1e-2

    def __post_init__(self) -> None:
        check_number(self.rate, "rate", positive=False)
        check_temperature(self.start, "start")
        check_temperature(self.floor, "floor")

    def __call__(self, step: int) -> float:
        return max(self.floor, self.start * math.exp(-self.rate * step))


@dataclass
class History:
    """Per-epoch record of a :func:`fit` run (chapter 4).

    ``loss``, ``temperature`` and ``seconds`` have one entry per epoch of the main phase, and
    ``steps`` counts its optimiser steps; ``pretrain_loss`` has one entry per pretraining epoch.
    ``init_agreement`` is the fraction of points whose prediction (eval mode) matches the
    initial assignment at the end of the ``init`` phase (``None`` without one): well below 1,
    the encoder has not learned the initialisation yet (raise ``init_epochs`` or ``init_lr``).
    """

    loss: List[float] = field(default_factory=list)
    temperature: List[float] = field(default_factory=list)
    seconds: List[float] = field(default_factory=list)
    pretrain_loss: List[float] = field(default_factory=list)
    steps: int = 0
    init_agreement: Optional[float] = None


Schedule = Union[None, float, Callable[[int], float]]


def _batches(n: int, batch_size: int, generator: torch.Generator, device: torch.device) -> List[Tensor]:
    """A shuffled split of ``range(n)``; a trailing batch of one (which batch norm cannot use) is dropped."""
    parts = list(torch.randperm(n, generator=generator).to(device).split(batch_size))
    if len(parts) > 1 and parts[-1].numel() < 2:
        parts.pop()
    return parts


def _labeled_loss(model: VMoNF, x: Tensor, y: Tensor, objective: str) -> Tensor:
    """Per point: -log p(x, y), plus the cross-entropy of q(y|x) (minimised: the original code maximised it)."""
    joint = model._joint(x)
    nll = -joint.gather(1, y[:, None])[:, 0]
    if objective == "exact":
        return nll
    ce = torch.nn.functional.cross_entropy(model.encoder(x), y, reduction="none")
    return nll + ce


def _unlabeled_loss(model: VMoNF, x: Tensor, temperature: float, objective: str) -> Tensor:
    if objective == "exact":
        return -torch.logsumexp(model._joint(x), dim=1)
    return -model.elbo(x, temperature)


def _consistency(model: VMoNF, x: Tensor, temperature: float, noise: float) -> Tensor:
    """KL(q(c|x) || q(c|x + eps)), the target q(c|x) held fixed: a perturbed point keeps its cluster."""
    with torch.no_grad():
        target = model.log_posterior(x, temperature)
    perturbed = model.log_posterior(x + noise * torch.randn_like(x), temperature)
    return (target.exp() * (target - perturbed)).sum(dim=1)


def fit(
    model: VMoNF,
    x: Any,
    labels: Any = None,
    *,
    epochs: int,
    batch_size: int = 128,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    temperature: Schedule = ExponentialDecay(),
    pretrain_epochs: int = 0,
    seed: Optional[int] = None,
    device: Union[None, str, torch.device] = None,
    progress: bool = True,
    clip_grad_norm: Optional[float] = None,
    objective: str = "elbo",
    consistency: float = 0.0,
    consistency_noise: float = 0.05,
    callback: Optional[Callable[[int, VMoNF], None]] = None,
    init: Any = None,
    init_epochs: int = 20,
    init_lr: Optional[float] = None,
) -> History:
    """Train ``model`` on ``x`` with Adam; returns a :class:`History`. The model ends in eval mode.

    Args:
        model: the mixture to train (moved to ``device`` if given).
        x: data, ``(N, D)``.
        labels: optional ``(N,)`` integers, ``-1`` for unlabeled points. Labeled points train
            their own component's likelihood ``log p(x|y) + log p(y)`` and q(c|x) by
            cross-entropy; each step sees a batch of unlabeled and a batch of labeled points.
        epochs: passes over the unlabeled points.
        batch_size: points per step (the last, smaller batch of an epoch is kept unless it has one point).
        lr: Adam's learning rate.
        weight_decay: Adam's weight decay (an L2 penalty).
        temperature: a number, ``None`` (1.0) or a schedule ``step -> T`` (default: the
            paper's ``exp(-1e-3 t)``, floored at 0.01). It divides the posterior's logits.
        pretrain_epochs: epochs on the labeled points alone before the main phase.
        seed: seeds torch's global generator and the shuffling.
        device: where to train; default the model's device.
        progress: show a tqdm bar (notebook-aware).
        clip_grad_norm: clip the gradients' global norm to this value.
        objective: ``"elbo"`` (the paper) or ``"exact"``: maximum likelihood of the exact
            ``log p(x)``, no encoder involved (chapter 9); predict with ``exact=True`` then.
        consistency: weight of a consistency term ``KL(q(c|x) || q(c|x+noise))`` on the
            unlabeled points (chapter 9).
        consistency_noise: standard deviation of that noise, in the units of ``x``.
        callback: called as ``callback(epoch, model)`` after every epoch, model in eval mode.
        init: ``None`` (random, the paper), ``"kmeans"`` (scikit-learn's k-means on ``x``, as
            scikit-learn's GaussianMixture initialises), or ``(N,)`` initial assignments in
            ``0..K-1``. Before the main phase, ``init_epochs`` epochs train each component on
            its assigned points and q(c|x) to predict the assignment (the labeled loss);
            ``History.init_agreement`` then says how well q(c|x) reproduces it.
        init_epochs: epochs of that initialisation phase.
        init_lr: Adam's learning rate in that phase (default ``lr``; the main phase then starts
            a fresh Adam at ``lr``). A small encoder learns a partition slowly: the paper's
            three-unit pinwheel encoder learns the k-means partition within 100 epochs at
            ``init_lr=1e-2``, far more slowly at the paper's 1e-3 (chapter 6).

    Raises:
        FloatingPointError: the loss became NaN or infinite; the message names epoch and step,
            and the model keeps the parameters of the last finite step.
    """
    if not isinstance(model, VMoNF):
        raise TypeError(f"model must be a VMoNF, got {type(model).__name__}")
    epochs = check_positive_int(epochs, "epochs")
    batch_size = check_positive_int(batch_size, "batch_size")
    if batch_size < 2:
        raise ValueError("batch_size must be at least 2 (batch norm needs two points)")
    if isinstance(pretrain_epochs, bool) or not isinstance(pretrain_epochs, int) or pretrain_epochs < 0:
        raise ValueError(f"pretrain_epochs must be an integer >= 0, got {pretrain_epochs!r}")
    lr = check_number(lr, "lr")
    weight_decay = check_number(weight_decay, "weight_decay", positive=False)
    if objective not in ("elbo", "exact"):
        raise ValueError(f"objective must be 'elbo' or 'exact', got {objective!r}")
    consistency = check_number(consistency, "consistency", positive=False)
    clip_grad_norm = check_number(clip_grad_norm, "clip_grad_norm", optional=True)
    schedule = _schedule(temperature)
    init_epochs = check_positive_int(init_epochs, "init_epochs")
    init_lr = check_number(init_lr, "init_lr", optional=True)

    if device is not None:
        model.to(device)
    ref = model.prior_logits
    x = as_data(x, model.dim, "x", dtype=ref.dtype, device=ref.device)
    y = None
    if labels is not None:
        y = as_labels(labels, x.shape[0], model.k, "labels").to(ref.device)
    labeled = (y >= 0) if y is not None else torch.zeros(x.shape[0], dtype=torch.bool, device=ref.device)
    x_lab, y_lab, x_unl = x[labeled], (y[labeled] if y is not None else None), x[~labeled]
    if pretrain_epochs and x_lab.shape[0] < 2:
        raise ValueError("pretrain_epochs needs at least two labeled points (labels >= 0)")
    if x_unl.shape[0] == 1 or (x_unl.shape[0] == 0 and x_lab.shape[0] < 2):
        raise ValueError("x needs at least two points to train on (batch norm needs two)")

    init_assign = _initial_assignment(init, x, model.k, seed)

    if seed is not None:
        torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed if seed is not None else int(torch.randint(0, 2**31 - 1, ()).item()))
    history = History()
    own_init_lr = init_assign is not None and init_lr is not None
    optimizer = _adam(list(model.parameters()), init_lr if own_init_lr else lr, weight_decay)

    def step(loss: Tensor, epoch: int, index: int) -> float:
        value = float(loss.detach())
        if not math.isfinite(value):
            raise FloatingPointError(
                f"non-finite loss ({value}) at epoch {epoch}, step {index}: try a lower lr, "
                "clip_grad_norm=1.0, standardised x, or a temperature floor"
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if clip_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
        optimizer.step()
        return value

    model.train()
    if init_assign is not None:
        for epoch in trange(1, init_epochs + 1, desc="init", disable=not progress):
            for i, b in enumerate(_batches(x.shape[0], batch_size, gen, ref.device), 1):
                step(_labeled_loss(model, x[b], init_assign[b], objective).mean(), epoch, i)
        history.init_agreement = _agreement(model, x, init_assign, exact=objective == "exact")
        model.train()
        if own_init_lr:  # the later phases train at lr, with Adam's moments started afresh
            optimizer = _adam(list(model.parameters()), lr, weight_decay)
    for epoch in trange(1, pretrain_epochs + 1, desc="pretrain", disable=not progress or not pretrain_epochs):
        losses = [
            step(_labeled_loss(model, x_lab[b], y_lab[b], objective).mean(), epoch, i)
            for i, b in enumerate(_batches(x_lab.shape[0], batch_size, gen, ref.device), 1)
        ]
        history.pretrain_loss.append(sum(losses) / len(losses))

    unlabeled_n = x_unl.shape[0]
    bar = trange(1, epochs + 1, desc="fit", disable=not progress)
    for epoch in bar:
        start, losses, temp = time.perf_counter(), [], schedule(history.steps + 1)
        batches = _batches(unlabeled_n, batch_size, gen, ref.device) if unlabeled_n else _batches(x_lab.shape[0], batch_size, gen, ref.device)
        for i, b in enumerate(batches, 1):
            history.steps += 1
            temp = schedule(history.steps)
            if unlabeled_n:
                xb = x_unl[b]
                loss = _unlabeled_loss(model, xb, temp, objective).mean()
                if consistency:
                    loss = loss + consistency * _consistency(model, xb, temp, consistency_noise).mean()
                if x_lab.shape[0] >= 2:
                    lb = torch.randperm(x_lab.shape[0], generator=gen)[:batch_size].to(ref.device)
                    loss = loss + _labeled_loss(model, x_lab[lb], y_lab[lb], objective).mean()
            else:
                loss = _labeled_loss(model, x_lab[b], y_lab[b], objective).mean()
            losses.append(step(loss, epoch, i))
        history.loss.append(sum(losses) / len(losses))
        history.temperature.append(temp)
        history.seconds.append(time.perf_counter() - start)
        if progress:
            bar.set_postfix(loss=f"{history.loss[-1]:.3f}", T=f"{temp:.3f}")
        if callback is not None:
            model.eval()
            with torch.no_grad():
                callback(epoch, model)
            model.train()
    model.eval()
    return history


def _adam(params: List[Tensor], lr: float, weight_decay: float) -> torch.optim.Adam:
    """Adam, fused into one kernel where this torch supports it (CPU since torch 2.4): the
    per-parameter update loop otherwise costs as much as a small flow's forward pass."""
    try:
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)


@torch.no_grad()
def _agreement(model: VMoNF, x: Tensor, assign: Tensor, exact: bool, chunk: int = 4096) -> float:
    """Fraction of ``x`` that ``model.predict`` (eval mode, in chunks) puts where ``assign`` does."""
    model.eval()
    pairs = zip(x.split(chunk), assign.split(chunk))
    hits = sum(int((model.predict(part, exact=exact) == a).sum()) for part, a in pairs)
    return hits / x.shape[0]


def _initial_assignment(init: Any, x: Tensor, k: int, seed: Optional[int]) -> Optional[Tensor]:
    """``None``, or initial cluster indices ``(N,)`` on ``x``'s device."""
    if init is None:
        return None
    if isinstance(init, str):
        if init != "kmeans":
            raise ValueError(f"init must be None, 'kmeans' or (N,) assignments, got {init!r}")
        from sklearn.cluster import KMeans

        points = x.detach().cpu().double().numpy()
        assign = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(points)
        return torch.as_tensor(assign, dtype=torch.long, device=x.device)
    return as_labels(init, x.shape[0], k, "init", allow_unlabeled=False).to(x.device)


def _schedule(temperature: Schedule) -> Callable[[int], float]:
    if temperature is None:
        return lambda step: 1.0
    if callable(temperature):
        return lambda step: check_temperature(temperature(step), "temperature(step)")
    value = check_temperature(temperature)
    return lambda step: value
