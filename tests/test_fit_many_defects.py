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


def test_fit_many_refuses_runs_that_freeze_different_parameters():
    x, _ = _data()
    models = [_model(0), _model(1)]
    models[1].encoder[0].weight.requires_grad_(False)
    before = _states(models)
    with pytest.raises(
        ValueError, match=r"models\[1\]\.encoder\.0\.weight is frozen.*models\[0\]"
    ):
        fit_many(models, x, seeds=[0, 1], **OPTIONS)
    _assert_unchanged(models, before)


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


# D04 ---------------------------------------------------------------------------------


def test_fit_many_takes_none_for_a_run_without_labels_or_initial_assignment():
    """``None`` in a per-run list means what it means to fit: no labels, random init."""
    x, y = _data()
    labeled = vm.recipes.labeled_subset(y, 3)
    for labels, init in (([None, labeled], None), (None, [None, y])):
        originals = [_model(0), _model(1)]
        alone, together = copy.deepcopy(originals), copy.deepcopy(originals)
        per_run = lambda v, r: v[r] if isinstance(v, list) else v  # noqa: E731
        for r, m in enumerate(alone):
            fit(
                m,
                x,
                per_run(labels, r),
                seed=r,
                init=per_run(init, r),
                init_epochs=1,
                **OPTIONS,
            )
        fit_many(together, x, labels, seeds=[0, 1], init=init, init_epochs=1, **OPTIONS)
        for a, b in zip(alone, together):
            _assert_same_state(a, b)


@pytest.mark.parametrize(
    "bad, message",
    [
        (
            lambda x, y: dict(x=[x, x, x]),
            r"x is a per-run list of length 3 but there are 2",
        ),
        (lambda x, y: dict(labels=[y, y, y]), r"labels is a per-run list of length 3"),
        (
            lambda x, y: dict(labels=[y, y[:10]]),
            r"labels\[1\] must have shape \(120,\)",
        ),
        (lambda x, y: dict(init=[y]), r"init is a per-run list of length 1"),
        (lambda x, y: dict(init=[y, "kmaens"]), r"init\[1\] must be None, 'kmeans'"),
    ],
    ids=["3 data sets", "3 label sets", "short labels", "1 init", "init typo"],
)
def test_fit_many_names_the_argument_and_run_of_a_bad_per_run_list(bad, message):
    x, y = _data()
    models = [_model(0), _model(1)]
    before = _states(models)
    with pytest.raises(ValueError, match=message):
        fit_many(models, **{"x": x, **bad(x, y)}, seeds=[0, 1], **OPTIONS)
    _assert_unchanged(models, before)


def test_fit_many_names_the_run_and_layer_of_a_swapped_layer_before_training_any():
    x, _ = _data()
    cases = [
        (
            lambda ms: setattr(ms[2].encoder, "0", nn.Linear(2, 16).double()),
            r"models\[2\]\.encoder\.0 is Linear\(in_features=2, out_features=16",
        ),
        (
            lambda ms: [setattr(m.encoder, "1", nn.Tanh()) for m in ms],
            r"models\[0\]\.encoder\.1 is a Tanh.*ReLU",
        ),
        (
            lambda ms: ms[1].components.layers.__setitem__(
                0, vm.flows.realnvp(2, k=5, blocks=2, hidden=4).layers[0].double()
            ),
            r"models\[1\]\.components\.layers\.0",
        ),
        (
            lambda ms: setattr(
                ms[1].encoder, "2", nn.BatchNorm1d(8, momentum=0.5).double()
            ),
            r"models\[1\]\.encoder\.2 is BatchNorm1d\(8, .*momentum=0\.5",
        ),
    ]
    for swap, message in cases:
        models = [_model(s) for s in range(3)]
        swap(models)
        before = _states(models)
        for max_parallel in (
            None,
            1,
        ):  # in one pass or in turn: refused before training
            with pytest.raises(ValueError, match=message):
                fit_many(
                    models, x, seeds=[0, 1, 2], max_parallel=max_parallel, **OPTIONS
                )
            _assert_unchanged(models, before)
