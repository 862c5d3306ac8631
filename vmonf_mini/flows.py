"""Normalizing flows with K components stacked in one module (chapters 2 and 3).

Convention (the density direction is the fast one):

* ``layer(x) -> (z, log_det)`` maps data towards the base, ``log_det = log|det dz/dx|``;
* ``layer.inverse(z) -> x`` maps base samples back to data (used for sampling).

Tensors carry a leading component axis: ``(K, N, D)``.  A layer given ``(N, D)`` treats it as
shared by all K components.  ``log p_k(x) = log N(z_k; 0, I) + sum of log_dets``.

Example:
    >>> import torch
    >>> from vmonf_mini.flows import realnvp
    >>> flow = realnvp(dim=2, k=5, blocks=4, hidden=8).double()
    >>> x = torch.randn(7, 2, dtype=torch.float64)
    >>> flow.log_prob(x).shape          # one column per component, one pass
    torch.Size([7, 5])
    >>> z, _ = flow.eval()(x)           # eval: batch norm uses its running averages both ways
    >>> torch.allclose(flow.inverse(z), x.expand(5, 7, 2), atol=1e-10)
    True
"""

from __future__ import annotations

import math
from typing import Any, Iterable, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from .checks import check_number
from .layers import StackedLinear, StackedMLP

__all__ = [
    "AffineCoupling",
    "BatchNormFlow",
    "batch_statistics",
    "MADE",
    "MAFLayer",
    "StackedFlow",
    "FlowList",
    "realnvp",
    "maf",
    "alternating_masks",
]

Hidden = Union[int, Sequence[int]]


def _widths(hidden: Hidden) -> Tuple[int, ...]:
    widths = (hidden,) if isinstance(hidden, int) else tuple(hidden)
    if not widths or any((not isinstance(h, int)) or h < 1 for h in widths):
        raise ValueError(
            f"hidden must be a positive int or a non-empty sequence of positive ints, got {hidden!r}"
        )
    return widths


def _as_components(x: Tensor, k: int) -> Tensor:
    """View ``(N, D)`` as ``(K, N, D)`` without copying; pass ``(K, N, D)`` through."""
    return x.expand(k, *x.shape) if x.dim() == 2 else x


def _selector(indices: List[int]) -> Union[slice, List[int]]:
    """``indices`` as a slice where they are evenly spaced (indexing with it gives a view)."""
    step = indices[1] - indices[0] if len(indices) > 1 else 1
    if (
        indices
        and step > 0
        and indices == list(range(indices[0], indices[-1] + 1, step))
    ):
        return slice(indices[0], indices[-1] + 1, step)
    return indices


def _sum_of_rows(t: Tensor) -> Tensor:
    """``t.sum(1)`` for ``t`` (K, F, N).  With one row, a plain selection: the gradient then
    arrives stored row by row, not in the (N, K) order of the loss's gradient, which would send
    the nets' batched products backward down torch's slow matrix-by-matrix path."""
    return t[:, 0] if t.shape[1] == 1 else t.sum(1)


def alternating_masks(dim: int, count: int) -> Tensor:
    """``count`` binary masks over ``dim`` features, alternating odd/even features.

    >>> alternating_masks(3, 2)
    tensor([[1., 0., 1.],
            [0., 1., 0.]])
    """
    # on the CPU, also when a model is built on the meta device: a mask decides the wiring
    even = (torch.arange(dim, device="cpu") % 2 == 0).to(torch.get_default_dtype())
    return torch.stack([even if i % 2 == 0 else 1.0 - even for i in range(count)])


