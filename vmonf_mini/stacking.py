"""R training runs of one architecture as one module: what makes :func:`~vmonf_mini.fit_many` fast.

A :class:`~vmonf_mini.VMoNF` already evaluates its K flows in one batched pass (chapter 4).
:class:`RunStack` does the same for R whole models: the R*K components are stacked along the
flows' leading axis, the R encoders become one stacked MLP (one batched product per layer),
and the R prior logits one ``(R, K)`` tensor.  Batches are ``(R, B, D)``: run ``r`` sees its
own points.  Gradients never mix (each parameter belongs to one run), so training the stack
is R independent trainings; ``RunStack.write_back()`` then gives every model its own
trained parameters and buffers, and ``read_in()`` takes back what a callback changed in them.
Parameters the models froze (``requires_grad=False``) are frozen in the stack too: they stay
as they were, as :func:`~vmonf_mini.fit` leaves them.  :class:`SingleRun` is the same
interface over one model, used by :func:`~vmonf_mini.fit` and for models whose components
cannot be stacked.

Example:
    >>> import torch
    >>> from vmonf_mini import VMoNF
    >>> models = [VMoNF(2, 3, blocks=2, encoder_hidden=(8,)) for _ in range(4)]
    >>> stack = RunStack(models)
    >>> stack.joint(torch.randn(4, 10, 2)).shape     # (R, B, K): one pass for 4 runs
    torch.Size([4, 10, 3])
"""

from __future__ import annotations

from typing import Callable, Dict, List, Sequence, Tuple

import torch
from torch import Tensor, nn

from .flows import batch_statistics
from .layers import StackedLinear
from .mixture import ModelConfig, VMoNF, built_in_flows

__all__ = ["RunStack", "SingleRun", "first_difference", "first_shared"]

_STATE_SUFFIXES = ("running_mean", "running_var", "num_batches_tracked")


def first_difference(models: Sequence[VMoNF], compare_device: bool = True) -> str:
    """``""`` when every model has model 0's architecture, dtype and device; else the first difference.

    With two or more models of the built-in flows, the architecture is also the one their
    configuration builds, module by module (a swapped layer is a difference), with the same
    settings and the same parameters frozen (``requires_grad=False``) as model 0.

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
    if len(models) == 1 or ref.config["custom_components"]:
        return ""  # trained one at a time, as fit trains them
    return _structure_difference(models)


def _structure_difference(models: Sequence[VMoNF]) -> str:
    """The first module or tensor of a model that differs from what its configuration builds
    (types and tensor shapes) or from model 0 (module settings, frozen parameters)."""
    config = {k: v for k, v in models[0].config.items() if k != "custom_components"}
    with torch.device("meta"):  # shapes only; the prior's values do not matter here
        built = ModelConfig(**{**config, "prior": None}).build()
        built = built.to(models[0].prior_logits.dtype)
    types = {name: type(m) for name, m in built.named_modules() if name}
    tensors = built.state_dict()
    ref_modules = dict(models[0].named_modules())
    ref_state = models[0].state_dict(keep_vars=True)
    for i, model in enumerate(models):
        modules = {name: m for name, m in model.named_modules() if name}
        for name in sorted(types.keys() ^ modules.keys())[:1]:
            return _missing_or_extra(i, name, name in types, "module")
        for name, m in modules.items():
            if type(m) is not types[name]:
                return (
                    f"models[{i}].{name} is a {type(m).__name__}, where its configuration builds "
                    f"a {types[name].__name__} (fit_many stacks only that architecture; use fit)"
                )
            if m.extra_repr() != ref_modules[name].extra_repr():
                return f"models[{i}].{name} is {m!r}, models[0].{name} is {ref_modules[name]!r}"
        state = model.state_dict(keep_vars=True)
        for name in sorted(tensors.keys() ^ state.keys())[:1]:
            return _missing_or_extra(i, name, name in tensors, "tensor")
        for name, t in state.items():
            want = tensors[name]
            if t.shape != want.shape or t.dtype != want.dtype:
                return (
                    f"models[{i}].{name} has shape {tuple(t.shape)} and dtype {t.dtype}, "
                    f"its configuration builds {tuple(want.shape)} and {want.dtype}"
                )
            if t.requires_grad != ref_state[name].requires_grad:
                frozen, other = (i, 0) if ref_state[name].requires_grad else (0, i)
                return (
                    f"models[{frozen}].{name} is frozen (requires_grad=False), models[{other}].{name} "
                    "is not: fit_many trains runs that freeze the same parameters"
                )
    return ""


def _missing_or_extra(run: int, name: str, missing: bool, what: str) -> str:
    if missing:
        return f"models[{run}] lacks the {what} {name}, which its configuration builds"
    return f"models[{run}].{name} is a {what} its configuration does not build"


def first_shared(models: Sequence[VMoNF]) -> str:
    """``""`` when no two models share a tensor (a submodule, parameter or buffer); else the first pair.

    >>> from vmonf_mini import VMoNF
    >>> a, b = VMoNF(2, 3), VMoNF(2, 3)
    >>> b.encoder = a.encoder
    >>> first_shared([a, b])
    'models[0].encoder.0.weight and models[1].encoder.0.weight are one tensor'
    """
    owners: Dict[int, Tuple[int, str]] = {}
    for i, model in enumerate(models):
        for name, t in model.state_dict(keep_vars=True).items():
            memory = t.untyped_storage().data_ptr()
            if memory == 0:  # no memory: nothing to share (empty or on 'meta')
                continue
            j, first = owners.setdefault(memory, (i, name))
            if j != i:
                return f"models[{j}].{first} and models[{i}].{name} are one tensor"
    return ""


def _state_tensors(module: nn.Module) -> List[Tensor]:
    """The buffers a training forward pass changes: batch norm's running statistics."""
    return [b for name, b in module.named_buffers() if name.endswith(_STATE_SUFFIXES)]


