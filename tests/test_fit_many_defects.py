"""fit_many's defects D01-D04 of issue 25: frozen parameters, callback edits, shared modules,
and errors that name the argument and the run.  Every refusal leaves the models as they were."""

import copy

import pytest
import torch
from torch import nn

import vmonf_mini as vm
from vmonf_mini import VMoNF, fit, fit_many
from vmonf_mini.data import pinwheel

OPTIONS = dict(epochs=2, batch_size=32, progress=False)


def _model(seed: int, **kw) -> VMoNF:
    torch.manual_seed(seed)
    return VMoNF(2, 5, blocks=2, hidden=8, encoder_hidden=(8,), **kw).double()


def _data():
    x, y = pinwheel(n_per_class=24, seed=0)
    return x.double(), y


def _states(models):
    return [copy.deepcopy(m.state_dict()) for m in models]


def _assert_same_state(a: VMoNF, b: VMoNF, atol: float = 1e-9) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for name in sa:
        torch.testing.assert_close(sa[name], sb[name], atol=atol, rtol=0, msg=name)


def _assert_unchanged(models, states) -> None:
    for model, state in zip(models, states):
        for name, value in model.state_dict().items():
            assert torch.equal(value, state[name]), name


# D01 ---------------------------------------------------------------------------------


def test_fit_many_leaves_frozen_parameters_alone_as_fit_does():
    x, _ = _data()
    originals = [_model(0, prior="learned"), _model(1, prior="learned")]
    for m in originals:
        m.encoder.requires_grad_(False)
        m.components.layers[0].requires_grad_(False)
        m.prior_logits.requires_grad_(False)
    alone, together = copy.deepcopy(originals), copy.deepcopy(originals)
    for m, seed in zip(alone, (0, 1)):
        fit(m, x, seed=seed, weight_decay=0.1, **OPTIONS)
    fit_many(together, x, seeds=[0, 1], weight_decay=0.1, **OPTIONS)
    for original, a, b in zip(originals, alone, together):
        _assert_same_state(a, b)
        for (name, p), q in zip(original.named_parameters(), b.parameters()):
            if not p.requires_grad:
                assert torch.equal(p, q), name
                assert not q.requires_grad, name
        # the other parameters did train
        assert not torch.equal(
            original.components.layers[2].s_net.layers[0].weight,
            b.components.layers[2].s_net.layers[0].weight,
        )


# D02 ---------------------------------------------------------------------------------


def test_a_callbacks_edit_of_the_model_survives_fit_many_as_it_survives_fit():
    x, _ = _data()

    def zero_first_bias(epoch, model):
        with torch.no_grad():
            model.encoder[0].bias.zero_()

    originals = [_model(0), _model(1)]
    alone, together = copy.deepcopy(originals), copy.deepcopy(originals)
    for m, seed in zip(alone, (0, 1)):
        fit(m, x, seed=seed, callback=zero_first_bias, **OPTIONS)
    fit_many(together, x, seeds=[0, 1], callback=zero_first_bias, **OPTIONS)
    for a, b in zip(alone, together):
        assert torch.equal(b.encoder[0].bias, torch.zeros_like(b.encoder[0].bias))
        _assert_same_state(a, b)


# D03 ---------------------------------------------------------------------------------


@pytest.mark.parametrize("what", ["submodule", "parameter"])
def test_fit_many_refuses_models_that_share_a_submodule_or_parameter(what):
    x, _ = _data()
    a, b = _model(0), _model(1)
    if what == "submodule":
        b.encoder = a.encoder
        shared = r"models\[0\]\.encoder\.0\.weight and models\[1\]\.encoder\.0\.weight"
    else:
        b.components.layers[0].s_net.layers[0].weight = (
            a.components.layers[0].s_net.layers[0].weight
        )
        shared = r"models\[0\]\.components\.layers\.0\.s_net\.layers\.0\.weight and"
    before = _states([a, b])
    with pytest.raises(ValueError, match=shared):
        fit_many([a, b], x, seeds=[0, 1], **OPTIONS)
    _assert_unchanged([a, b], before)
