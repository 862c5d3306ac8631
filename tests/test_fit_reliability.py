"""fit's faults (issue 16, items 2, 3, 6 and 10): nothing lost, no silent acceptance."""

import copy

import pytest
import torch

from vmonf_mini import VMoNF, fit
from vmonf_mini.data import pinwheel, two_circles


def _small(k=3):
    return VMoNF(2, k, blocks=2, hidden=8, encoder_hidden=(8,))


def _same_state(a, b):
    return all(
        torch.equal(a.state_dict()[n], b.state_dict()[n]) for n in a.state_dict()
    )


@pytest.mark.parametrize(
    "device", ["meta", "cuda:7" if not torch.cuda.is_available() else "cuda:99"]
)
def test_a_device_that_cannot_train_is_refused_before_the_model_is_touched(device):
    x, _ = pinwheel(n_per_class=16, seed=0)
    model = _small()
    before = copy.deepcopy(model)
    with pytest.raises(ValueError, match="device"):
        fit(model, x, epochs=1, device=device, progress=False)
    assert next(model.parameters()).device.type == "cpu"
    assert _same_state(model, before)  # the weights are intact, not moved to meta


def test_a_bad_argument_after_the_device_is_refused_before_the_model_moves():
    x, _ = pinwheel(n_per_class=16, seed=0)
    model = _small()
    before = copy.deepcopy(model)
    with pytest.raises(ValueError):
        fit(
            model,
            x,
            labels=torch.full((80,), 7),
            epochs=1,
            device="cpu",
            progress=False,
        )
    assert _same_state(model, before)


def test_after_a_nonfinite_loss_the_model_has_the_last_finite_state_and_is_in_eval_mode():
    """The failing forward pass writes NaN into batch norm's running averages: they are undone."""
    x, _ = pinwheel(n_per_class=32, seed=0)
    model = _small()
    original, states = model.components.log_prob, []
    # a step starts with the encoder's forward pass: record the state just before it
    hook = model.encoder.register_forward_pre_hook(
        lambda *_: states.append(copy.deepcopy(model.state_dict()))
    )

    def poisoned(
        points,
    ):  # the 7th step (5 steps an epoch: epoch 2, step 2) sees NaN input
        return original(points * float("nan") if len(states) == 7 else points)

    model.components.log_prob = poisoned
    with pytest.raises(FloatingPointError, match=r"main phase, epoch 2, step 2"):
        fit(model, x, epochs=3, batch_size=32, progress=False)
    del model.components.log_prob
    hook.remove()
    assert not model.training
    for name, value in model.state_dict().items():
        assert torch.equal(value, states[-1][name]), (
            name
        )  # the state before the failing pass
    assert torch.isfinite(
        model.log_prob(x)
    ).all()  # usable: no NaN in the running averages


def test_fit_trains_on_x_that_requires_grad_over_several_batches():
    x, _ = pinwheel(n_per_class=32, seed=0)
    x = x.clone().requires_grad_(True)
    history = fit(_small(), x, epochs=2, batch_size=32, progress=False)
    assert len(history.loss) == 2 and x.grad is None


def test_fit_refuses_a_boolean_temperature_and_a_negative_consistency_noise():
    x, _ = pinwheel(n_per_class=16, seed=0)
    with pytest.raises(TypeError, match="temperature"):
        fit(_small(), x, epochs=1, temperature=True, progress=False)
    with pytest.raises(ValueError, match="consistency_noise"):
        fit(
            _small(),
            x,
            epochs=1,
            consistency=1.0,
            consistency_noise=-0.1,
            progress=False,
        )


def test_a_single_labeled_point_is_refused_not_silently_dropped():
    x, y = two_circles(n_per_circle=32, seed=0)
    labels = torch.full_like(y, -1)
    labels[0] = y[0]
    with pytest.raises(ValueError, match="one point"):
        fit(_small(k=2), x, labels, epochs=1, progress=False)
