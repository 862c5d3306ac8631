"""vmonf_mini.embedding: PCA then UMAP, reproducible by its seed, with clear errors."""

import numpy as np
import pytest
import torch

import vmonf_mini as vm
from vmonf_mini.embedding import ImageEmbedding


@pytest.fixture(scope="module")
def digits():
    x, y = vm.data.digits(range(5))
    return x, y


def test_the_digits_are_compact_clusters_of_the_map(digits):
    """On the 8x8 digits 0-4 a k-means of the 2-D map matches the digits (0.9 or more)."""
    from sklearn.cluster import KMeans

    x, y = digits
    z = ImageEmbedding(dim=2, pca_dim=20, n_neighbors=15, seed=0).fit_transform(x)
    assert z.shape == (len(x), 2) and z.dtype == torch.float32
    torch.testing.assert_close(z.mean(0), torch.zeros(2), atol=1e-4, rtol=0)
    c = KMeans(5, n_init=10, random_state=0).fit_predict(z.numpy())
    assert vm.metrics.cluster_accuracy(y, c) > 0.9


def test_a_seed_makes_the_map_reproducible_and_new_images_land_near_their_own(digits):
    x, y = digits
    a = ImageEmbedding(dim=2, pca_dim=20, n_neighbors=15, seed=3)
    za = a.fit_transform(x[:700])
    zb = ImageEmbedding(dim=2, pca_dim=20, n_neighbors=15, seed=3).fit_transform(
        x[:700]
    )
    assert torch.equal(za, zb)
    new = a.transform(x[700:])
    centres = np.stack([za[y[:700] == d].mean(0).numpy() for d in range(5)])
    nearest = np.linalg.norm(new.numpy()[:, None] - centres[None], axis=2).argmin(1)
    assert (nearest == y[700:].numpy()).mean() > 0.85


def test_bad_settings_and_inputs_say_what_is_wrong(digits):
    x, _ = digits
    with pytest.raises(ValueError, match="seed must be None or an integer >= 0"):
        ImageEmbedding(seed=-1)
    with pytest.raises(ValueError, match="n_neighbors must be at least 2"):
        ImageEmbedding(n_neighbors=1)
    with pytest.raises(ValueError, match="dim must be a positive integer"):
        ImageEmbedding(dim=0)
    with pytest.raises(
        ValueError, match="n_neighbors=30 needs at least 31 images, got 20"
    ):
        ImageEmbedding().fit(x[:20])
    with pytest.raises(RuntimeError, match=r"call fit\(\) before transform\(\)"):
        ImageEmbedding().transform(x[:5])
    fitted = ImageEmbedding(dim=2, pca_dim=10, n_neighbors=5, seed=0).fit(x[:100])
    with pytest.raises(ValueError, match=r"pixels must have shape \(N, 64\)"):
        fitted.transform(x[:5, :10])
