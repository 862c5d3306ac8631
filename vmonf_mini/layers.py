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
from typing import Optional, Sequence

import torch
from torch import Tensor, nn

__all__ = ["StackedLinear", "StackedMLP"]


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
            return torch.baddbmm(
                self.bias.transpose(1, 2), weight.transpose(1, 2), x.transpose(1, 2)
            ).transpose(1, 2)
        return torch.baddbmm(self.bias, x, weight)

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
