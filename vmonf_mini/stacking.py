"""R training runs of one architecture as one module: what makes :func:`~vmonf_mini.fit_many` fast.

A :class:`~vmonf_mini.VMoNF` already evaluates its K flows in one batched pass (chapter 4).
:class:`RunStack` does the same for R whole models: the R*K components are stacked along the
flows' leading axis, the R encoders become one stacked MLP (one batched product per layer),
and the R prior logits one ``(R, K)`` tensor.  Batches are ``(R, B, D)``: run ``r`` sees its
own points.  Gradients never mix (each parameter belongs to one run), so training the stack
is R independent trainings; ``RunStack.write_back()`` then gives every model its own
trained parameters and buffers.  :class:`SingleRun` is the same interface over one model,
used by :func:`~vmonf_mini.fit` and for models whose components cannot be stacked.

Example:
    >>> import torch
    >>> from vmonf_mini import VMoNF
    >>> models = [VMoNF(2, 3, blocks=2, encoder_hidden=(8,)) for _ in range(4)]
    >>> stack = RunStack(models)
    >>> stack.joint(torch.randn(4, 10, 2)).shape     # (R, B, K): one pass for 4 runs
    torch.Size([4, 10, 3])
"""

from __future__ import annotations

from typing import Dict, List, Sequence

import torch
from torch import Tensor, nn

from .layers import StackedLinear
from .mixture import VMoNF, built_in_flows

__all__ = ["RunStack", "SingleRun", "first_difference"]

_STATE_SUFFIXES = ("running_mean", "running_var", "num_batches_tracked")


def first_difference(models: Sequence[VMoNF], compare_device: bool = True) -> str:
    """``""`` when every model has model 0's architecture, dtype and device; else the first difference.

    >>> from vmonf_mini import VMoNF
    >>> first_difference([VMoNF(2, 3), VMoNF(2, 4)])
    'models[1] has k=4, models[0] has k=3'
    """
    ref = models[0]
    for i, model in enumerate(models[1:], 1):
        for key, value in ref.config.items():
            if model.config.get(key) != value:
                return f"models[{i}] has {key}={model.config.get(key)!r}, models[0] has {key}={value!r}"
        for what, a, b in (
            ("dtype", model.prior_logits.dtype, ref.prior_logits.dtype),
            ("device", model.prior_logits.device, ref.prior_logits.device),
        ):
            if a != b and (what == "dtype" or compare_device):
                return f"models[{i}] has {what} {a}, models[0] has {what} {b}"
    return ""


def _state_tensors(module: nn.Module) -> List[Tensor]:
    """The buffers a training forward pass changes: batch norm's running statistics."""
    return [b for name, b in module.named_buffers() if name.endswith(_STATE_SUFFIXES)]


class _Runs(nn.Module):
    """What the training loop needs from R runs (shapes: x ``(R, B, D)`` -> ``(R, B, K)``)."""

    runs: int
    k: int

    def joint(self, x: Tensor) -> Tensor:
        """``log p(c) + log p(x|c)`` per run, ``(R, B, K)``."""
        raise NotImplementedError

    def logits(self, x: Tensor) -> Tensor:
        """The encoders' logits per run, ``(R, B, K)``."""
        raise NotImplementedError

    def run_views(self, tensors: Sequence[Tensor]) -> List[Tensor]:
        """Each tensor (a parameter or its gradient) viewed as ``(R, -1)``: row r belongs to run r."""
        return [t.reshape(self.runs, -1) for t in tensors]

    def snapshot(self) -> List[Tensor]:
        """Copies of the running statistics, to undo a failed step with ``restore``.

        The copies go into buffers made by the first call (one fused copy per step); the
        stack's buffers keep their shapes, dtypes and devices while it trains."""
        live = _state_tensors(self)
        saved = getattr(self, "_saved", None)
        if saved is None:
            saved = self._saved = [t.clone() for t in live]
        elif live:
            with torch.no_grad():
                if hasattr(torch, "_foreach_copy_"):
                    torch._foreach_copy_(saved, live)
                else:  # pragma: no cover - torch < 2.2
                    for s, t in zip(saved, live):
                        s.copy_(t)
        return saved

    def restore(self, saved: List[Tensor]) -> None:
        with torch.no_grad():
            for t, s in zip(_state_tensors(self), saved):
                t.copy_(s)

    def write_back(self) -> None:
        """Copy the trained state into the models (nothing to do for a single run)."""


