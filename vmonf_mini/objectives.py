"""The loss terms of training, each a small function of per-point tensors (chapters 4, 7 and 9).

Every function takes tensors with any leading shape (``(B, K)`` for one run, ``(R, B, K)`` for
R runs trained together) and returns one loss per point: ``(B,)`` or ``(R, B)``.  ``joint``
holds ``log p(c) + log p(x|c)`` (see :meth:`~vmonf_mini.VMoNF.joint`), ``logits`` the
encoder's raw outputs, ``log_q`` the tempered ``log q(c|x)``.

Example:
    >>> import torch
    >>> joint, log_q = torch.randn(4, 3), torch.log_softmax(torch.randn(4, 3), dim=-1)
    >>> elbo = -unlabeled_loss(joint, log_q, "elbo")
    >>> bool((elbo <= torch.logsumexp(joint, -1) + 1e-6).all())
    True
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor

__all__ = [
    "MIN_TEMPERATURE",
    "floor_temperature",
    "elbo",
    "lower_bound",
    "tempered_log_q",
    "unlabeled_loss",
    "labeled_loss",
    "consistency_kl",
    "soft_target_loss",
]


#: The posterior's temperature is never taken below this, so ``logits / T`` cannot overflow.
MIN_TEMPERATURE = 1e-3


def floor_temperature(
    temperature: float, floor: Optional[float] = MIN_TEMPERATURE
) -> float:
    """``max(temperature, floor)``, the temperature that divides the logits (``floor=None``: none).

    The one function the package floors a temperature with: the model's posterior at
    ``MIN_TEMPERATURE``, the training at its ``min_temperature``, and
    :class:`~vmonf_mini.ExponentialDecay` at its ``floor`` (chapter 5).

    >>> floor_temperature(1e-5), floor_temperature(1e-5, None), floor_temperature(0.5, 0.01)
    (0.001, 1e-05, 0.5)
    """
    return temperature if floor is None else max(temperature, floor)


def tempered_log_q(logits: Tensor, temperature: float) -> Tensor:
    """``log q(c|x) = log_softmax(logits / T)`` (chapter 5), ``T`` as given: no floor here.

    Callers floor ``T`` first with :func:`floor_temperature` where they need one (the training
    through :meth:`~vmonf_mini.TrainConfig.temperature_at`, :meth:`~vmonf_mini.VMoNF.log_posterior`
    at ``MIN_TEMPERATURE``).
    """
    return torch.log_softmax(logits / temperature, dim=-1)


def elbo(joint: Tensor, log_q: Tensor) -> Tensor:
    """``sum_c q(c|x) [log p(x, c) - log q(c|x)]``, the evidence lower bound per point (chapter 4)."""
    return (log_q.exp() * (joint - log_q)).sum(-1)


def _at_labels(joint: Tensor, labels: Tensor) -> Tensor:
    """``log p(x, y)``: each point's entry of ``joint`` at its label."""
    return joint.gather(-1, labels.unsqueeze(-1)).squeeze(-1)


def lower_bound(
    joint: Tensor, log_q: Tensor, labels: Optional[Tensor] = None
) -> Tensor:
    """The ELBO of every point, and for a labeled point (``labels >= 0``) ``log p(x, y)``: the
    objective of chapter 7's semi-supervised model, what :meth:`~vmonf_mini.VMoNF.elbo` returns.

    Unlike :func:`elbo` (the training's term), a point so far out that ``log p(x) = -inf`` gets
    ``-inf`` rather than NaN: its ``q = 0`` terms (``0 * inf``) contribute nothing.

    >>> joint = torch.tensor([[-1.0, -2.0], [-1.0, -2.0]])
    >>> lower_bound(joint, torch.log(torch.tensor([[0.5, 0.5]] * 2)), torch.tensor([-1, 1]))
    tensor([-0.8069, -2.0000])
    """
    value = elbo(joint, log_q)
    if bool(torch.isnan(value).any()):  # rare: far out in the tails
        q = log_q.exp()
        terms = torch.where(q > 0, q * (joint - log_q), 0.0).sum(dim=-1)
        value = torch.where(
            torch.logsumexp(joint, dim=-1) == -math.inf, -math.inf, terms
        )
    if labels is not None:
        value = torch.where(labels >= 0, _at_labels(joint, labels.clamp_min(0)), value)
    return value


def unlabeled_loss(joint: Tensor, log_q: Tensor, objective: str) -> Tensor:
    """``-ELBO`` (``objective="elbo"``, the paper) or ``-log p(x)`` (``"exact"``, chapter 9)."""
    if objective == "exact":
        return -torch.logsumexp(joint, dim=-1)
    return -elbo(joint, log_q)


def labeled_loss(
    joint: Tensor, logits: Tensor, labels: Tensor, objective: str
) -> Tensor:
    """``-log p(x, y)`` plus, for the ELBO objective, the cross-entropy of q(y|x) (chapter 7).

    The cross-entropy is *minimised*: the original code maximised it (defect 1).  With the
    exact objective the encoder plays no part and only ``-log p(x, y)`` remains.
    """
    nll = -_at_labels(joint, labels)
    if objective == "exact":
        return nll
    return nll - _at_labels(torch.log_softmax(logits, dim=-1), labels)


def consistency_kl(target_log_q: Tensor, perturbed_log_q: Tensor) -> Tensor:
    """``KL(q(c|x) || q(c|x + eps))``: a perturbed point should keep its cluster (chapter 9)."""
    return (target_log_q.exp() * (target_log_q - perturbed_log_q)).sum(-1)


def soft_target_loss(logits: Tensor, target: Tensor) -> Tensor:
    """``-sum_c target_c log q(c|x)``, ``q`` at temperature 1: the cross-entropy of the encoder
    against a distribution over the components, e.g. labels propagated along a neighbour graph
    (:mod:`vmonf_mini.graph`). A one-hot ``target`` gives the labeled loss's cross-entropy."""
    return -(target * torch.log_softmax(logits, dim=-1)).sum(-1)