class AffineCoupling(nn.Module):
    """RealNVP's affine coupling layer (Dinh et al., 2017), K copies at once (chapter 2).

    The features where ``mask == 1`` pass unchanged and condition the others:
    ``z = m*x + (1-m) * (x - t(m*x)) * exp(-s(m*x))``, with ``s`` ending in ``tanh`` (bounded
    scales) and ``t`` linear.  Only the transformed features enter the log-determinant,
    ``log|det| = -sum_{i: m_i = 0} s_i`` (the original code summed all of ``s``: defect 2).

    The nets read only the kept features and compute ``s`` and ``t`` only for the transformed
    ones (the rest of ``m*x`` is zero and the rest of ``s``, ``t`` is discarded), on data stored
    feature by feature, ``(K, D, N)``: narrow products are several times faster that way on a CPU.
    """

    def __init__(self, dim: int, mask: Tensor, hidden: Hidden = 8, k: int = 1) -> None:
        super().__init__()
        if mask.shape != (dim,):
            raise ValueError(f"mask must have shape ({dim},), got {tuple(mask.shape)}")
        if mask.is_meta:
            raise ValueError(
                "mask must hold values (it decides the layer's wiring), not be on 'meta'"
            )
        if not bool(((mask == 0) | (mask == 1)).all()):
            raise ValueError(f"mask must hold only zeros and ones, got {mask.tolist()}")
        self.register_buffer(
            "mask", mask.to(torch.get_default_dtype())
        )  # follows .to()/.double() as a buffer
        self._split_features(mask)
        widths = _widths(hidden)
        self.s_net = StackedMLP(k, dim, widths, dim, final="tanh")
        self.t_net = StackedMLP(k, dim, widths, dim)
        self.k = k

    def _split_features(self, mask: Tensor) -> None:
        """Where ``mask`` is 1 (``kept``) and 0 (``free``): slices when the indices are evenly
        spaced, as alternating masks' are (views, no copies), else lists.  When the two are one
        block each (always in 2-D), a split and a concatenation separate and join them;
        otherwise indexing and ``index_copy`` with ``free_index`` (a buffer kept out of the
        state dict)."""
        mask = mask.detach().cpu()
        kept, free = (mask == 1).nonzero().flatten(), (mask != 1).nonzero().flatten()
        self.kept, self.free = _selector(kept.tolist()), _selector(free.tolist())
        self.register_buffer("free_index", free.to(self.mask.device), persistent=False)
        self._kept_first: Optional[bool] = None  # None: not one block each
        if (
            len(kept)
            and len(free)
            and (kept.max() < free.min() or free.max() < kept.min())
        ):
            self._kept_first = bool(kept.max() < free.min())
        self._first_width = len(kept) if self._kept_first else len(free)

    def _load_from_state_dict(
        self, state_dict: dict, prefix: str, *args: Any, **kwargs: Any
    ) -> None:
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        loaded = state_dict.get(prefix + "mask")
        if loaded is not None and not loaded.is_meta:
            self._split_features(loaded)  # a loaded mask decides which features pass

    def _scale_shift(self, kept: Tensor) -> Tuple[Tensor, Tensor]:
        """``s`` and ``t`` of the transformed features, ``(K, free, N)``, from the kept ones."""
        return (
            self.s_net.features_first(kept, self.kept, self.free),
            self.t_net.features_first(kept, self.kept, self.free),
        )

    def _split(self, x_t: Tensor) -> Tuple[Tensor, Tensor]:
        """The kept and the free rows of ``x_t`` (K, D, N)."""
        if self._kept_first is None:
            return x_t[:, self.kept], x_t[:, self.free]
        first, second = x_t.split(
            [self._first_width, x_t.shape[1] - self._first_width], 1
        )
        return (first, second) if self._kept_first else (second, first)

    def _join(self, x_t: Tensor, kept: Tensor, moved: Tensor) -> Tensor:
        """``x_t`` with its free rows replaced by ``moved`` (K, free, N)."""
        if self._kept_first is None:
            return x_t.index_copy(1, self.free_index, moved)
        return torch.cat([kept, moved] if self._kept_first else [moved, kept], 1)

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        x_t = _as_components(x, self.k).transpose(1, 2)  # (K, D, N)
        kept, free = self._split(x_t)
        s, t = self._scale_shift(kept)
        minus_s = -s
        moved = (free - t) * torch.exp(minus_s)
        return self._join(x_t, kept, moved).transpose(1, 2), _sum_of_rows(minus_s)

    def inverse(self, z: Tensor) -> Tensor:
        z_t = _as_components(z, self.k).transpose(1, 2)
        kept, free = self._split(z_t)
        s, t = self._scale_shift(kept)
        moved = free * torch.exp(s) + t
        return self._join(z_t, kept, moved).transpose(1, 2)