class _ModelStack(nn.Module):
    """R models as one module: what the training loop needs of them (shapes: x ``(R, B, D)`` ->
    ``(R, B, K)``). :class:`SingleRun` and :class:`RunStack` are the two kinds."""

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

    def statistics(self) -> List[Tensor]:
        """The running statistics a training forward pass changes (what ``snapshot`` copies)."""
        return _state_tensors(self)

    def _run_tensors(self, r: int) -> List[Tensor]:
        """Run r's parameters and buffers, as views into the stack."""
        raise NotImplementedError

    @torch.no_grad()
    def run_state(self, r: int) -> List[Tensor]:
        """A copy of run r's parameters and buffers (``fit_many`` freezes a diverged run so)."""
        return [t.detach().clone() for t in self._run_tensors(r)]

    @torch.no_grad()
    def set_run_state(self, r: int, state: List[Tensor]) -> None:
        """Put back run r's parameters and buffers as ``run_state`` copied them."""
        for t, saved in zip(self._run_tensors(r), state):
            t.copy_(saved)

    def write_back(self) -> None:
        """Copy the trained state into the models (nothing to do for a single run)."""

    def read_in(self) -> None:
        """Take the models' state back, as a callback left it (nothing to do for a single run)."""


class SingleRun(_ModelStack):
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

    def _run_tensors(self, r: int) -> List[Tensor]:
        return list(self.model.state_dict(keep_vars=True).values())


#: Where run r's copy of a model's tensor lies in a stacked tensor: ``view(r)``, a view of it.
_View = Callable[[int], Tensor]
#: A model's tensor (its state-dict name), the stacked tensor holding every run's copy, the view.
_Link = Tuple[str, Tensor, _View]


class _StackedBatchNorm(nn.Module):
    """R ``nn.BatchNorm1d`` layers (training mode) over ``(R, B, H)``: statistics per run and
    feature, computed as :class:`~vmonf_mini.flows.BatchNormFlow` computes them
    (:func:`~vmonf_mini.flows.batch_statistics`)."""

    def __init__(self, norm: nn.BatchNorm1d, runs: int) -> None:
        super().__init__()
        if norm.momentum is None or not norm.affine or not norm.track_running_stats:
            raise ValueError(
                "fit_many stacks BatchNorm1d with a momentum, affine and running statistics"
            )
        like = lambda t: t.new_empty((runs, 1, norm.num_features))  # noqa: E731
        self.weight = nn.Parameter(like(norm.weight.detach()))
        self.bias = nn.Parameter(like(norm.bias.detach()))
        self.register_buffer("running_mean", like(norm.running_mean))
        self.register_buffer("running_var", like(norm.running_var))
        self.register_buffer(
            "num_batches_tracked", norm.num_batches_tracked.new_zeros(runs)
        )
        self.momentum, self.eps = float(norm.momentum), float(norm.eps)

    def links(self, prefix: str) -> List[_Link]:
        """Run r's weight, bias and statistics: row r of the stacked ones."""
        return [
            (prefix + name, t, lambda r, t=t: t[r, 0] if t.dim() == 3 else t[r])
            for name, t in (
                ("weight", self.weight),
                ("bias", self.bias),
                ("running_mean", self.running_mean),
                ("running_var", self.running_var),
                ("num_batches_tracked", self.num_batches_tracked),
            )
        ]

    def forward(self, h: Tensor) -> Tensor:
        centered, var = batch_statistics(  # as torch's: an unbiased running variance
            h, self.running_mean, self.running_var, self.momentum, True
        )
        self.num_batches_tracked.add_(1)
        return centered * torch.rsqrt(var + self.eps) * self.weight + self.bias


