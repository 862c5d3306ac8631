"""fit_many: R runs trained together end exactly where R separate fit calls end."""

import copy
import re

import pytest
import torch

import vmonf_mini as vm
from vmonf_mini import VMoNF, fit, fit_many
from vmonf_mini.data import pinwheel, two_circles


def _model(seed, **kw):
    torch.manual_seed(seed)
    options = dict(blocks=2, hidden=8, encoder_hidden=(8, 8))
    options.update(kw)
    return VMoNF(2, options.pop("k", 3), **options).double()


def _assert_same_state(a: VMoNF, b: VMoNF, atol=1e-6):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for name in sa:
        if sa[name].is_floating_point():
            torch.testing.assert_close(sa[name], sb[name], atol=atol, rtol=0, msg=name)
        else:
            assert torch.equal(sa[name], sb[name]), name


def _labels(y, per_class, seed):
    """``per_class`` labels of each class, chosen by ``seed``; -1 elsewhere."""
    return vm.recipes.labeled_subset(y, per_class, seed)


def _alone_and_together(n_runs, datasets, labels, options, **model_kw):
    """n_runs models trained by one fit each and, from the same start, by one fit_many call."""
    originals = [_model(s, **model_kw) for s in range(n_runs)]
    alone = [copy.deepcopy(m) for m in originals]
    together = [copy.deepcopy(m) for m in originals]
    for m, xs, ls, s in zip(alone, datasets, labels, range(n_runs)):
        fit(m, xs, ls, seed=s, **options)
    fit_many(together, datasets, labels, seeds=list(range(n_runs)), **options)
    return alone, together


def test_fit_many_equals_sequential_fit_with_labels_kmeans_pretraining_and_learned_prior():
    """The contract, in float64: each run ends with the parameters and buffers fit gives it."""
    x, y = two_circles(n_per_circle=96, seed=0)
    x = x.double()
    labels = [_labels(y, 6, seed=s) for s in range(3)]  # runs label different points
    options = dict(
        epochs=3,
        batch_size=40,
        lr=3e-3,
        pretrain_epochs=2,
        init="kmeans",
        init_epochs=2,
        init_lr=1e-2,
        clip_grad_norm=0.5,
        consistency=0.5,
        progress=False,
    )
    seeds = [11, 12, 13]
    originals = [_model(s, k=2, prior="learned") for s in range(3)]
    alone = [copy.deepcopy(m) for m in originals]
    together = [copy.deepcopy(m) for m in originals]
    expected = [
        fit(m, x, lab, seed=s, **options) for m, lab, s in zip(alone, labels, seeds)
    ]
    histories = fit_many(together, x, labels, seeds=seeds, **options)
    for a, b, h_a, h_b in zip(alone, together, expected, histories):
        _assert_same_state(a, b)
        assert not b.training
        assert h_b.loss == pytest.approx(h_a.loss, abs=1e-9)
        assert h_b.pretrain_loss == pytest.approx(h_a.pretrain_loss, abs=1e-9)
        assert h_b.init_agreement == h_a.init_agreement and h_b.steps == h_a.steps
    # and the runs really differ from one another
    assert not torch.allclose(together[0].prior_logits, together[1].prior_logits)


def test_fit_many_equals_fit_for_maf_the_exact_objective_and_different_label_counts():
    x, y = pinwheel(n_per_class=40, seed=2)
    x = x.double()
    labels = [
        torch.full_like(y, -1),
        _labels(y, 4, seed=1),
        _labels(y, 4, seed=2),
        _labels(y, 8, seed=3),
    ]
    options = dict(epochs=2, batch_size=64, lr=1e-3, objective="exact", progress=False)
    originals = [_model(s, k=5, flow="maf", hidden=16) for s in range(4)]
    alone = [copy.deepcopy(m) for m in originals]
    together = [copy.deepcopy(m) for m in originals]
    for m, lab, s in zip(alone, labels, range(4)):
        fit(m, x, lab, seed=s, **options)
    fit_many(together, x, labels, seeds=list(range(4)), **options)
    for a, b in zip(alone, together):
        _assert_same_state(a, b)