def batch_statistics(
    x: Tensor,
    running_mean: Tensor,
    running_var: Tensor,
    momentum: float,
    unbiased_running_var: bool = False,
) -> Tuple[Tensor, Tensor]:
    """Batch norm's statistics of stacked batches ``x (S, B, H)``, one set per stack entry and
    feature: returns ``x - mean`` and the (biased) variance, and moves the running averages
    ``(S, 1, H)`` towards them in place (``unbiased_running_var``: the variance times
    ``B / (B - 1)``, as torch's ``BatchNorm1d``).

    The one batch-norm computation of the package: :class:`BatchNormFlow` (K components, a
    flow layer) and the encoders' batch norm stacked over R runs by ``fit_many``
    (:mod:`vmonf_mini.stacking`) both call it. Two passes, the mean then the mean of squared
    deviations, each a sum times 1/B: torch's var_mean (a Welford reduction) and mean's
    backward (a division of the whole batch) cost a K=5 pinwheel mixture about 4% of its
    training step (bench/README.md).

    >>> x = torch.tensor([[[0.0], [2.0]]])
    >>> mean, var = torch.zeros(1, 1, 1), torch.ones(1, 1, 1)
    >>> centered, v = batch_statistics(x, mean, var, momentum=0.5)
    >>> centered.flatten().tolist(), v.item(), mean.item(), var.item()
    ([-1.0, 1.0], 1.0, 0.5, 1.0)
    """
    n = x.shape[1]
    inv_n = 1.0 / n
    mean = x.sum(1, keepdim=True) * inv_n
    centered = x - mean
    var = (centered * centered).sum(1, keepdim=True) * inv_n
    with torch.no_grad():
        running_mean.lerp_(mean, momentum)
        running_var.lerp_(
            var * (n / (n - 1)) if unbiased_running_var else var, momentum
        )
    return centered, var


class BatchNormFlow(nn.Module):
    """Batch normalization as an invertible layer (Dinh et al., 2017; Papamakarios et al., 2017).

    In training mode it normalizes with the batch's statistics (and updates running averages,
    one set per component); in eval mode, and always in ``inverse``, it uses the running
    averages.  Plots and evaluation must therefore run in eval mode (the original code did not:
    defect 4).
    """

    def __init__(
        self, dim: int, k: int = 1, momentum: float = 0.1, eps: float = 1e-5
    ) -> None:
        super().__init__()
        self.log_gamma = nn.Parameter(torch.zeros(k, 1, dim))
        self.beta = nn.Parameter(torch.zeros(k, 1, dim))
        self.register_buffer("running_mean", torch.zeros(k, 1, dim))
        self.register_buffer("running_var", torch.ones(k, 1, dim))
        self.momentum, self.eps, self.k = momentum, eps, k

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        x = _as_components(x, self.k)
        if self.training and x.shape[1] > 1:
            centered, var = batch_statistics(
                x, self.running_mean, self.running_var, self.momentum
            )
        else:
            centered, var = x - self.running_mean, self.running_var
        log_scale = self.log_gamma - 0.5 * torch.log(var + self.eps)
        z = centered * torch.exp(log_scale) + self.beta
        return z, log_scale.sum(-1).expand(x.shape[0], x.shape[1])

    def inverse(self, z: Tensor) -> Tensor:
        log_scale = self.log_gamma - 0.5 * torch.log(self.running_var + self.eps)
        return (z - self.beta) * torch.exp(-log_scale) + self.running_mean


