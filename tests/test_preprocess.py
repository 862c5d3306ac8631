"""vmonf_mini.preprocess: invertibility and log-determinant bookkeeping, in float64 (chapter 8)."""

from __future__ import annotations

import math

import pytest
import torch

from vmonf_mini.preprocess import LogitTransform, PCAWhitening, bits_per_dim, dequantize

F64 = torch.float64


def pixels(n: int = 50, d: int = 6, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, d), generator=g).to(F64) / 255.0


# ---------------------------------------------------------------- dequantize
def test_dequantize_stays_in_its_bin_and_is_reproducible():
    x = pixels()
    a = dequantize(x, generator=torch.Generator().manual_seed(1))
    b = dequantize(x, generator=torch.Generator().manual_seed(1))
    assert a.dtype == F64 and a.shape == x.shape
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(
        (a * 256).floor(), torch.round(x * 255)
    )  # pixel k lands in [k, k+1) / 256
    assert bool(((a >= 0) & (a < 1)).all())


def test_dequantize_noise_is_uniform_within_bins():
    x = torch.zeros(20000, 1, dtype=F64)
    u = dequantize(x, generator=torch.Generator().manual_seed(0)) * 256
    assert abs(float(u.mean()) - 0.5) < 0.01 and abs(float(u.var()) - 1 / 12) < 0.005


def test_dequantize_rejects_off_grid_or_out_of_range_pixels():
    with pytest.raises(ValueError, match="grid"):
        dequantize(torch.tensor([0.5 / 255]))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        dequantize(torch.tensor([2.0]))
    with pytest.raises(ValueError, match="levels"):
        dequantize(torch.tensor([0.0]), levels=1)


