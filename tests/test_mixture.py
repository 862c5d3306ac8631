"""The mixture: exact log p(x), the ELBO bound and its gap, posterior, sampling, checkpoints."""

import pytest
import torch

from vmonf_mini import VMoNF
from vmonf_mini.flows import FlowList, realnvp


def _model(flow="realnvp", dim=2, k=3, **kw):
    kw.setdefault("blocks", 2)
    kw.setdefault("hidden", 6)
    model = VMoNF(dim, k, flow=flow, encoder_hidden=(5,), **kw).double()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model.eval()


@pytest.mark.parametrize("flow", ["realnvp", "maf"])
def test_log_prob_is_logsumexp_of_prior_plus_components(flow):
    model = _model(flow, dim=3)
    x = torch.randn(8, 3, dtype=torch.float64)
    comp = model.component_log_prob(x)
    assert comp.shape == (8, 3)
    expected = torch.logsumexp(
        comp + torch.log(torch.tensor(1 / 3, dtype=torch.float64)), dim=1
    )
    torch.testing.assert_close(model.log_prob(x), expected)


def test_mixture_density_integrates_to_one_in_two_dimensions():
    model = _model(k=2)
    grid = torch.linspace(-12, 12, 601, dtype=torch.float64)
    xx, yy = torch.meshgrid(grid, grid, indexing="xy")
    pts = torch.stack([xx.reshape(-1), yy.reshape(-1)], 1)
    with torch.no_grad():
        mass = model.log_prob(pts).exp().sum() * (grid[1] - grid[0]) ** 2
    assert abs(float(mass) - 1.0) < 1e-2


@pytest.mark.parametrize("temperature", [0.05, 0.5, 1.0, 3.0])
def test_elbo_is_below_log_p_and_the_gap_is_the_kl(temperature):
    model = _model(k=4)
    x = torch.randn(50, 2, dtype=torch.float64)
    elbo, log_p = model.elbo(x, temperature), model.log_prob(x)
    assert (elbo <= log_p + 1e-12).all()
    q = model.posterior(x, temperature)
    p = model.exact_posterior(x)
    kl = (q * (q.log() - p.log())).sum(1)
    torch.testing.assert_close(log_p - elbo, kl, atol=1e-10, rtol=1e-8)
    assert (log_p - elbo).max() > 1e-3  # an untrained encoder really is off


def test_elbo_equals_log_p_when_q_is_the_exact_posterior():
    model = _model(k=3)
    x = torch.randn(20, 2, dtype=torch.float64)
    exact = model.exact_posterior(x)
    model.encoder = _Constant(
        exact.log()
    )  # an "encoder" that returns the exact log posterior
    torch.testing.assert_close(model.elbo(x), model.log_prob(x), atol=1e-10, rtol=1e-10)


class _Constant(torch.nn.Module):
    def __init__(self, logits):
        super().__init__()
        self.logits = logits

    def forward(self, x):
        return self.logits


def test_posterior_rows_sum_to_one_and_low_temperature_sharpens():
    model = _model(k=5)
    x = torch.randn(30, 2, dtype=torch.float64)
    q1, q_cold = model.posterior(x, 1.0), model.posterior(x, 0.05)
    torch.testing.assert_close(q1.sum(1), torch.ones(30, dtype=torch.float64))
    assert q_cold.max(1).values.mean() > q1.max(1).values.mean()
    assert torch.equal(model.predict(x), q1.argmax(1))
    assert torch.isfinite(model.posterior(x, 1e-30)).all()  # floored: no overflow


def test_sampling_follows_prior_and_component():
    model = VMoNF(2, 3, blocks=2, prior=[0.7, 0.2, 0.1]).eval()
    x, c = model.sample(4000)
    assert x.shape == (4000, 2) and c.shape == (4000,)
    freq = torch.bincount(c, minlength=3).float() / 4000
    assert (freq - torch.tensor([0.7, 0.2, 0.1])).abs().max() < 0.03
    xs = model.sample_component(2, 10)
    assert xs.shape == (10, 2)


def test_sample_component_draws_from_that_component():
    model = _model(k=3)
    with torch.no_grad():
        model.components.layers[-1].beta[1] += 20.0  # shift component 1 far away
    xs = model.sample_component(1, 200)
    comp = model.component_log_prob(xs)
    assert (comp.argmax(1) == 1).all()


def test_sample_each_component_draws_n_points_from_every_component():
    model = _model(k=3)
    with torch.no_grad():
        for c in range(
            3
        ):  # move the components far apart: each sample's nearest component is its own
            model.components.layers[-1].beta[c] += 20.0 * c
    xs = model.sample_each_component(50)
    assert xs.shape == (3, 50, 2)
    owner = model.component_log_prob(xs.flatten(0, 1)).argmax(1).reshape(3, 50)
    assert (owner == torch.arange(3)[:, None]).all()


def test_learned_prior_is_a_parameter_and_fixed_prior_is_a_buffer():
    learned = VMoNF(2, 3, prior="learned", blocks=1)
    assert any(n == "prior_logits" for n, _ in learned.named_parameters())
    fixed = VMoNF(2, 3, blocks=1)
    assert "prior_logits" in dict(fixed.named_buffers())
    torch.testing.assert_close(fixed.log_prior().exp(), torch.full((3,), 1 / 3))


@pytest.mark.parametrize(
    "flow,dtype", [("realnvp", torch.float64), ("maf", torch.float32)]
)
def test_save_load_round_trip_is_exact(tmp_path, flow, dtype):
    model = _model(flow, dim=3, prior="learned").to(dtype)
    path = tmp_path / "model.pt"
    model.save(path)
    loaded = VMoNF.load(path).eval()
    x = torch.randn(7, 3, dtype=dtype)
    assert torch.equal(loaded.log_prob(x), model.log_prob(x))
    assert torch.equal(loaded.posterior(x), model.posterior(x))
    assert loaded.config == model.config
    assert [p.name for p in tmp_path.iterdir()] == [
        "model.pt"
    ]  # no temporary left behind


def test_list_of_independent_flows_is_accepted_as_components():
    flows = [realnvp(2, k=1, blocks=2) for _ in range(3)]
    model = VMoNF(2, 3, components=flows).eval()
    x = torch.randn(6, 2)
    assert isinstance(model.components, FlowList)
    assert model.component_log_prob(x).shape == (6, 3)
    xs, c = model.sample(12)
    assert xs.shape == (12, 2)


def test_normflows_models_work_as_components():
    nf = pytest.importorskip("normflows")
    flows = []
    for _ in range(2):
        layers = [
            nf.flows.MaskedAffineFlow(
                torch.tensor([1.0, 0.0]),
                nf.nets.MLP([2, 8, 2], init_zeros=True),
                nf.nets.MLP([2, 8, 2], init_zeros=True),
            )
        ]
        flows.append(nf.NormalizingFlow(nf.distributions.DiagGaussian(2), layers))
    model = VMoNF(2, 2, components=flows).eval()
    x = torch.randn(5, 2)
    expected = (
        torch.distributions.Normal(0.0, 1.0).log_prob(x).sum(1)
    )  # zero-initialised nets: identity
    torch.testing.assert_close(
        model.component_log_prob(x),
        torch.stack([expected, expected], 1),
        atol=1e-5,
        rtol=1e-5,
    )
    xs, c = model.sample(7)
    assert xs.shape == (7, 2)
