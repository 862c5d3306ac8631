"""Stacked (batched) building blocks: K independent networks evaluated in one pass.

Every layer here holds the parameters of ``k`` independent copies stacked along a leading
axis and maps a tensor of shape ``(K, N, in)`` (or ``(N, in)``, shared by all copies) to
``(K, N, out)`` with one batched matrix product.  This is what makes a mixture of K flows
cost about as much as one flow (chapter 4 and ``bench/speed.py``).

Example:
    >>> import torch
    >>> from vmonf_mini.layers import StackedMLP
    >>> net = StackedMLP(k=3, in_features=2, hidden=(8,), out_features=4)
    >>> net(torch.randn(10, 2)).shape
    torch.Size([3, 10, 4])
"""

from __future__ import annotations

import math
from typing import List, Optional, Sequence, Union

import torch
from torch import Tensor, nn

__all__ = ["StackedLinear", "StackedMLP"]

#: which features of an axis: anything that indexes one (a slice, a list, an index tensor)
Selector = Union[slice, List[int], Tensor]


def _block(selector: Optional[Selector]) -> bool:
    """Whether ``selector`` takes everything (None) or one block of consecutive features."""
    return selector is None or (
        isinstance(selector, slice) and selector.step in (None, 1)
    )


def _blas_ready(t: Tensor) -> Tensor:
    """``t`` as it is when each of its matrices has a unit stride along one axis, else a
    contiguous copy.  A strided view (every other feature, say) would otherwise send ``bmm`` and
    its backward down torch's matrix-by-matrix loop, several times slower."""
    rows, cols = t.shape[-2], t.shape[-1]
    if (t.stride(-1) == 1 and t.stride(-2) >= max(1, cols)) or (
        t.stride(-2) == 1 and t.stride(-1) >= max(1, rows)
    ):
        return t
    return t.contiguous()


class StackedLinear(nn.Module):
    """``k`` independent affine maps ``x @ W_k + b_k``, optionally with a fixed 0/1 mask on W.

    Args:
        k: number of stacked copies.
        in_features: input width.
        out_features: output width.
        mask: optional ``(in_features, out_features)`` tensor of zeros and ones, shared by all
            copies (MADE's connectivity, chapter 3). Stored as a buffer.

    Shapes: ``(N, in)`` or ``(K, N, in)`` -> ``(K, N, out)``.
    """

    def __init__(
        self, k: int, in_features: int, out_features: int, mask: Optional[Tensor] = None
    ) -> None:
        super().__init__()
        self.k, self.in_features, self.out_features = k, in_features, out_features
        bound = 1.0 / math.sqrt(in_features)  # the same initialisation as nn.Linear
        self.weight = nn.Parameter(
            torch.empty(k, in_features, out_features).uniform_(-bound, bound)
        )
        self.bias = nn.Parameter(
            torch.empty(k, 1, out_features).uniform_(-bound, bound)
        )
        if mask is not None:
            if mask.shape != (in_features, out_features):
                raise ValueError(
                    f"mask must have shape {(in_features, out_features)}, got {tuple(mask.shape)}"
                )
            self.register_buffer("mask", mask.to(self.weight.dtype))
        else:
            self.mask = None

    def masked_weight(self) -> Tensor:
        """The weight with the mask applied (the weight itself when there is no mask)."""
        return self.weight if self.mask is None else self.weight * self.mask

    def forward(self, x: Tensor, weight: Optional[Tensor] = None) -> Tensor:
        """``weight``: optionally a precomputed :meth:`masked_weight`, reused across calls (MAF sampling)."""
        weight = self.masked_weight() if weight is None else weight
        if (
            x.dim() == 2
        ):  # shared input: ONE product with the K weights side by side, (N, in) @ (in, K*out)
            k, n, out = self.k, x.shape[0], self.out_features
            side_by_side = weight.transpose(0, 1).reshape(self.in_features, k * out)
            return (
                torch.addmm(self.bias.reshape(k * out), x, side_by_side)
                .view(n, k, out)
                .transpose(0, 1)
            )
        if x.stride(-2) == 1 and x.shape[-2] > 1:
            # x stored feature by feature, (K, in, N) in memory: compute (W^T x^T)^T so that the output
            # is stored the same way; for narrow layers this is several times faster on a CPU.
            return self.features_first(x.transpose(1, 2), weight=weight).transpose(1, 2)
        return torch.baddbmm(self.bias, x, weight)

    def features_first(
        self,
        h: Tensor,
        rows: Optional[Selector] = None,
        cols: Optional[Selector] = None,
        weight: Optional[Tensor] = None,
    ) -> Tensor:
        """The map on transposed data, ``(K, in, N) -> (K, out, N)``, optionally restricted.

        ``rows``: the input features ``h`` holds (indices into ``in``), the others being zero;
        ``cols``: the only outputs wanted (indices into ``out``).  A coupling layer's nets read
        only the features it keeps and write only those it transforms (chapter 2): restricted,
        their products do half the work, which matters when many runs train together.
        """
        weight = self.masked_weight() if weight is None else weight
        bias = self.bias
        if rows is not None:
            weight = weight[:, rows]
        if cols is not None:
            weight, bias = weight[:, :, cols], bias[:, :, cols]
        bias, weight = bias.transpose(1, 2), weight.transpose(1, 2)
        if not (_block(rows) and _block(cols)):  # blocks' views are ready as they are
            bias, weight, h = _blas_ready(bias), _blas_ready(weight), _blas_ready(h)
        return torch.baddbmm(bias, weight, h)

    def extra_repr(self) -> str:
        return f"k={self.k}, in_features={self.in_features}, out_features={self.out_features}, masked={self.mask is not None}"


