"""Preprocessing for images that keeps log-likelihoods exact and comparable (chapter 8).

A density model can be trained on transformed data ``y = f(x)``; its log-likelihood is then
measured in ``y``-space.  The change of variables brings it back to pixel space,
``log p_X(x) = log p_Y(f(x)) + log|det df/dx|``, so models trained in different spaces can be
compared on the same scale.  This module holds the three transforms chapter 8 uses:

* :func:`dequantize`: pixels on the grid ``k / 255`` become ``(k + u) / 256`` with
  ``u ~ U[0, 1)``, a continuous variable on ``[0, 1]``.  A density on raw pixels is degenerate
  (a flow can pile unbounded density onto the many exact zeros); on dequantized pixels it is a
  lower bound on the discrete log-probability (Theis et al., 2016).
* :class:`LogitTransform`: ``y = logit(alpha + (1 - 2 alpha) x)`` with its log-determinant,
  as in the MAF paper (Papamakarios et al., 2017).
* :class:`PCAWhitening`: a fitted projection onto the top ``dim`` principal directions,
  optionally whitened, with ``forward``/``inverse`` and the bookkeeping that turns a density on
  the ``dim`` coordinates into a density on all ``D`` pixels (an isotropic Gaussian on the
  discarded directions, as in probabilistic PCA, Tipping & Bishop 1999).

Example:
    >>> import torch
    >>> from vmonf_mini.preprocess import LogitTransform, PCAWhitening, dequantize
    >>> pixels = torch.tensor([[0.0, 1.0, 128 / 255]], dtype=torch.float64)
    >>> x = dequantize(pixels, generator=torch.Generator().manual_seed(0))
    >>> bool(((x > 0) & (x < 1)).all())
    True
    >>> logit = LogitTransform()
    >>> y, log_det = logit(x)
    >>> torch.allclose(logit.inverse(y), x)
    True
    >>> pca = PCAWhitening(dim=2).fit(torch.randn(100, 5, dtype=torch.float64))
    >>> pca.forward(torch.zeros(3, 5, dtype=torch.float64)).shape
    torch.Size([3, 2])
"""

from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
from torch import Tensor

from .checks import check_positive_int

__all__ = ["dequantize", "LogitTransform", "PCAWhitening", "bits_per_dim"]


def dequantize(
    x: Tensor, levels: int = 256, generator: Optional[torch.Generator] = None
) -> Tensor:
    """Uniform dequantization of pixels stored as ``k / (levels - 1)``: returns ``(k + u) / levels``.

    ``u ~ U[0, 1)`` independently per pixel, so the result lies in ``[k / levels, (k + 1) / levels)``
    and has a proper density on ``[0, 1]^D``.  For a model density ``p`` on that cube,
    ``log P(k) >= E_u[log p((k + u) / levels)] - D log(levels)`` (Theis et al., 2016): see
    :func:`bits_per_dim`.  Introduced in chapter 8.

    Args:
        x: pixels in ``[0, 1]`` on the grid ``k / (levels - 1)`` (e.g. MNIST divided by 255).
        levels: number of grey levels (256 for 8-bit images).
        generator: optional torch generator for reproducible noise.

    Raises:
        ValueError: ``x`` is not on the grid ``k / (levels - 1)``.

    >>> import torch
    >>> x = dequantize(torch.tensor([0.0, 1.0]), generator=torch.Generator().manual_seed(0))
    >>> (x * 256).floor().tolist()
    [0.0, 255.0]
    """
    levels = check_positive_int(levels, "levels")
    if levels < 2:
        raise ValueError(f"levels must be at least 2, got {levels}")
    k = torch.round(x * (levels - 1))
    if not torch.allclose(k / (levels - 1), x, atol=1e-4, rtol=0):
        raise ValueError(
            f"x must hold pixels on the grid k / {levels - 1} (e.g. 8-bit images / 255)"
        )
    if bool((k < 0).any()) or bool((k > levels - 1).any()):
        raise ValueError("x must lie in [0, 1]")
    u = torch.rand(x.shape, generator=generator, dtype=x.dtype).to(x.device)
    return (k + u) / levels