# ---------------------------------------------------------------- logit
@pytest.mark.parametrize("alpha", [0.0, 1e-6, 0.05])
def test_logit_inverts_in_float64(alpha):
    x = dequantize(pixels(), generator=torch.Generator().manual_seed(0))
    t = LogitTransform(alpha)
    y, _ = t(x)
    torch.testing.assert_close(t.inverse(y), x, atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(t(t.inverse(y))[0], y, atol=1e-8, rtol=1e-8)


@pytest.mark.parametrize("alpha", [1e-6, 0.05])
def test_logit_log_det_equals_autograd(alpha):
    x = dequantize(pixels(n=4, d=5), generator=torch.Generator().manual_seed(0))
    t = LogitTransform(alpha)
    _, log_det = t(x)
    for i, row in enumerate(x):
        jac = torch.autograd.functional.jacobian(lambda v: t(v[None])[0][0], row)
        torch.testing.assert_close(
            log_det[i], torch.linalg.slogdet(jac)[1], atol=1e-9, rtol=1e-9
        )


def test_logit_change_of_variables_gives_a_normalised_density_in_pixel_space():
    """A standard logistic density in logit space (alpha = 0) is the uniform density on (0, 1): log p_X = 0."""
    t = LogitTransform(alpha=0.0)
    x = torch.rand(100, 3, dtype=F64, generator=torch.Generator().manual_seed(0)).clamp(
        1e-6, 1 - 1e-6
    )
    y, log_det = t(x)
    logistic = (-y - 2 * torch.nn.functional.softplus(-y)).sum(-1)
    torch.testing.assert_close(
        logistic + log_det, torch.zeros(100, dtype=F64), atol=1e-9, rtol=0
    )


def test_logit_rejects_bad_alpha():
    for alpha in (-0.1, 0.5, "a"):
        with pytest.raises(ValueError):
            LogitTransform(alpha)


# ---------------------------------------------------------------- PCA
def correlated(n: int = 400, d: int = 6, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(d, d, generator=g, dtype=F64)
    return torch.randn(n, d, generator=g, dtype=F64) @ mix + torch.arange(d, dtype=F64)


@pytest.mark.parametrize("whiten", [True, False])
def test_pca_forward_inverse(whiten):
    x = correlated()
    pca = PCAWhitening(dim=3, whiten=whiten).fit(x)
    z = pca.forward(x)
    assert z.shape == (400, 3) and z.dtype == F64
    torch.testing.assert_close(pca.forward(pca.inverse(z)), z, atol=1e-10, rtol=1e-10)
    cov = z.T @ z / 400
    if whiten:
        torch.testing.assert_close(cov, torch.eye(3, dtype=F64), atol=1e-10, rtol=0)
    else:
        torch.testing.assert_close(cov, torch.diag(pca.variances), atol=1e-10, rtol=0)


def test_pca_with_all_dimensions_is_a_bijection():
    x = correlated()
    pca = PCAWhitening(dim=6).fit(x)
    torch.testing.assert_close(pca.inverse(pca.forward(x)), x, atol=1e-10, rtol=1e-10)
    assert pca.residual_variance == 0.0


def test_pca_log_det_equals_autograd_on_the_full_space():
    x = correlated()
    pca = PCAWhitening(dim=6).fit(x)
    jac = torch.autograd.functional.jacobian(lambda v: pca.forward(v[None])[0], x[0])
    assert math.isclose(
        torch.linalg.slogdet(jac)[1].item(), pca.log_det, rel_tol=0, abs_tol=1e-9
    )


@pytest.mark.parametrize("dim", [2, 4, 6])
def test_full_log_prob_equals_the_probabilistic_pca_gaussian(dim):
    """Standard normal on the whitened coordinates + isotropic residual = N(mean, U diag(lambda, sigma^2) U^T)."""
    x = correlated()
    pca = PCAWhitening(dim=dim).fit(x)
    z = pca.forward(x)
    log_pz = -0.5 * (z * z).sum(-1) - 0.5 * dim * math.log(2 * math.pi)
    ours = pca.full_log_prob(x, log_pz)
    centred = x - pca.mean
    cov = centred.T @ centred / x.shape[0]
    values, vectors = torch.linalg.eigh(cov)
    values, vectors = values.flip(0), vectors.flip(1)
    values[dim:] = values[dim:].mean() if dim < 6 else values[dim:]
    model_cov = vectors @ torch.diag(values) @ vectors.T
    reference = torch.distributions.MultivariateNormal(
        pca.mean, covariance_matrix=model_cov
    ).log_prob(x)
    torch.testing.assert_close(ours, reference, atol=1e-8, rtol=1e-8)


def test_pca_is_deterministic_and_dtype_preserving():
    x = correlated()
    a, b = PCAWhitening(3).fit(x), PCAWhitening(3).fit(x.flip(0))
    torch.testing.assert_close(a.components, b.components, atol=1e-10, rtol=0)
    z32 = a.forward(x.float())
    assert z32.dtype == torch.float32 and a.inverse(z32).dtype == torch.float32


def test_pca_errors():
    with pytest.raises(RuntimeError, match="fit"):
        PCAWhitening(2).forward(torch.zeros(3, 4))
    with pytest.raises(ValueError, match="exceeds"):
        PCAWhitening(5).fit(torch.randn(10, 4))
    with pytest.raises(ValueError):
        PCAWhitening(0)
    flat = torch.zeros(10, 3, dtype=F64)
    flat[:, 0] = torch.arange(10, dtype=F64)
    with pytest.raises(ValueError, match="zero"):
        PCAWhitening(2).fit(flat)


def test_bits_per_dim():
    assert float(bits_per_dim(torch.tensor(0.0), 10)) == 8.0
    # a density twice the uniform one on every pixel saves one bit per pixel
    assert math.isclose(float(bits_per_dim(torch.tensor(10 * math.log(2.0)), 10)), 7.0)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int64])
def test_pca_of_integer_pixels_computes_and_returns_floating_point(dtype):
    gen = torch.Generator().manual_seed(0)
    pixels = torch.randint(0, 256, (200, 6), generator=gen).to(dtype)
    pca = PCAWhitening(dim=3).fit(pixels)
    as_float = PCAWhitening(dim=3).fit(pixels.to(torch.float64))
    z = pca.forward(pixels)
    assert z.dtype == torch.get_default_dtype()
    torch.testing.assert_close(
        z, as_float.forward(pixels.to(torch.float64)).to(z.dtype)
    )
    assert bool(
        (z < 0).any()
    )  # negative coordinates survive (uint8 would wrap them to 255)
    residual = pca.residual_log_prob(pixels)
    assert residual.dtype == torch.get_default_dtype()
    torch.testing.assert_close(
        residual,
        as_float.residual_log_prob(pixels.to(torch.float64)).to(residual.dtype),
    )
    back = pca.inverse(torch.zeros(2, 3, dtype=torch.int64))
    assert back.dtype == torch.get_default_dtype()
    torch.testing.assert_close(back, as_float.mean.expand(2, 6).to(back.dtype))


@pytest.mark.parametrize("bad", [-0.01, 1.01, float("nan"), 255.0])
def test_logit_refuses_values_outside_zero_one(bad):
    x = torch.tensor([[0.5, bad]], dtype=torch.float64)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        LogitTransform()(x)
