"""The paper's data sets: pinwheel, two circles, MNIST digits, and scikit-learn's 8x8 digits (chapters 6-8).

Every loader returns ``x`` as float32 ``(N, D)`` and ``y`` as int64 ``(N,)``.

>>> x, y = pinwheel(n_per_class=10, seed=0)
>>> x.shape, x.dtype, y.shape, y.dtype
(torch.Size([50, 2]), torch.float32, torch.Size([50]), torch.int64)
"""

from __future__ import annotations

import os
from typing import Iterable, Optional, Tuple, Union

import numpy as np
import torch
from torch import Tensor

from .checks import check_positive_int
from .mnist import load_mnist

__all__ = ["pinwheel", "two_circles", "digits", "mnist"]

Dataset = Tuple[Tensor, Tensor]


def _as_dataset(x: np.ndarray, y: np.ndarray) -> Dataset:
    return torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(
        y, dtype=torch.int64
    )


def _digit_list(digits: Iterable[int]) -> list:
    chosen = sorted({int(d) for d in digits})
    if not chosen or any(d < 0 or d > 9 for d in chosen):
        raise ValueError(
            f"digits must be a non-empty selection of 0..9, got {list(digits)!r}"
        )
    return chosen


def pinwheel(
    n_per_class: int = 512,
    n_classes: int = 5,
    radial_std: float = 0.3,
    tangential_std: float = 0.05,
    rate: float = 0.25,
    seed: int = 0,
) -> Dataset:
    """The pinwheel of Johnson et al. (2016), with the paper's defaults: 5 wings of 512 points.

    Each point starts at ``(r, t)`` with ``r ~ N(1, radial_std)`` and ``t ~ N(0, tangential_std)``
    and is rotated by its wing's angle plus ``rate * exp(r)``. Points are shuffled.
    """
    n_per_class = check_positive_int(n_per_class, "n_per_class")
    n_classes = check_positive_int(n_classes, "n_classes")
    rng = np.random.default_rng(seed)
    angles0 = np.linspace(0, 2 * np.pi, n_classes, endpoint=False)
    feats = rng.standard_normal((n_classes * n_per_class, 2)) * np.array(
        [radial_std, tangential_std]
    )
    feats[:, 0] += 1.0
    labels = np.repeat(np.arange(n_classes), n_per_class)
    angles = angles0[labels] + rate * np.exp(feats[:, 0])
    cos, sin = np.cos(angles), np.sin(angles)
    points = np.stack(
        [feats[:, 0] * cos + feats[:, 1] * sin, -feats[:, 0] * sin + feats[:, 1] * cos],
        axis=1,
    )
    order = rng.permutation(len(labels))
    return _as_dataset(points[order], labels[order])


def two_circles(
    n_per_circle: int = 512,
    radii: Tuple[float, float] = (0.4, 0.8),
    noise: float = 0.005,
    seed: int = 0,
) -> Dataset:
    """Two concentric circles, the thesis generator (not scikit-learn's): label ``i`` has radius ``radii[i]``.

    Radii carry Gaussian noise of standard deviation ``noise``; angles are uniform. Shuffled.
    """
    n_per_circle = check_positive_int(n_per_circle, "n_per_circle")
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(radii)), n_per_circle)
    r = np.asarray(radii, dtype=float)[labels] + noise * rng.standard_normal(
        labels.size
    )
    theta = rng.uniform(0, 2 * np.pi, labels.size)
    points = np.stack([r * np.cos(theta), r * np.sin(theta)], axis=1)
    order = rng.permutation(labels.size)
    return _as_dataset(points[order], labels[order])


def digits(digits: Iterable[int] = range(5)) -> Dataset:
    """scikit-learn's 8x8 handwritten digits (shipped with scikit-learn, no download), pixels in [0, 1]."""
    from sklearn.datasets import load_digits

    chosen = _digit_list(digits)
    bunch = load_digits()
    keep = np.isin(bunch.target, chosen)
    return _as_dataset(bunch.data[keep] / 16.0, bunch.target[keep])


def mnist(
    digits: Iterable[int] = range(5),
    split: str = "train",
    root: Union[str, os.PathLike, None] = None,
    download: bool = True,
    mirrors: Optional[Iterable[str]] = None,
    timeout: float = 30.0,
) -> Dataset:
    """MNIST 28x28 digits as ``x`` float32 ``(N, 784)`` (pixels / 255 in [0, 1]) and ``y`` int64, in file order.

    ``split`` is "train" (60,000 images, 30,596 of digits 0-4) or "test" (10,000; 5,139 of 0-4).
    The four original ``.gz`` files are cached in the folder ``root`` (a str or path; default
    :func:`vmonf_mini.mnist.default_root`: ``$VMONF_DATA_DIR/mnist``, else ``data/mnist`` in a
    checkout, else ``~/.cache/vmonf_mini/mnist``) and checked against their SHA-256; missing or
    corrupt files are downloaded from ``mirrors`` (default :data:`vmonf_mini.mnist.DEFAULT_MIRRORS`,
    tried in order) unless ``download=False``. Raises :class:`vmonf_mini.mnist.MNISTUnavailable`
    (a ``RuntimeError``) when no valid copy can be had: catch it to fall back to :func:`digits`.
    See ``data/README.md`` to fill the cache offline.
    """
    return load_mnist(digits, split, root, download, mirrors, timeout)