class LogitTransform:
    """``y = logit(s)``, ``s = alpha + (1 - 2 alpha) x``: maps ``(0, 1)`` pixels to the real line.

    The MAF paper's preprocessing for MNIST (``alpha = 1e-6``); it keeps pixels at exactly 0 or 1
    finite.  ``forward`` also returns the log-determinant per row,
    ``log|det dy/dx| = sum_i [log(1 - 2 alpha) - log s_i - log(1 - s_i)]``, so that
    ``log p_X(x) = log p_Y(y) + log_det`` converts a logit-space log-likelihood back to pixel
    space.  Introduced in chapter 8.

    Args:
        alpha: margin that keeps ``s`` inside ``(0, 1)``; ``0 <= alpha < 0.5``.

    >>> import torch
    >>> t = LogitTransform(alpha=0.05)
    >>> y, log_det = t(torch.tensor([[0.5, 0.5]], dtype=torch.float64))
    >>> y.tolist(), round(float(log_det), 6)   # slope 0.9 / 0.25 per pixel at the centre
    ([[0.0, 0.0]], 2.561868)
    """

    def __init__(self, alpha: float = 1e-6) -> None:
        if not (isinstance(alpha, (int, float)) and 0.0 <= alpha < 0.5):
            raise ValueError(f"alpha must be a number in [0, 0.5), got {alpha!r}")
        self.alpha = float(alpha)

    def __call__(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        return self.forward(x)

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        """``x (N, D)`` in ``[0, 1]`` -> ``y (N, D)`` and ``log|det dy/dx| (N,)``.

        Raises:
            ValueError: ``x`` holds values outside ``[0, 1]`` (or NaN), where the logit is undefined.
        """
        outside = ~((x >= 0) & (x <= 1))
        if bool(outside.any()):
            raise ValueError(
                f"x must hold pixels in [0, 1]; {int(outside.sum())} values are outside (or NaN), "
                f"e.g. {x[outside][:3].tolist()}"
            )
        s = self.alpha + (1.0 - 2.0 * self.alpha) * x
        y = torch.log(s) - torch.log1p(-s)
        log_det = (math.log1p(-2.0 * self.alpha) - torch.log(s) - torch.log1p(-s)).sum(
            -1
        )
        return y, log_det

    def inverse(self, y: Tensor) -> Tensor:
        """``y (N, D)`` -> pixels ``x (N, D)`` (the sigmoid, then the margin undone)."""
        return (torch.sigmoid(y) - self.alpha) / (1.0 - 2.0 * self.alpha)

    def __repr__(self) -> str:
        return f"LogitTransform(alpha={self.alpha})"


def _eigh_single_thread(matrix: Tensor) -> Tuple[Tensor, Tensor]:
    """``torch.linalg.eigh`` on one thread: for a few hundred features it takes a fraction of a
    second, while the multi-threaded LAPACK routine can slow down a hundredfold on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return torch.linalg.eigh(matrix)
    finally:
        torch.set_num_threads(threads)


def _floating(x: Tensor) -> torch.dtype:
    """The dtype results for ``x`` are returned in: its own if floating, else the default (float32)."""
    return x.dtype if x.is_floating_point() else torch.get_default_dtype()


class PCAWhitening:
    """Projection onto the top ``dim`` principal directions, optionally whitened; fitted on data.

    ``forward(x) = (x - mean) @ U_d / sqrt(lambda_d)`` (without the division if ``whiten=False``),
    ``inverse(z) = z * sqrt(lambda_d) @ U_d.T + mean``: the reconstruction, which lives on the
    ``dim``-dimensional principal subspace.  The fit is exact and deterministic: the eigenvectors
    of the sample covariance (computed in float64), each with its largest entry made positive.

    A density ``p(z)`` on the ``dim`` coordinates becomes a density on all ``D`` features with
    :meth:`full_log_prob`: ``log p(x) = log p(z) + log_det + residual_log_prob(x)``, where the
    discarded directions get an isotropic Gaussian whose variance is the mean discarded
    eigenvalue (probabilistic PCA's maximum-likelihood choice).  Models fitted in PCA spaces of
    different sizes can then be compared in the same ``D``-dimensional space.
    Introduced in chapter 8.

    Args:
        dim: number of principal directions kept, ``1 <= dim <= D``.
        whiten: divide each coordinate by its standard deviation.

    Attributes (after :meth:`fit`): ``mean (D,)``, ``components (D, dim)`` (orthonormal columns),
    ``variances (dim,)``, ``residual_variance`` (float, 0 when ``dim == D``), float64.

    >>> import torch
    >>> x = torch.randn(500, 4, dtype=torch.float64) * torch.tensor([3.0, 2.0, 1.0, 0.5], dtype=torch.float64)
    >>> pca = PCAWhitening(dim=2).fit(x)
    >>> z = pca.forward(x)
    >>> torch.allclose(z.mean(0), torch.zeros(2, dtype=torch.float64), atol=1e-10)
    True
    >>> torch.allclose(z.T @ z / 500, torch.eye(2, dtype=torch.float64), atol=1e-10)   # whitened
    True
    >>> torch.allclose(pca.forward(pca.inverse(z)), z)
    True
    """

    def __init__(self, dim: int, whiten: bool = True) -> None:
        self.dim = check_positive_int(dim, "dim")
        self.whiten = bool(whiten)
        self.mean: Optional[Tensor] = None
        self.components: Optional[Tensor] = None
        self.variances: Optional[Tensor] = None
        self.residual_variance = 0.0

    def fit(self, x: Tensor) -> "PCAWhitening":
        """Fit on ``x (N, D)``; returns ``self``."""
        if x.dim() != 2:
            raise ValueError(f"x must have shape (N, D), got {tuple(x.shape)}")
        n, d_full = x.shape
        if self.dim > d_full:
            raise ValueError(f"dim={self.dim} exceeds the {d_full} features of x")
        if n < 2:
            raise ValueError("x needs at least two rows")
        data = x.detach().to(torch.float64)
        mean = data.mean(0)
        centred = data - mean
        eigenvalues, vectors = _eigh_single_thread(centred.T @ centred / n)
        eigenvalues, vectors = eigenvalues.flip(0).clamp_min(0.0), vectors.flip(1)
        signs = torch.sign(vectors.gather(0, vectors.abs().argmax(0, keepdim=True)))
        vectors = vectors * torch.where(signs == 0, torch.ones_like(signs), signs)
        if self.whiten and bool((eigenvalues[: self.dim] <= 1e-12).any()):
            raise ValueError(
                f"the top {self.dim} principal variances include zeros: whitening needs a smaller dim"
            )
        self.mean = mean
        self.components = vectors[:, : self.dim].contiguous()
        self.variances = eigenvalues[: self.dim].clone()
        rest = eigenvalues[self.dim :]
        self.residual_variance = float(rest.mean()) if rest.numel() else 0.0
        if rest.numel() and self.residual_variance <= 0:
            raise ValueError(
                "the discarded directions have zero variance: use a smaller dim"
            )
        return self

    def _fitted(self) -> Tuple[Tensor, Tensor, Tensor]:
        if self.mean is None or self.components is None or self.variances is None:
            raise RuntimeError("PCAWhitening is not fitted yet: call fit(x) first")
        return self.mean, self.components, self.variances

    def _scale(self) -> Tensor:
        variances = self._fitted()[2]
        return variances.sqrt() if self.whiten else torch.ones_like(variances)

    def forward(self, x: Tensor) -> Tensor:
        """Coordinates ``z (N, dim)`` of ``x (N, D)``, in ``x``'s dtype if floating (integer pixels: the default float dtype)."""
        mean, components, _ = self._fitted()
        z = (
            (x.to(torch.float64) - mean.to(x.device))
            @ components.to(x.device)
            / self._scale().to(x.device)
        )
        return z.to(_floating(x))

    __call__ = forward

    def inverse(self, z: Tensor) -> Tensor:
        """The reconstruction ``x (N, D)`` of coordinates ``z (N, dim)``, in ``z``'s dtype if floating."""
        mean, components, _ = self._fitted()
        x = (z.to(torch.float64) * self._scale().to(z.device)) @ components.T.to(
            z.device
        ) + mean.to(z.device)
        return x.to(_floating(z))

    @property
    def log_det(self) -> float:
        """The log-determinant ``log|det dz/dy|`` of the map from orthonormal principal coordinates ``y`` to ``z``.

        It is ``-sum log sqrt(lambda)`` over the kept eigenvalues when whitening, else 0.
        """
        return float(-self._scale().log().sum())

    def residual_log_prob(self, x: Tensor) -> Tensor:
        """``log N(r; 0, sigma^2 I)`` of the part ``r`` of ``x (N, D)`` outside the kept subspace, ``(N,)``."""
        mean, components, _ = self._fitted()
        d_full = mean.shape[0]
        if self.dim == d_full:
            return torch.zeros(x.shape[0], dtype=_floating(x), device=x.device)
        centred = x.to(torch.float64) - mean.to(x.device)
        inside = centred @ components.to(x.device)
        sq = (centred * centred).sum(-1) - (inside * inside).sum(-1)
        var, m = self.residual_variance, d_full - self.dim
        out = -0.5 * sq.clamp_min(0.0) / var - 0.5 * m * math.log(2 * math.pi * var)
        return out.to(_floating(x))

    def full_log_prob(self, x: Tensor, log_prob_z: Tensor) -> Tensor:
        """Turn ``log p(z)`` of ``z = forward(x)`` into ``log p(x)`` on all ``D`` features, ``(N,)``.

        The change of basis to principal coordinates is orthonormal (log-determinant 0); the kept
        coordinates contribute ``log p(z) + log_det``, the discarded ones an isotropic Gaussian.
        """
        return (
            log_prob_z + self.log_det + self.residual_log_prob(x).to(log_prob_z.dtype)
        )

    def __repr__(self) -> str:
        state = "fitted" if self.mean is not None else "not fitted"
        return f"PCAWhitening(dim={self.dim}, whiten={self.whiten}, {state})"


def bits_per_dim(log_prob: Tensor, dim: int, levels: int = 256) -> Tensor:
    """Bits per pixel of the discrete images from ``log p`` on dequantized pixels in ``[0, 1]^dim``.

    ``-(log p - dim * log(levels)) / (dim * log 2)``: an upper bound on the discrete data's
    code length when ``log p`` is measured on :func:`dequantize`'d pixels (lower is better).
    Introduced in chapter 8.

    >>> import torch
    >>> float(bits_per_dim(torch.tensor(0.0), dim=784))   # the uniform density on the cube
    8.0
    """
    dim = check_positive_int(dim, "dim")
    return -(log_prob - dim * math.log(levels)) / (dim * math.log(2.0))
