"""The loss terms of training, each a small function of per-point tensors (chapters 4, 7 and 9).

Every function takes tensors with any leading shape (``(B, K)`` for one run, ``(R, B, K)`` for
R runs trained together) and returns one loss per point: ``(B,)`` or ``(R, B)``.  ``joint``
holds ``log p(c) + log p(x|c)`` (see :meth:`~vmonf_mini.VMoNF.joint`), ``logits`` the
encoder's raw outputs, ``log_q`` the tempered ``log q(c|x)``.

Example:
    >>> import torch
    >>> joint, log_q = torch.randn(4, 3), torch.log_softmax(torch.randn(4, 3), dim=-1)
    >>> bool((-unlabeled_loss(joint, log_q, "elbo") <= torch.logsumexp(joint, -1) + 1e-6).all())
    True
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "elbo",
    "tempered_log_q",
    "unlabeled_loss",
    "labeled_loss",
    "consistency_kl",
    "soft_target_loss",
]


def tempered_log_q(logits: Tensor, temperature: float) -> Tensor:
    """``log q(c|x) = log_softmax(logits / T)`` (chapter 5); ``T`` is floored by the caller."""
    return torch.log_softmax(logits / temperature, dim=-1)


def elbo(joint: Tensor, log_q: Tensor) -> Tensor:
    """``sum_c q(c|x) [log p(x, c) - log q(c|x)]``, the evidence lower bound per point (chapter 4)."""
    return (log_q.exp() * (joint - log_q)).sum(-1)


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
    nll = -joint.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    if objective == "exact":
        return nll
    return nll - torch.log_softmax(logits, dim=-1).gather(
        -1, labels.unsqueeze(-1)
    ).squeeze(-1)


def consistency_kl(target_log_q: Tensor, perturbed_log_q: Tensor) -> Tensor:
    """``KL(q(c|x) || q(c|x + eps))``: a perturbed point should keep its cluster (chapter 9)."""
    return (target_log_q.exp() * (target_log_q - perturbed_log_q)).sum(-1)


def soft_target_loss(logits: Tensor, target: Tensor) -> Tensor:
    """``-sum_c target_c log q(c|x)``, ``q`` at temperature 1: the cross-entropy of the encoder
    against a distribution over the components, e.g. labels propagated along a neighbour graph
    (:mod:`vmonf_mini.graph`). A one-hot ``target`` gives the labeled loss's cross-entropy."""
    return -(target * torch.log_softmax(logits, dim=-1)).sum(-1)