def test_fit_many_clips_each_run_by_its_own_norm():
    """A run with huge gradients must not shrink another run's step (no norm over all runs)."""
    x, _ = pinwheel(n_per_class=32, seed=0)
    x = x.double()
    options = dict(
        epochs=1, batch_size=32, lr=1e-2, clip_grad_norm=1e-3, progress=False
    )
    originals = [_model(0), _model(1)]
    with (
        torch.no_grad()
    ):  # run 1's encoder starts with enormous weights: enormous gradients
        originals[1].encoder[0].weight.mul_(1e4)
    alone = [copy.deepcopy(m) for m in originals]
    together = [copy.deepcopy(m) for m in originals]
    for m, s in zip(alone, (0, 1)):
        fit(m, x, seed=s, **options)
    fit_many(together, x, seeds=[0, 1], **options)
    _assert_same_state(alone[0], together[0])


def test_fit_many_chunks_runs_and_calls_back_for_every_model():
    x, _ = pinwheel(n_per_class=32, seed=0)
    x = x.double()
    seen = []
    models = [_model(s) for s in range(3)]
    reference = [copy.deepcopy(m) for m in models]
    fit_many(
        models,
        x,
        seeds=[0, 1, 2],
        epochs=2,
        batch_size=64,
        progress=False,
        max_parallel=2,
        callback=lambda epoch, model: seen.append((epoch, id(model), model.training)),
    )
    assert sorted(seen) == sorted((e, id(m), False) for e in (1, 2) for m in models)
    fit_many(reference, x, seeds=[0, 1, 2], epochs=2, batch_size=64, progress=False)
    for a, b in zip(models, reference):
        _assert_same_state(a, b)


def test_fit_many_refuses_models_of_different_architectures_naming_the_difference():
    x, _ = pinwheel(n_per_class=16, seed=0)
    with pytest.raises(
        ValueError, match=r"models\[1\] has blocks=3, models\[0\] has blocks=2"
    ):
        fit_many([_model(0), _model(1, blocks=3)], x, epochs=1)
    with pytest.raises(ValueError, match="dtype"):
        fit_many([_model(0), _model(1).float()], x, epochs=1)
    model = _model(0)
    with pytest.raises(ValueError, match="same VMoNF more than once"):
        fit_many([model, model], x, epochs=1)
    with pytest.raises(ValueError, match="seeds must hold one integer per model"):
        fit_many([_model(0), _model(1)], x, seeds=[1], epochs=1)
    with pytest.raises(TypeError, match=r"unknown training settings \['epoch'\]"):
        fit_many([_model(0)], x, epochs=1, epoch=3)
    with pytest.raises(TypeError, match="seeds="):
        fit_many([_model(0)], x, epochs=1, seed=3)


def test_fit_many_freezes_a_diverged_run_and_finishes_the_others():
    """Run 2's loss is NaN from its first step: it stays as it was, History.diverged says
    where, and runs 0 and 1 train exactly as beside a healthy run 2 (the same stack)."""
    x, _ = pinwheel(n_per_class=32, seed=0)
    healthy = [_model(s) for s in range(3)]
    models = copy.deepcopy(healthy)
    with torch.no_grad():
        models[2].components.layers[0].t_net.layers[0].weight[0].fill_(float("nan"))
    before = copy.deepcopy(models[2].state_dict())
    run = dict(seeds=[5, 6, 7], epochs=2, batch_size=64, progress=False)
    histories = fit_many(models, x.double(), **run)
    expected = fit_many(healthy, x.double(), **run)
    assert re.fullmatch(
        r"non-finite loss \(nan\) in the main phase, epoch 1, step 1",
        histories[2].diverged,
    )
    assert histories[2].loss == [] and histories[2].steps == 0
    assert all(not m.training for m in models)
    for name, value in models[2].state_dict().items():  # not even batch norm moved
        assert torch.equal(value.nan_to_num(), before[name].nan_to_num()), name
    for r in (0, 1):
        assert histories[r].diverged is None and histories[r].loss == expected[r].loss
        for name, value in models[r].state_dict().items():
            assert torch.equal(value, healthy[r].state_dict()[name]), name


