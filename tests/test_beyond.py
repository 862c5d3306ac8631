"""The options chapter 9 relies on: a learned prior, the exact objective, consistency, k-means init."""

import pytest
import torch

from vmonf_mini import VMoNF, fit
from vmonf_mini.data import pinwheel
from vmonf_mini.metrics import cluster_accuracy
from vmonf_mini.objectives import consistency_kl


def _small(k=2, **kw):
    return VMoNF(2, k, blocks=2, hidden=8, encoder_hidden=(8,), **kw)


def _blobs(sizes=(300, 100), seed=0):
    """Well separated Gaussian blobs of the given sizes, centred at (-2, 0), (2, 0), ..."""
    gen = torch.Generator().manual_seed(seed)
    xs, ys = [], []
    for c, n in enumerate(sizes):
        centre = torch.tensor([4.0 * c - 2.0 * (len(sizes) - 1), 0.0])
        xs.append(centre + 0.4 * torch.randn(n, 2, generator=gen))
        ys.append(torch.full((n,), c))
    x, y = torch.cat(xs), torch.cat(ys)
    order = torch.randperm(len(x), generator=gen)
    return x[order], y[order]


@pytest.mark.parametrize("objective", ["elbo", "exact"])
def test_learned_prior_learns_unbalanced_weights(objective):
    x, y = _blobs((300, 100))
    model = _small(prior="learned")
    fit(
        model,
        x,
        epochs=60,
        batch_size=100,
        lr=1e-2,
        temperature=1.0,
        objective=objective,
        init=y,
        init_epochs=5,
        seed=0,
        progress=False,
    )
    weights = model.log_prior().exp().detach()
    torch.testing.assert_close(weights.sum(), torch.tensor(1.0))
    assert weights[0] == pytest.approx(0.75, abs=0.07), weights
    assert cluster_accuracy(y, model.predict(x, exact=objective == "exact")) > 0.97


def test_fixed_prior_stays_uniform_on_unbalanced_data():
    x, _ = _blobs((300, 100))
    model = _small()
    fit(model, x, epochs=3, batch_size=100, lr=1e-2, seed=0, progress=False)
    torch.testing.assert_close(model.log_prior().exp(), torch.full((2,), 0.5))
    assert not any(p is model.prior_logits for p in model.parameters())


def test_exact_objective_raises_log_likelihood_and_leaves_the_encoder_untouched():
    x, _ = pinwheel(n_per_class=64, seed=0)
    model = _small(k=3)
    encoder_before = {
        k: v.clone() for k, v in model.encoder.state_dict().items()
    }  # weights and BN statistics
    model.eval()
    with torch.no_grad():
        before = model.log_prob(x).mean().item()
    history = fit(
        model,
        x,
        epochs=20,
        batch_size=64,
        lr=3e-3,
        objective="exact",
        seed=0,
        progress=False,
    )
    with torch.no_grad():
        after = model.log_prob(x).mean().item()
    assert after > before + 0.3, (before, after)
    assert history.loss[-1] < history.loss[0]
    for name, value in model.encoder.state_dict().items():
        torch.testing.assert_close(
            value, encoder_before[name], msg=f"encoder {name} changed"
        )


def test_exact_objective_loss_is_minus_log_p():
    """One step of the exact objective on a single full batch is a gradient step on -mean log p(x)."""
    x, _ = pinwheel(n_per_class=16, seed=0)
    torch.manual_seed(1)
    model = _small(k=3, batch_norm=False)
    reference = _small(k=3, batch_norm=False)
    reference.load_state_dict(model.state_dict())
    history = fit(
        model,
        x,
        epochs=1,
        batch_size=len(x),
        lr=1e-3,
        objective="exact",
        seed=0,
        progress=False,
    )
    with torch.no_grad():
        expected = -reference.log_prob(x).mean().item()
    assert history.loss[0] == pytest.approx(expected, rel=1e-5)


def test_predict_exact_is_the_argmax_of_the_exact_posterior():
    model = _small(k=4).eval()
    x = torch.randn(50, 2)
    with torch.no_grad():
        assert torch.equal(
            model.predict(x, exact=True), model.exact_posterior(x).argmax(1)
        )
        assert torch.equal(model.predict(x), model.posterior(x).argmax(1))


def _consistency(model, x, temperature, noise):
    """The consistency term as fit computes it: KL(q(c|x) || q(c|x + noise * eps))."""
    target = model.log_posterior(x, temperature)
    return consistency_kl(
        target, model.log_posterior(x + noise * torch.randn_like(x), temperature)
    )


def test_consistency_term_is_zero_without_noise_and_positive_with_it():
    model = _small(k=3).eval()
    x = torch.randn(64, 2)
    with torch.no_grad():
        assert _consistency(model, x, 1.0, 0.0).abs().max() < 1e-6
        kl = _consistency(model, x, 1.0, 0.5)
    assert bool((kl >= -1e-6).all()) and kl.mean() > 0


def test_consistency_changes_the_loss_and_makes_q_smoother():
    x, _ = pinwheel(n_per_class=64, seed=0)
    runs = {}
    for weight in (0.0, 10.0):
        torch.manual_seed(0)
        model = _small(k=3)
        history = fit(
            model,
            x,
            epochs=15,
            batch_size=64,
            lr=3e-3,
            temperature=1.0,
            consistency=weight,
            consistency_noise=0.3,
            seed=0,
            progress=False,
        )
        torch.manual_seed(5)
        with torch.no_grad():
            smoothness = _consistency(model, x, 1.0, 0.3).mean().item()
        runs[weight] = (history, smoothness)
    (plain, kl_plain), (regular, kl_regular) = runs[0.0], runs[10.0]
    assert plain.loss[0] != pytest.approx(regular.loss[0])  # the term enters the loss
    assert regular.loss[-1] < regular.loss[0]  # and training still descends
    assert kl_regular < 0.7 * kl_plain, (kl_plain, kl_regular)  # q(c|x) became smoother


def test_kmeans_init_is_reproducible_and_finds_separated_blobs():
    x, y = _blobs((100, 100, 100))
    preds = []
    for _ in range(2):
        torch.manual_seed(0)
        model = _small(k=3)
        fit(
            model,
            x,
            epochs=1,
            batch_size=100,
            lr=1e-2,
            init="kmeans",
            init_epochs=20,
            seed=3,
            progress=False,
        )
        preds.append(model.predict(x))
    assert torch.equal(preds[0], preds[1])
    assert cluster_accuracy(y, preds[0]) > 0.97


def test_callback_sees_usage_that_sums_to_one():
    x, _ = pinwheel(n_per_class=16, seed=0)
    fractions = []
    fit(
        _small(k=4),
        x,
        epochs=3,
        batch_size=16,
        progress=False,
        callback=lambda epoch, m: fractions.append(
            torch.bincount(m.predict(x), minlength=4).float() / len(x)
        ),
    )
    assert len(fractions) == 3
    for f in fractions:
        assert f.shape == (4,) and f.sum().item() == pytest.approx(1.0)
