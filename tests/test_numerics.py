"""Numerical safety: extreme temperatures and logits, extreme input scales, degenerate data, clipping."""

import pytest
import torch

from vmonf_mini import VMoNF, fit
from vmonf_mini.data import pinwheel
from vmonf_mini.flows import maf, realnvp


def _model(flow="realnvp", k=3, dim=2, **kw):
    return VMoNF(dim, k, flow=flow, blocks=2, hidden=8, encoder_hidden=(8,), **kw)


def _huge_logits(model, scale):
    """Make the encoder's logits enormous (its last layer scaled by ``scale``)."""
    with torch.no_grad():
        last = model.encoder[-1]
        last.weight.mul_(scale)
        last.bias.copy_(scale * torch.linspace(-1, 1, last.bias.numel()))
    return model


@pytest.mark.parametrize("temperature", [1e-30, 1e-6, 1e-3, 1.0])
@pytest.mark.parametrize("scale", [1.0, 1e6, 1e30])
def test_tiny_temperature_and_huge_logits_keep_posterior_and_elbo_finite(
    temperature, scale
):
    model = _huge_logits(_model().eval(), scale)
    x = torch.randn(64, 2, requires_grad=False)
    logits = model.encoder(x)
    assert torch.isfinite(logits).all() and logits.abs().max() > 0.1 * scale
    q = model.posterior(x, temperature)
    assert torch.isfinite(q).all()
    torch.testing.assert_close(q.sum(1), torch.ones(64))
    elbo = model.elbo(x, temperature)
    assert torch.isfinite(elbo).all()
    assert (
        elbo <= model.log_prob(x) + 1e-3 * model.log_prob(x).abs().clamp_min(1)
    ).all()
    # and training through it gives finite gradients
    model.train()
    (-model.elbo(x, temperature).mean()).backward()
    assert all(
        torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None
    )


@pytest.mark.parametrize("builder", [realnvp, maf])
@pytest.mark.parametrize("scale", [1e-6, 1.0, 1e6])
@pytest.mark.parametrize("training", [False, True])
def test_log_dets_and_densities_stay_finite_at_extreme_input_scales(
    builder, scale, training
):
    flow = builder(3, k=2, blocks=3, hidden=8).train(training)
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.5 * torch.randn_like(p))
    x = scale * torch.randn(32, 3)
    z, log_det = flow(x)
    assert torch.isfinite(z).all() and torch.isfinite(log_det).all()
    assert torch.isfinite(flow.log_prob(x)).all()


@pytest.mark.parametrize("flow", ["realnvp", "maf"])
def test_duplicated_points_train_without_error(flow):
    x, _ = pinwheel(n_per_class=8, seed=0)
    x = x.repeat(8, 1)  # every point eight times
    model = _model(flow, k=5)
    history = fit(model, x, epochs=2, batch_size=64, lr=3e-3, seed=0, progress=False)
    assert all(torch.isfinite(torch.tensor(history.loss)))
    with torch.no_grad():
        assert torch.isfinite(model.log_prob(x)).all()


def test_a_batch_of_identical_points_keeps_batch_norm_finite():
    """Zero batch variance: batch norm's epsilon keeps the log-determinant finite."""
    model = _model(k=2).train()
    x = torch.ones(16, 2)
    elbo = model.elbo(x)
    assert torch.isfinite(elbo).all()
    (-elbo.mean()).backward()
    assert all(
        torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None
    )


def test_a_single_component_has_q_equal_to_one_and_elbo_equal_to_log_p():
    model = _model(k=1).double()
    x = torch.randn(20, 2, dtype=torch.float64)
    fit(model, x, epochs=2, batch_size=10, seed=0, progress=False)
    with torch.no_grad():
        torch.testing.assert_close(
            model.posterior(x), torch.ones(20, 1, dtype=torch.float64)
        )
        torch.testing.assert_close(model.elbo(x), model.log_prob(x))
        assert (model.predict(x) == 0).all()


def test_labels_from_a_single_class_train_and_leave_the_other_components_finite():
    x, _ = pinwheel(n_per_class=16, seed=0)
    labels = torch.full((x.shape[0],), -1)
    labels[:10] = 0  # only class 0 is ever labeled
    model = _model(k=3)
    fit(
        model,
        x,
        labels,
        epochs=2,
        batch_size=32,
        pretrain_epochs=2,
        seed=0,
        progress=False,
    )
    with torch.no_grad():
        assert torch.isfinite(model.component_log_prob(x)).all()
        assert (model.predict(x[:10]) == 0).float().mean() >= 0.5


def test_gradient_clipping_is_applied():
    """Adam is invariant to the gradients' scale except through its epsilon, so clipping the
    norm far below epsilon must all but freeze the parameters."""
    x, _ = pinwheel(n_per_class=16, seed=0)
    moved = {}
    for clip in (None, 1e-12):
        torch.manual_seed(0)
        model = _model()
        before = [p.detach().clone() for p in model.parameters()]
        fit(
            model,
            x,
            epochs=2,
            batch_size=40,
            lr=1e-2,
            clip_grad_norm=clip,
            seed=0,
            progress=False,
        )
        moved[clip] = max(
            float((p.detach() - b).abs().max())
            for p, b in zip(model.parameters(), before)
        )
    assert moved[1e-12] < 1e-3 * moved[None], moved


@pytest.mark.parametrize("flow", ["realnvp", "maf"])
def test_data_scaled_by_ten_thousand_trains_finitely_with_clipping(flow):
    x, _ = pinwheel(n_per_class=32, seed=0)
    model = _model(flow, k=3)
    history = fit(
        model,
        1e4 * x,
        epochs=3,
        batch_size=64,
        lr=1e-2,
        clip_grad_norm=1.0,
        seed=0,
        progress=False,
    )
    assert all(torch.isfinite(torch.tensor(history.loss)))
    with torch.no_grad():
        assert torch.isfinite(model.elbo(1e4 * x)).all()
        assert torch.isfinite(model.log_prob(1e4 * x)).all()