class MADE(nn.Module):
    """Masked autoencoder for distribution estimation (Germain et al., 2015), K copies (chapter 3).

    Output ``i`` (a mean and a log-scale per feature) depends only on the features that come
    before ``i`` in ``order``.

    Args:
        dim: number of features.
        hidden: widths of the hidden layers.
        k: number of stacked copies.
        order: a permutation of ``range(dim)``; feature ``order[j]`` is the j-th to be generated.
    """

    def __init__(
        self,
        dim: int,
        hidden: Hidden = 200,
        k: int = 1,
        order: Optional[Sequence[int]] = None,
    ) -> None:
        super().__init__()
        widths = _widths(hidden)
        # the masks are computed on the CPU (also when a model is built on the meta device, as
        # VMoNF.load does to check a checkpoint's shapes) and follow the module's .to() as buffers
        cpu = torch.device("cpu")
        order_t = (
            torch.arange(dim, device=cpu)
            if order is None
            else torch.as_tensor(list(order), device=cpu)
        )
        if sorted(order_t.tolist()) != list(range(dim)):
            raise ValueError(f"order must be a permutation of range({dim})")
        degree_in = torch.empty(dim, dtype=torch.long, device=cpu)
        degree_in[order_t] = torch.arange(
            1, dim + 1, device=cpu
        )  # feature order[j] has degree j + 1
        self.register_buffer("order", order_t)
        degrees = [degree_in]
        for (
            width
        ) in widths:  # hidden degrees cycle through 1..dim-1 (all 0 when dim == 1)
            degrees.append(
                torch.arange(width, device=cpu) % max(dim - 1, 1) + min(dim - 1, 1)
            )
        masks = [
            (d_out[None, :] >= d_in[:, None]).float()
            for d_in, d_out in zip(degrees[:-1], degrees[1:])
        ]
        out_mask = (degree_in[None, :] > degrees[-1][:, None]).float()
        masks.append(torch.cat([out_mask, out_mask], dim=1))  # [means | log-scales]
        sizes = [dim, *widths, 2 * dim]
        self.layers = nn.ModuleList(
            StackedLinear(k, a, b, mask=m)
            for a, b, m in zip(sizes[:-1], sizes[1:], masks)
        )
        self.dim = dim

    def masked_weights(self) -> List[Tensor]:
        """Every layer's masked weight, to pass to :meth:`forward` when calling it many times."""
        return [layer.masked_weight() for layer in self.layers]

    def forward(
        self, x: Tensor, weights: Optional[Sequence[Tensor]] = None
    ) -> Tuple[Tensor, Tensor]:
        """Means and log-scales, each ``(K, N, dim)``; ``weights`` from :meth:`masked_weights` saves re-masking."""
        weights = self.masked_weights() if weights is None else weights
        h = x
        for i, (layer, weight) in enumerate(zip(self.layers, weights)):
            h = layer(h, weight)
            if i < len(self.layers) - 1:
                h = torch.relu(h)
        return h[..., : self.dim], h[..., self.dim :]


class MAFLayer(nn.Module):
    """One masked autoregressive flow layer (Papamakarios et al., 2017), K copies (chapter 3).

    Density in one pass: ``z_i = (x_i - mu_i(x_<i)) * exp(-a_i(x_<i))``; sampling is sequential,
    one MADE pass per feature.  Log-scales are soft-clamped to ``(-bound, bound)`` so that the
    log-determinant stays finite on any input.
    """

    def __init__(
        self,
        dim: int,
        hidden: Hidden = 200,
        k: int = 1,
        order: Optional[Sequence[int]] = None,
        log_scale_bound: float = 5.0,
    ) -> None:
        super().__init__()
        self.made = MADE(dim, hidden, k, order)
        self.bound = check_number(log_scale_bound, "log_scale_bound")
        self.k = k

    def _mean_log_scale(
        self, x: Tensor, weights: Optional[Sequence[Tensor]] = None
    ) -> Tuple[Tensor, Tensor]:
        mu, a = self.made(x, weights)
        return mu, self.bound * torch.tanh(a / self.bound)

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        mu, a = self._mean_log_scale(x)
        return (x - mu) * torch.exp(-a), -a.sum(-1)

    def inverse(self, z: Tensor) -> Tensor:
        z = _as_components(z, self.k)
        x = torch.zeros_like(z)
        weights = self.made.masked_weights()  # mask once, not once per feature
        for feature in self.made.order.tolist():
            mu, a = self._mean_log_scale(x, weights)
            value = z[..., feature] * torch.exp(a[..., feature]) + mu[..., feature]
            x = torch.cat(
                [x[..., :feature], value.unsqueeze(-1), x[..., feature + 1 :]], dim=-1
            )
        return x