class StackedMLP(nn.Module):
    """``k`` independent MLPs ``in -> hidden... -> out`` with LeakyReLU between layers.

    Args:
        k: number of stacked copies.
        in_features: width of the input.
        out_features: width of the output.
        hidden: widths of the hidden layers.
        final: optional activation on the output (``"tanh"`` bounds it to (-1, 1)).
    """

    def __init__(
        self,
        k: int,
        in_features: int,
        hidden: Sequence[int],
        out_features: int,
        final: Optional[str] = None,
    ) -> None:
        super().__init__()
        widths = [in_features, *hidden, out_features]
        self.layers = nn.ModuleList(
            StackedLinear(k, a, b) for a, b in zip(widths[:-1], widths[1:])
        )
        if final not in (None, "tanh"):
            raise ValueError(f"final must be None or 'tanh', got {final!r}")
        self.final = final

    def forward(self, x: Tensor) -> Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = nn.functional.leaky_relu(x, 0.01)
        return torch.tanh(x) if self.final == "tanh" else x

    def features_first(
        self,
        h: Tensor,
        rows: Optional[Selector] = None,
        cols: Optional[Selector] = None,
    ) -> Tensor:
        """The MLP on transposed data, ``(K, in, N) -> (K, out, N)``: the first layer reading only
        the input features ``rows``, the last writing only the outputs ``cols``
        (:meth:`StackedLinear.features_first`).

        >>> net = StackedMLP(k=2, in_features=2, hidden=(8,), out_features=2)
        >>> x = torch.randn(2, 5, 2) * torch.tensor([1.0, 0.0])  # feature 1 is zero
        >>> part = net.features_first(x[:, :, :1].transpose(1, 2), [0], [1])
        >>> torch.allclose(part.transpose(1, 2), net(x)[:, :, 1:], atol=1e-6)
        True
        """
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            h = layer.features_first(
                h, rows if i == 0 else None, cols if i == last else None
            )
            if i < last:
                # in place: h is a fresh product nothing else reads, and leaky ReLU's backward
                # needs only its result; one buffer fewer per layer while many runs train
                h = nn.functional.leaky_relu(h, 0.01, inplace=True)
        return torch.tanh(h) if self.final == "tanh" else h
