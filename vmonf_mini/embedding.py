"""A small map of images in which each digit is one compact cluster: PCA, then UMAP (chapter 8).

Whitened PCA keeps the directions in which pixels vary most; on MNIST the ten digits overlap
there, and a Gaussian mixture on 10 principal components matches only about 0.6 of all ten
digits to clusters. UMAP (McInnes et al., 2018) keeps instead which images are near which:
it builds a graph of each image's nearest neighbours and lays it out in a few dimensions, so
that images joined by chains of close neighbours (one digit written in many ways) end up in
one compact blob. The neighbours are found on the top principal components, which is faster
than on all pixels and drops the pixel noise. This is the representation step of N2D
(McConville et al., 2020) without its autoencoder.

:class:`ImageEmbedding` fits the PCA and UMAP on training images and maps new images into the
same coordinates (standardised, float32): the space in which
:func:`vmonf_mini.recipes.cluster_images` fits its VMoNF. UMAP comes from ``umap-learn``,
imported on first use (numba compiles its kernels then: about 20 s, once per process). With a
``seed`` UMAP is reproducible and runs on one core.

Example:
    >>> from vmonf_mini import data
    >>> x, y = data.digits()
    >>> embedding = ImageEmbedding(dim=2, pca_dim=20, n_neighbors=10, seed=0)
    >>> z = embedding.fit_transform(x)
    >>> z.shape, z.dtype
    (torch.Size([901, 2]), torch.float32)
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
import torch
from torch import Tensor

from .checks import as_data, check_positive_int

__all__ = ["ImageEmbedding"]


class ImageEmbedding:
    """Images ``(N, D)`` -> ``dim`` UMAP coordinates of their top ``pca_dim`` principal components.

    Args:
        dim: the embedding's dimension (UMAP's ``n_components``), at least 1.
        pca_dim: principal components UMAP's neighbours are found on (capped at ``D`` and at
            ``N - 1``); PCA centred, not whitened.
        n_neighbors: UMAP's ``n_neighbors``, at least 2: how far along the neighbour graph one
            cluster reaches (larger: fewer, larger clusters).
        seed: UMAP's ``random_state`` (reproducible, one core); ``None``: not seeded, UMAP uses
            every core and the result varies from run to run.

    After :meth:`fit`: ``pca`` and ``umap`` (the fitted scikit-learn PCA and ``umap.UMAP``),
    ``mean`` and ``scale`` (of the embedding, which :meth:`transform` removes) and
    ``n_features``.
    """

    def __init__(
        self,
        dim: int = 10,
        pca_dim: int = 50,
        n_neighbors: int = 30,
        seed: Optional[int] = 0,
    ) -> None:
        self.dim = check_positive_int(dim, "dim")
        self.pca_dim = check_positive_int(pca_dim, "pca_dim")
        self.n_neighbors = check_positive_int(n_neighbors, "n_neighbors")
        if self.n_neighbors < 2:
            raise ValueError(f"n_neighbors must be at least 2, got {n_neighbors}")
        if seed is not None and (
            isinstance(seed, bool)
            or not isinstance(seed, (int, np.integer))
            or seed < 0
        ):
            raise ValueError(f"seed must be None or an integer >= 0, got {seed!r}")
        self.seed = None if seed is None else int(seed)
        self.pca: Any = None
        self.umap: Any = None
        self.mean: Optional[np.ndarray] = None
        self.scale: Optional[np.ndarray] = None
        self.n_features = 0

    def fit(self, pixels: Any) -> "ImageEmbedding":
        """Fit the PCA and UMAP to ``pixels (N, D)``; returns ``self``.

        Raises:
            ValueError: fewer images than ``n_neighbors + 1`` or than ``dim + 2`` (UMAP's
                spectral layout needs them), or non-finite pixels.
        """
        from sklearn.decomposition import PCA

        x = as_data(pixels, name="pixels", dtype=torch.float64).cpu().numpy()
        n, d = x.shape
        least = max(self.n_neighbors + 1, self.dim + 2)
        if n < least:
            raise ValueError(
                f"an embedding of dim={self.dim} with n_neighbors={self.n_neighbors} needs at "
                f"least {least} images, got {n}"
            )
        umap = _umap_module()
        components = max(1, min(self.pca_dim, d, n - 1))
        self.pca = PCA(n_components=components, svd_solver="full").fit(x)
        self.umap = umap.UMAP(
            n_components=self.dim,
            n_neighbors=self.n_neighbors,
            min_dist=0.0,
            random_state=self.seed,
            n_jobs=1 if self.seed is not None else -1,
        )
        z = self.umap.fit_transform(self.pca.transform(x))
        self.mean = z.mean(0)
        self.scale = z.std(0) + 1e-12
        self.n_features = d
        return self

    def transform(self, pixels: Any) -> Tensor:
        """The standardised embedding (float32 ``(N, dim)``) of new images.

        UMAP places each new image near its neighbours among the fitted images
        (``umap.UMAP.transform``); for the fitted images themselves, :meth:`fit_transform`
        returns the layout that :meth:`fit` found (which ``transform`` reproduces only
        approximately).
        """
        if self.umap is None:
            raise RuntimeError("call fit() before transform()")
        x = as_data(pixels, dim=self.n_features, name="pixels", dtype=torch.float64)
        z = self.umap.transform(self.pca.transform(x.cpu().numpy()))
        return self._standardised(z)

    def fit_transform(self, pixels: Any) -> Tensor:
        """:meth:`fit`, then the fitted images' standardised embedding (float32 ``(N, dim)``)."""
        self.fit(pixels)
        return self._standardised(self.umap.embedding_)

    def _standardised(self, z: np.ndarray) -> Tensor:
        return torch.as_tensor((z - self.mean) / self.scale, dtype=torch.float32)


def _umap_module() -> Any:
    """``umap`` (umap-learn), with a clear error when it is missing."""
    try:
        import umap
    except ImportError as err:  # pragma: no cover - a dependency of the package
        raise ImportError(
            "the image embedding needs umap-learn: pip install umap-learn"
        ) from err
    return umap