class SingleRun(_Runs):
    """One model seen as a stack of one run: the model itself is trained, nothing is copied."""

    def __init__(self, model: VMoNF) -> None:
        super().__init__()
        self.model, self.runs, self.k = model, 1, model.k

    def joint(self, x: Tensor) -> Tensor:
        return (
            self.model.components.log_prob(x[0]) + self.model.log_prior()
        ).unsqueeze(0)

    def logits(self, x: Tensor) -> Tensor:
        return self.model.encoder(x[0]).unsqueeze(0)


class _StackedBatchNorm(nn.Module):
    """R ``nn.BatchNorm1d`` layers (training mode) over ``(R, B, H)``: statistics per run and feature."""

    def __init__(self, norms: Sequence[nn.BatchNorm1d]) -> None:
        super().__init__()
        first = norms[0]
        if first.momentum is None or not first.affine or not first.track_running_stats:
            raise ValueError(
                "fit_many stacks BatchNorm1d with a momentum, affine and running statistics"
            )
        stack = lambda name: torch.stack([getattr(n, name).detach() for n in norms])[
            :, None, :
        ]  # noqa: E731
        self.weight, self.bias = (
            nn.Parameter(stack("weight").clone()),
            nn.Parameter(stack("bias").clone()),
        )
        self.register_buffer("running_mean", stack("running_mean").clone())
        self.register_buffer("running_var", stack("running_var").clone())
        counts = [
            n.num_batches_tracked
            if n.num_batches_tracked is not None
            else torch.zeros((), dtype=torch.long)
            for n in norms
        ]
        self.register_buffer(
            "num_batches_tracked",
            torch.stack([c.detach().cpu() for c in counts]).to(first.weight.device),
        )
        self.momentum, self.eps = float(first.momentum), float(first.eps)

    def forward(self, h: Tensor) -> Tensor:
        n = h.shape[1]
        mean = h.sum(1, keepdim=True) * (1.0 / n)
        centered = h - mean
        var = (centered * centered).sum(1, keepdim=True) * (1.0 / n)
        with (
            torch.no_grad()
        ):  # as torch's batch norm: the running variance is the unbiased one
            self.running_mean.lerp_(mean, self.momentum)
            self.running_var.lerp_(var * (n / (n - 1)), self.momentum)
        self.num_batches_tracked.add_(1)
        return centered * torch.rsqrt(var + self.eps) * self.weight + self.bias

    def write_back(self, norms: Sequence[nn.BatchNorm1d]) -> None:
        for r, norm in enumerate(norms):
            norm.weight.copy_(self.weight[r, 0])
            norm.bias.copy_(self.bias[r, 0])
            norm.running_mean.copy_(self.running_mean[r, 0])
            norm.running_var.copy_(self.running_var[r, 0])
            if norm.num_batches_tracked is not None:
                norm.num_batches_tracked.copy_(self.num_batches_tracked[r])


