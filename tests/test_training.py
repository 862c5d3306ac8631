"""fit(): the unsupervised and semi-supervised objectives, schedules, failure modes."""

import copy
import math

import pytest
import torch

from vmonf_mini import ExponentialDecay, VMoNF, fit
from vmonf_mini.data import pinwheel, two_circles
from vmonf_mini.objectives import labeled_loss


def _small(k=2, **kw):
    return VMoNF(2, k, blocks=2, hidden=8, encoder_hidden=(8,), **kw)


def test_fit_lowers_the_loss_and_records_history():
    x, _ = pinwheel(n_per_class=64, seed=1)
    model = _small(k=5)
    history = fit(model, x, epochs=15, batch_size=64, lr=3e-3, seed=0, progress=False)
    assert len(history.loss) == len(history.temperature) == len(history.seconds) == 15
    assert history.loss[-1] < history.loss[0] - 0.15
    assert history.steps == 15 * 5
    assert history.temperature[-1] == pytest.approx(math.exp(-1e-3 * 75))
    assert not model.training  # ends in eval mode


def test_semi_supervised_training_lowers_the_labeled_cross_entropy():
    """Defect 1 of the original code: the supervised term was maximised. Here it must fall."""
    x, y = two_circles(n_per_circle=128, seed=0)
    labels = torch.full_like(y, -1)
    labels[:16] = y[:16]
    model = _small(k=2)
    ce = lambda: torch.nn.functional.cross_entropy(model.encoder(x[:16]), y[:16]).item()
    model.eval()
    before = ce()
    fit(
        model,
        x,
        labels,
        epochs=5,
        batch_size=64,
        lr=1e-2,
        pretrain_epochs=80,
        seed=0,
        progress=False,
    )
    after = ce()
    assert after < before * 0.5, (before, after)
    assert (model.predict(x[:16]) == y[:16]).float().mean() >= 0.9


def test_labeled_loss_adds_nll_of_own_component_and_cross_entropy():
    model = _small(k=3).double().eval()
    x = torch.randn(4, 2, dtype=torch.float64)
    y = torch.tensor([0, 2, 1, 2])
    loss = labeled_loss(model.joint(x), model.encoder(x), y, "elbo")
    joint = model.component_log_prob(x) + model.log_prior()
    ce = -torch.log_softmax(model.encoder(x), 1)[torch.arange(4), y]
    torch.testing.assert_close(loss, -joint[torch.arange(4), y] + ce)


def test_same_seed_gives_the_same_model():
    x, _ = pinwheel(n_per_class=32, seed=0)
    runs = []
    for _ in range(2):
        torch.manual_seed(123)
        model = _small(k=3)
        fit(model, x, epochs=3, batch_size=32, seed=7, progress=False)
        runs.append(model.log_prob(x[:5]))
    torch.testing.assert_close(runs[0], runs[1])


def test_nonfinite_loss_stops_with_epoch_and_step_and_keeps_finite_weights():
    x, _ = pinwheel(n_per_class=32, seed=0)
    model = _small(k=2)
    calls = {"n": 0}

    def schedule(step):
        calls["n"] += 1
        return 1.0

    with torch.no_grad():
        model.components.layers[0].t_net.layers[0].weight.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match=r"epoch 1, step 1"):
        fit(model, x, epochs=2, batch_size=32, temperature=schedule, progress=False)


def test_exponential_decay_has_a_floor_and_matches_the_paper():
    sched = ExponentialDecay()
    assert sched(1) == pytest.approx(math.exp(-1e-3))
    assert sched(10**6) == 0.01
    with pytest.raises(ValueError, match="floor"):
        ExponentialDecay(floor=0.0)
    for rate in (-1e-3, float("nan"), "fast"):
        with pytest.raises(ValueError, match="rate must be a number >= 0"):
            ExponentialDecay(rate=rate)


def test_callback_sees_every_epoch_in_eval_mode():
    x, _ = pinwheel(n_per_class=16, seed=0)
    seen = []
    fit(
        _small(),
        x,
        epochs=3,
        batch_size=16,
        progress=False,
        callback=lambda epoch, m: seen.append((epoch, m.training)),
    )
    assert seen == [(1, False), (2, False), (3, False)]


def test_exact_objective_and_consistency_options_train():
    x, _ = pinwheel(n_per_class=32, seed=0)
    h1 = fit(
        _small(k=3),
        x,
        epochs=5,
        batch_size=32,
        lr=3e-3,
        objective="exact",
        seed=0,
        progress=False,
    )
    h2 = fit(
        _small(k=3),
        x,
        epochs=5,
        batch_size=32,
        lr=3e-3,
        consistency=1.0,
        seed=0,
        progress=False,
    )
    assert h1.loss[-1] < h1.loss[0] and h2.loss[-1] < h2.loss[0]


def test_init_agreement_records_how_well_q_learned_the_initial_assignment():
    x, y = pinwheel(n_per_class=64, seed=0)
    assert (
        fit(
            _small(k=5), x, epochs=1, batch_size=64, seed=0, progress=False
        ).init_agreement
        is None
    )
    agreement = {}
    for epochs in (1, 40):
        history = fit(
            _small(k=5),
            x,
            epochs=1,
            batch_size=64,
            lr=1e-2,
            init=y,
            init_epochs=epochs,
            seed=0,
            progress=False,
        )
        agreement[epochs] = history.init_agreement
    assert 0.0 <= agreement[1] < 0.9 < agreement[40] <= 1.0, agreement


def test_init_lr_trains_the_init_phase_only():
    """init_lr sets the init phase's rate; the main phase trains at lr with a fresh Adam."""
    x, y = pinwheel(n_per_class=32, seed=0)

    def run(**kw):
        model = _small(k=5)
        history = fit(
            model,
            x,
            epochs=2,
            batch_size=40,
            lr=1e-3,
            init=y,
            init_epochs=3,
            seed=0,
            progress=False,
            **kw,
        )
        return history, torch.cat([p.detach().flatten() for p in model.parameters()])

    same_history, same = run(init_lr=1e-3)
    default_history, default = run()
    fast_history, fast = run(init_lr=3e-2)
    assert (
        default_history.loss != same_history.loss
    )  # a fresh Adam after init: a different run
    assert fast_history.init_agreement >= default_history.init_agreement
    assert not torch.allclose(fast, same)


def test_fit_density_equals_the_hand_written_loop_and_ends_in_eval_mode():
    """Chapter 2's maximum-likelihood loop, written out, gives the same parameters as fit_density."""
    from vmonf_mini import fit_density
    from vmonf_mini.flows import realnvp

    data = torch.randn(200, 2, dtype=torch.float64) * 0.5 + 1.0
    torch.manual_seed(0)
    flow = realnvp(2, blocks=2, hidden=8).double()
    hand = copy.deepcopy(flow)
    losses, ms = fit_density(flow, data, steps=5, batch_size=32, lr=1e-2, seed=3)
    optimizer = torch.optim.Adam(hand.parameters(), lr=1e-2)
    batches = torch.Generator().manual_seed(3)
    hand.train()
    for step in range(5):
        idx = torch.randint(len(data), (32,), generator=batches)
        loss = -hand.log_prob(data[idx]).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        assert abs(loss.item() - losses[step]) < 1e-12
    for a, b in zip(flow.state_dict().values(), hand.state_dict().values()):
        assert torch.equal(a, b)
    assert not flow.training and ms > 0
    with pytest.raises(ValueError, match="needs the parameters"):
        fit_density(lambda x: x.sum(1), data, steps=1)
    with pytest.raises(ValueError, match="steps"):
        fit_density(flow, data, steps=0)