class _StackedEncoder(nn.Module):
    """R encoders ``Linear, ReLU[, BatchNorm1d], ..., Linear`` (model 0's shapes) as stacked layers."""

    def __init__(self, encoder: nn.Sequential, runs: int) -> None:
        super().__init__()
        self.linears, self.norms = nn.ModuleList(), nn.ModuleList()
        self.links: List[_Link] = []
        for i, layer in enumerate(encoder):
            if isinstance(layer, nn.Linear):
                linear = StackedLinear(runs, layer.in_features, layer.out_features)
                w, b = linear.to(layer.weight).weight, linear.bias
                self.linears.append(linear)
                self.links += [
                    (f"encoder.{i}.weight", w, lambda r, w=w: w[r].t()),
                    (f"encoder.{i}.bias", b, lambda r, b=b: b[r, 0]),
                ]
            elif isinstance(layer, nn.BatchNorm1d):
                self.norms.append(_StackedBatchNorm(layer, runs))
                self.links += self.norms[-1].links(f"encoder.{i}.")

    def forward(self, x: Tensor) -> Tensor:
        h = x
        for i, linear in enumerate(self.linears[:-1]):
            h = torch.relu(linear(h))
            if len(self.norms):
                h = self.norms[i](h)
        return self.linears[-1](h)


class RunStack(_ModelStack):
    """R models of one architecture (built-in flows) as one module of R*K stacked components.

    The models are left untouched until ``write_back()``; ``read_in()`` takes their state
    back (after a callback edited them).  Parameters the models froze are frozen in the
    stack too.  Building the stack does not consume torch's global random numbers.
    """

    def __init__(self, models: Sequence[VMoNF], checked: bool = False) -> None:
        """``checked``: the caller has already compared the models (``fit_many`` does)."""
        super().__init__()
        problem = "" if checked else first_difference(models) or first_shared(models)
        if problem:
            raise ValueError(f"fit_many needs models of one architecture: {problem}")
        if models[0].config["custom_components"]:
            raise ValueError(
                "RunStack needs the built-in flows (custom components cannot be stacked)"
            )
        self.models, self.runs, self.k = list(models), len(models), models[0].k
        ref = models[0].prior_logits
        with torch.random.fork_rng(devices=[]):  # its initial values are overwritten
            self.components = built_in_flows(models[0].config, self.runs * self.k).to(
                dtype=ref.dtype, device=ref.device
            )
            self.encoder = _StackedEncoder(models[0].encoder, self.runs)
        prior = ref.detach().new_empty((self.runs, self.k))
        if isinstance(ref, nn.Parameter):
            self.prior_logits = nn.Parameter(prior)
        else:
            self.register_buffer("prior_logits", prior)
        prior = self.prior_logits
        self._links = self._component_links() + self.encoder.links
        self._links.append(("prior_logits", prior, lambda r, p=prior: p[r]))
        self.read_in()

    def _component_links(self) -> List[_Link]:
        """Run r's copy of a flow tensor is its K rows; tensors without a K axis (masks,
        orders) are one copy for all runs, taken from model 0 here."""
        links: List[_Link] = []
        first = self.models[0].components.state_dict()
        for name, target in self.components.state_dict(keep_vars=True).items():
            n = first[name].shape[0] if first[name].dim() else 0
            if n and target.shape == (self.runs * n, *first[name].shape[1:]):
                view = lambda r, t=target, n=n: t[r * n : (r + 1) * n]  # noqa: E731
                links.append(("components." + name, target, view))
            else:
                with torch.no_grad():
                    target.copy_(first[name])
        return links

    @torch.no_grad()
    def read_in(self) -> None:
        """Copy the models' parameters and buffers into the stack, in place (the optimizer's
        tensors stay the same), and freeze the stacked parameters the models froze."""
        states = [m.state_dict(keep_vars=True) for m in self.models]
        for name, stacked, view in self._links:
            frozen = {not state[name].requires_grad for state in states}
            if isinstance(stacked, nn.Parameter):
                if len(frozen) > 1:
                    raise ValueError(
                        f"fit_many trains runs that freeze the same parameters: {name} is "
                        "frozen (requires_grad=False) in some models only"
                    )
                stacked.requires_grad_(not frozen.pop())
            for r, state in enumerate(states):
                view(r).copy_(state[name])

    @torch.no_grad()
    def write_back(self) -> None:
        states = [m.state_dict(keep_vars=True) for m in self.models]
        for name, _, view in self._links:
            for r, state in enumerate(states):
                state[name].copy_(view(r))

    def _run_tensors(self, r: int) -> List[Tensor]:
        return [view(r) for _, _, view in self._links]

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
