"""Coupling, batch norm, MADE and MAF: invertible, exact log-determinants, batched == looped."""

import pytest
import torch

from flow_harness import check_flow, jacobian_log_det
from vmonf_mini.flows import (
    MADE,
    AffineCoupling,
    BatchNormFlow,
    FlowList,
    MAFLayer,
    StackedFlow,
    alternating_masks,
    maf,
    realnvp,
)


def _randomize(module: torch.nn.Module, scale: float = 0.5) -> torch.nn.Module:
    """Move every parameter away from its initialisation so identities cannot hide bugs."""
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn_like(p))
    return module


@pytest.mark.parametrize("dim", [2, 3, 5])
def test_coupling_inverts_with_exact_log_det(dim):
    mask = alternating_masks(dim, 1)[0]
    check_flow(_randomize(AffineCoupling(dim, mask, hidden=(7, 5), k=3)), dim, k=3)


@pytest.mark.parametrize(
    "mask", [[1.0, 1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
)
def test_coupling_with_any_mask_equals_the_dense_formula(mask):
    """The nets read only the kept features and compute s, t only for the free ones (slices
    where the indices are evenly spaced, lists where not); the result must be the textbook
    ``z = m*x + (1-m) * (x - t(m*x)) * exp(-s(m*x))`` with every feature computed."""
    m = torch.tensor(mask, dtype=torch.float64)
    dim = len(mask)
    layer = _randomize(AffineCoupling(dim, m, hidden=(6, 5), k=3)).double()
    x = torch.randn(3, 7, dim, dtype=torch.float64)
    s, t = layer.s_net(x * m), layer.t_net(x * m)
    z, log_det = layer(x)
    torch.testing.assert_close(z, m * x + (1 - m) * (x - t) * torch.exp(-s))
    torch.testing.assert_close(log_det, -(s * (1 - m)).sum(-1))
    torch.testing.assert_close(layer.inverse(z), x)
    check_flow(layer, dim, k=3)


def test_coupling_rejects_masks_that_are_not_zeros_and_ones():
    with pytest.raises(ValueError, match="only zeros and ones"):
        AffineCoupling(2, torch.tensor([0.5, 1.0]))
    with pytest.raises(ValueError, match="meta"):
        AffineCoupling(2, torch.ones(2, device="meta"))


def test_coupling_loaded_mask_rewires_the_layer():
    """The kept/free split is derived from the mask; loading another mask must follow it."""
    source = _randomize(AffineCoupling(3, torch.tensor([0.0, 1.0, 1.0]), k=2)).double()
    target = AffineCoupling(3, torch.tensor([1.0, 0.0, 1.0]), k=2).double()
    target.load_state_dict(source.state_dict())
    x = torch.randn(6, 3, dtype=torch.float64)
    torch.testing.assert_close(target(x), source(x))
    assert "free_index" not in target.state_dict()


def test_coupling_log_det_counts_only_transformed_features():
    """Defect 2 of the original code: s summed over all features. Here s is nonzero on the
    conditioning features too, yet only the transformed ones may enter log|det|."""
    dim = 4
    layer = _randomize(
        AffineCoupling(dim, alternating_masks(dim, 1)[0], hidden=8, k=2)
    ).double()
    x = torch.randn(5, dim, dtype=torch.float64)
    raw_s = layer.s_net(x * layer.mask)
    assert (
        raw_s * layer.mask
    ).abs().sum() > 0  # the network does output scales on masked features
    _, log_det = layer(x)
    torch.testing.assert_close(log_det, -(raw_s * (1 - layer.mask)).sum(-1))
    torch.testing.assert_close(log_det[1], jacobian_log_det(layer, x, 1))
    assert not torch.allclose(log_det, -raw_s.sum(-1))


def test_batchnorm_flow_eval_inverts_and_training_uses_batch_statistics():
    bn = BatchNormFlow(3, k=2)
    x = 3.0 + 2.0 * torch.randn(200, 3, dtype=torch.float64)
    bn.double().train()
    z, log_det = bn(x)
    torch.testing.assert_close(
        z.mean(1), torch.zeros(2, 3, dtype=torch.float64), atol=1e-9, rtol=0
    )
    batch_var = x.var(0, unbiased=False)
    torch.testing.assert_close(
        z.var(1, unbiased=False), (batch_var / (batch_var + bn.eps)).expand(2, 3)
    )
    torch.testing.assert_close(
        log_det, (-0.5 * torch.log(batch_var + bn.eps)).sum().expand(2, 200)
    )
    # the running averages moved a tenth of the way from (0, 1) towards the batch's mean and variance
    torch.testing.assert_close(bn.running_mean, (0.1 * x.mean(0)).expand(2, 1, 3))
    torch.testing.assert_close(bn.running_var, (0.9 + 0.1 * batch_var).expand(2, 1, 3))
    _randomize(bn)
    check_flow(bn, 3, k=2)


@pytest.mark.parametrize("dim", [1, 2, 5])
def test_made_is_autoregressive(dim):
    made = _randomize(
        MADE(dim, hidden=(16, 16), k=2, order=list(reversed(range(dim))))
    ).double()
    x = torch.randn(1, dim, dtype=torch.float64, requires_grad=True)
    mu, a = made(x)
    # output of feature i (generated at position p_i) may depend only on features generated earlier
    position = {f: j for j, f in enumerate(made.order.tolist())}
    for out in (mu, a):
        for i in range(dim):
            (grad,) = torch.autograd.grad(out[1, 0, i], x, retain_graph=True)
            for j in range(dim):
                if position[j] >= position[i]:
                    assert grad[0, j] == 0, f"output {i} depends on input {j}"


@pytest.mark.parametrize("dim", [1, 3, 6])
def test_maf_layer_inverts_with_exact_log_det(dim):
    check_flow(
        _randomize(MAFLayer(dim, hidden=12, k=3, order=list(reversed(range(dim))))),
        dim,
        k=3,
    )


@pytest.mark.parametrize("builder,dim", [(realnvp, 3), (maf, 4)])
def test_whole_flows_invert_with_exact_log_det(builder, dim):
    flow = builder(dim, k=2, blocks=3, hidden=10)
    _randomize(flow, 0.2)
    check_flow(flow, dim, k=2)


def test_log_det_stays_finite_for_huge_inputs():
    flow = _randomize(maf(3, k=2, blocks=2, hidden=8), 2.0).eval()
    x = torch.tensor([[1e6, -1e6, 1e5], [1e-8, 0.0, -1e-8]])
    assert torch.isfinite(flow(x)[1]).all()


@pytest.mark.parametrize("builder", [realnvp, maf])
def test_batched_components_equal_the_same_flows_one_by_one(builder):
    """K stacked components give the log-densities of K separate flows holding the same weights."""
    k, dim = 4, 3
    stacked = _randomize(builder(dim, k=k, blocks=2, hidden=6), 0.3).double().eval()
    singles = [builder(dim, k=1, blocks=2, hidden=6).double().eval() for _ in range(k)]
    for c, single in enumerate(singles):
        single.load_state_dict(_slice_state(stacked, c))
    x = torch.randn(9, dim, dtype=torch.float64)
    looped = FlowList(singles).log_prob(x)
    torch.testing.assert_close(stacked.log_prob(x), looped, atol=1e-10, rtol=1e-10)


def _slice_state(stacked: StackedFlow, c: int) -> dict:
    """Component c's parameters and running statistics (leading K axis), shared buffers as they are."""
    out = {}
    for name, t in stacked.state_dict().items():
        stacked_axis = name.endswith(
            ("weight", "bias", "log_gamma", "beta", "running_mean", "running_var")
        )
        out[name] = t[c : c + 1] if stacked_axis else t
    return out


def test_sample_shapes_and_component_choice():
    flow = realnvp(2, k=3, blocks=2).eval()
    c = torch.tensor([0, 2, 2, 1])
    x = flow.sample(c)
    assert x.shape == (4, 2) and torch.isfinite(x).all()


def test_realnvp_rejects_one_dimension_and_bad_hidden():
    with pytest.raises(ValueError, match="dim >= 2"):
        realnvp(1)
    with pytest.raises(ValueError, match="hidden"):
        realnvp(2, hidden=0)
    with pytest.raises(ValueError, match="permutation"):
        MADE(3, order=[0, 0, 1])