def test_fit_many_of_diverged_runs_only_returns_their_histories():
    x, _ = pinwheel(n_per_class=32, seed=0)
    models = [_model(s) for s in range(2)]
    with torch.no_grad():
        for model in models:
            model.components.layers[0].t_net.layers[0].weight[0].fill_(float("nan"))
    histories = fit_many(
        models, x.double(), seeds=[1, 2], epochs=2, batch_size=64, progress=False
    )
    assert all("epoch 1, step 1" in h.diverged and h.loss == [] for h in histories)


def test_fit_many_of_custom_components_trains_them_one_at_a_time():
    x, _ = pinwheel(n_per_class=16, seed=0)
    models = [
        VMoNF(2, 2, components=[vm.flows.realnvp(2, k=1, blocks=2) for _ in range(2)])
        for _ in range(2)
    ]
    histories = fit_many(
        models, x, seeds=[0, 1], epochs=1, batch_size=32, progress=False
    )
    assert [len(h.loss) for h in histories] == [1, 1]


def _with_labeled_points(x, y, per_circle):
    """One data set per run, as chapter 7 builds them: x unlabeled, then the run's own labeled points."""
    datasets, labels = [], []
    for seed, n in enumerate(per_circle):
        extra, extra_y = two_circles(n_per_circle=n, seed=100 + seed)
        datasets.append(torch.cat([x, extra]).double())
        labels.append(torch.cat([torch.full_like(y, -1), extra_y]))
    return datasets, labels


def test_fit_many_takes_one_data_set_per_run():
    """Chapter 7 appends each seed's own labeled points: runs with their own x equal fit on that x."""
    datasets, labels = _with_labeled_points(
        *two_circles(n_per_circle=64, seed=0), per_circle=(4, 4, 4)
    )
    options = dict(epochs=2, batch_size=32, pretrain_epochs=2, progress=False)
    for a, b in zip(*_alone_and_together(3, datasets, labels, options, k=2)):
        _assert_same_state(a, b)
    with pytest.raises(ValueError, match=r"x\[1\] must have shape"):
        fit_many(
            [_model(0, k=2), _model(1, k=2)],
            [datasets[0], datasets[1][:, :1]],
            epochs=1,
        )


def test_fit_many_takes_data_sets_of_different_sizes_and_trains_them_in_turn():
    """Chapter 7's label-budget sweep: runs of 64 + 4 and 64 + 8 points in one call."""
    datasets, labels = _with_labeled_points(
        *two_circles(n_per_circle=32, seed=0), per_circle=(2, 4)
    )
    options = dict(epochs=2, batch_size=32, pretrain_epochs=1, progress=False)
    for a, b in zip(*_alone_and_together(2, datasets, labels, options, k=2)):
        _assert_same_state(a, b)
    with pytest.raises(ValueError, match=r"labels\[0\] must have shape \(68,\)"):
        fit_many(
            [_model(0, k=2), _model(1, k=2)], datasets, [labels[1], labels[0]], epochs=1
        )


def test_each_trained_model_owns_its_tensors():
    """Defect 3 of the original code kept "the best parameters" as references to the live
    state, so they changed with training. Here every model holds its own copy: training one
    of them further leaves the others, and what was read before, untouched."""
    x, _ = pinwheel(64, seed=0)
    models = [_model(s) for s in range(3)]
    fit_many(
        models, x.double(), seeds=[0, 1, 2], epochs=1, batch_size=64, progress=False
    )
    pointers = [
        {t.untyped_storage().data_ptr() for t in m.state_dict().values()}
        for m in models
    ]
    assert not (pointers[0] & pointers[1]) and not (pointers[1] & pointers[2])
    kept = [copy.deepcopy(m.state_dict()) for m in models[1:]]
    fit(models[0], x.double(), seed=5, epochs=1, batch_size=64, progress=False)
    for model, state in zip(models[1:], kept):
        for name, value in model.state_dict().items():
            assert torch.equal(value, state[name]), name