class _StackedEncoder(nn.Module):
    """R encoders ``Linear, ReLU[, BatchNorm1d], ..., Linear`` as stacked layers."""

    def __init__(self, encoders: Sequence[nn.Sequential]) -> None:
        super().__init__()
        layers = list(zip(*encoders))
        linears = [group for group in layers if isinstance(group[0], nn.Linear)]
        norms = [group for group in layers if isinstance(group[0], nn.BatchNorm1d)]
        self.linears = nn.ModuleList(self._stacked_linear(group) for group in linears)
        self.norms = nn.ModuleList(_StackedBatchNorm(group) for group in norms)
        self._sources = (linears, norms)

    @staticmethod
    def _stacked_linear(group: Sequence[nn.Linear]) -> StackedLinear:
        first = group[0]
        layer = StackedLinear(len(group), first.in_features, first.out_features).to(
            first.weight
        )
        with torch.no_grad():
            layer.weight.copy_(torch.stack([lin.weight.t() for lin in group]))
            layer.bias.copy_(torch.stack([lin.bias for lin in group])[:, None, :])
        return layer

    def forward(self, x: Tensor) -> Tensor:
        h = x
        for i, linear in enumerate(self.linears[:-1]):
            h = torch.relu(linear(h))
            if len(self.norms):
                h = self.norms[i](h)
        return self.linears[-1](h)

    def write_back(self) -> None:
        linears, norms = self._sources
        for stacked, group in zip(self.linears, linears):
            for r, lin in enumerate(group):
                lin.weight.copy_(stacked.weight[r].t())
                lin.bias.copy_(stacked.bias[r, 0])
        for stacked, group in zip(self.norms, norms):
            stacked.write_back(group)


class RunStack(_Runs):
    """R models of one architecture (built-in flows) as one module of R*K stacked components.

    The models are left untouched until ``write_back()``.  Building the stack does not
    consume torch's global random numbers.
    """

    def __init__(self, models: Sequence[VMoNF], checked: bool = False) -> None:
        """``checked``: the caller has already compared the models (``fit_many`` does)."""
        super().__init__()
        problem = "" if checked else first_difference(models)
        if problem:
            raise ValueError(f"fit_many needs models of one architecture: {problem}")
        if models[0].config["custom_components"]:
            raise ValueError(
                "RunStack needs the built-in flows (custom components cannot be stacked)"
            )
        self.models, self.runs, self.k = list(models), len(models), models[0].k
        ref = models[0].prior_logits
        with (
            torch.random.fork_rng(devices=[]),
            torch.no_grad(),
        ):  # its initial values are overwritten
            self.components = built_in_flows(models[0].config, self.runs * self.k).to(
                dtype=ref.dtype, device=ref.device
            )
            self._shared = self._copy_components_in()
            self.encoder = _StackedEncoder([m.encoder for m in models])
            prior = torch.stack([m.prior_logits.detach() for m in models]).clone()
        if isinstance(models[0].prior_logits, nn.Parameter):
            self.prior_logits = nn.Parameter(prior)
        else:
            self.register_buffer("prior_logits", prior)

    def _copy_components_in(self) -> Dict[str, bool]:
        """Fill the stacked flows from the models'; returns, per tensor, whether all runs share it."""
        shared: Dict[str, bool] = {}
        sources = [m.components.state_dict() for m in self.models]
        for name, target in self.components.state_dict().items():
            parts = [s[name] for s in sources]
            shared[name] = (
                parts[0].shape == target.shape
            )  # masks and orders: one copy for all runs
            target.copy_(parts[0] if shared[name] else torch.cat(parts, dim=0))
        return shared

    def joint(self, x: Tensor) -> Tensor:
        r, b, d = x.shape
        every_component = (
            x.unsqueeze(1).expand(r, self.k, b, d).reshape(r * self.k, b, d)
        )
        log_p = self.components.log_prob(every_component)  # (B, R*K)
        return log_p.view(b, r, self.k).transpose(0, 1) + torch.log_softmax(
            self.prior_logits, -1
        ).unsqueeze(1)

    def logits(self, x: Tensor) -> Tensor:
        return self.encoder(x)

    @torch.no_grad()
    def write_back(self) -> None:
        k = self.k
        state = self.components.state_dict()
        for r, model in enumerate(self.models):
            for name, target in model.components.state_dict().items():
                if not self._shared[name]:
                    target.copy_(state[name][r * k : (r + 1) * k])
            model.prior_logits.copy_(self.prior_logits[r])
        self.encoder.write_back()