def _overflow_to_minus_inf(log_p: Tensor, x: Tensor, flow: nn.Module) -> Tensor:
    """``log_p (N, K)`` with NaN replaced by ``-inf`` in the rows of finite inputs, if the flow is finite.

    A huge finite input (|x| ~ 1e19 in float32) overflows inside the pass, and ``inf - inf`` or
    ``0 * inf`` then give NaN; the density there is 0 (the log-determinants are bounded, the base
    term is -inf), so the answer is ``-inf``.  NaN stays NaN for a NaN input and for a flow whose
    own parameters or buffers are not finite (a broken model must not look like a tail).  Only
    a NaN result pays for the checks: evaluation adds one ``isnan().any()``.  Training skips them
    (a NaN and a -inf loss stop training alike, and the check would cost a device sync a step).
    """
    if log_p.is_meta or flow.training:  # shapes only, or training: nothing to gain
        return log_p
    nan = torch.isnan(log_p)
    if not bool(nan.any()) or not all(
        bool(torch.isfinite(t).all()) for t in (*flow.parameters(), *flow.buffers())
    ):
        return log_p
    finite_rows = torch.isfinite(x).all(-1)  # (N,) or (K, N)
    finite_rows = (
        finite_rows.unsqueeze(1)
        if finite_rows.dim() == 1
        else finite_rows.transpose(0, 1)
    )
    return log_p.masked_fill(nan & finite_rows, -math.inf)


class StackedFlow(nn.Module):
    """K flows with a standard normal base, parameters stacked along a leading K axis.

    ``log_prob(x)`` returns ``(N, K)``: every component's log-density from one batched pass.
    Build one with :func:`realnvp` or :func:`maf`.
    """

    def __init__(self, layers: Iterable[nn.Module], dim: int, k: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.dim, self.k = dim, k

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        """``x (N, D)`` -> ``z (K, N, D)`` and ``log|det dz/dx| (K, N)``."""
        z, total = (
            x,
            None,
        )  # a shared (N, D) input reaches the first layer as such: see StackedLinear
        for layer in self.layers:
            z, log_det = layer(z)
            # a running sum: stacking the log-dets (batch norm's are broadcast views) costs more
            total = log_det if total is None else total + log_det
        z = _as_components(z, self.k)
        return z, z.new_zeros(z.shape[:-1]) if total is None else total

    def inverse(self, z: Tensor) -> Tensor:
        """``z (N, D)`` or ``(K, N, D)`` -> ``x (K, N, D)`` (batch norm uses running averages)."""
        x = _as_components(z, self.k)
        for layer in reversed(self.layers):
            x = layer.inverse(x)
        return x

    def log_prob(self, x: Tensor) -> Tensor:
        """``log p_k(x)`` for every component, ``(N, K)``; ``-inf`` where a finite ``x`` lies so far out
        that the pass overflowed (NaN from inf - inf turned into -inf)."""
        z, log_det = self(x)
        base = -0.5 * (z * z).sum(-1) - 0.5 * self.dim * math.log(2 * math.pi)
        return _overflow_to_minus_inf((base + log_det).transpose(0, 1), x, self)

    def sample(self, components: Tensor) -> Tensor:
        """One sample per entry of ``components`` (a LongTensor of component indices), ``(n, D)``.

        Every component maps as many base points as the most frequent index asks for, so one
        batched pass draws them all (about ``n`` points of work when the indices are balanced).
        """
        onehot = torch.nn.functional.one_hot(components, self.k)
        rank = (onehot.cumsum(0) * onehot).sum(
            1
        ) - 1  # the i-th point is its component's rank[i]-th
        m = int(onehot.sum(0).max())
        z = next(self.parameters()).new_empty((self.k, m, self.dim)).normal_()
        return self.inverse(z)[components, rank]


class FlowList(nn.Module):
    """K independent flow modules looped in Python: the slow alternative to :class:`StackedFlow`.

    Each module needs ``log_prob(x) -> (N,)`` (a :class:`StackedFlow` with ``k=1`` or a
    normflows ``NormalizingFlow``) and, for sampling, ``sample(n)`` returning samples or
    ``(samples, log_prob)`` as normflows does.

    >>> import torch
    >>> comps = FlowList([realnvp(2, k=1, blocks=2) for _ in range(3)])
    >>> comps.log_prob(torch.randn(4, 2)).shape
    torch.Size([4, 3])
    """

    def __init__(self, flows: Sequence[nn.Module]) -> None:
        super().__init__()
        if len(flows) == 0 or not all(isinstance(f, nn.Module) for f in flows):
            raise ValueError(
                "components must be a non-empty list of torch.nn.Module flows"
            )
        self.flows = nn.ModuleList(flows)
        self.k = len(flows)

    def log_prob(self, x: Tensor) -> Tensor:
        columns = []
        for flow in self.flows:
            lp = flow.log_prob(x)
            columns.append(lp[:, 0] if lp.dim() == 2 else lp)
        return torch.stack(columns, dim=1)

    def sample(self, components: Tensor) -> Tensor:
        out: Optional[Tensor] = None
        for c, flow in enumerate(self.flows):
            where = (components == c).nonzero(as_tuple=True)[0]
            if where.numel() == 0:
                continue
            if isinstance(flow, StackedFlow):
                xs = flow.sample(components.new_zeros(where.numel()))
            else:
                xs = flow.sample(int(where.numel()))
                xs = xs[0] if isinstance(xs, tuple) else xs
            if out is None:
                out = xs.new_empty((components.shape[0], xs.shape[-1]))
            out[where] = xs
        assert out is not None
        return out


def realnvp(
    dim: int, k: int = 1, blocks: int = 8, hidden: Hidden = 8, batch_norm: bool = True
) -> StackedFlow:
    """RealNVP with ``blocks`` blocks of [affine coupling, batch norm], masks alternating (chapter 2).

    >>> realnvp(2, k=5).log_prob(torch.zeros(3, 2)).shape
    torch.Size([3, 5])
    """
    if dim < 2:
        raise ValueError(
            f"realnvp needs dim >= 2 (a coupling layer splits the features), got dim={dim}"
        )
    if blocks < 1:
        raise ValueError(f"blocks must be >= 1, got {blocks}")
    layers: list[nn.Module] = []
    for mask in alternating_masks(dim, blocks):
        layers.append(AffineCoupling(dim, mask, hidden, k))
        if batch_norm:
            layers.append(BatchNormFlow(dim, k))
    return StackedFlow(layers, dim, k)


def maf(
    dim: int,
    k: int = 1,
    blocks: int = 5,
    hidden: Hidden = 200,
    batch_norm: bool = True,
    log_scale_bound: float = 5.0,
) -> StackedFlow:
    """MAF with ``blocks`` MADE layers, the feature order reversed between layers (chapter 3).

    >>> maf(4, k=2, blocks=2, hidden=16).log_prob(torch.zeros(3, 4)).shape
    torch.Size([3, 2])
    """
    if blocks < 1:
        raise ValueError(f"blocks must be >= 1, got {blocks}")
    layers: list[nn.Module] = []
    natural = list(range(dim))
    for b in range(blocks):
        order = natural if b % 2 == 0 else natural[::-1]
        layers.append(MAFLayer(dim, hidden, k, order, log_scale_bound))
        if batch_norm and b < blocks - 1:
            layers.append(BatchNormFlow(dim, k))
    return StackedFlow(layers, dim, k)
