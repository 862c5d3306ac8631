"""vmonf_mini.recipes: each setting of the book in one place, and the calls that run them."""

import numpy as np
import pytest
import torch
from sklearn.metrics import adjusted_rand_score

import vmonf_mini as vm
from vmonf_mini import recipes
from vmonf_mini.metrics import cluster_accuracy


def test_run_many_trains_one_run_per_seed_as_run_does():
    """In float64 (fit_many's contract): in float32 Adam turns the rounding noise of gradients that
    are zero in exact arithmetic (a bias that batch norm cancels) into steps of size lr."""
    recipe = recipes.pinwheel(epochs=2, init_epochs=2)
    x, _ = recipes.data_for(recipe, n_per_class=32)
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        together, histories = recipe.run_many(x.double(), seeds=[3, 4])
        alone = [recipe.run(x.double(), seed=seed)[0] for seed in (3, 4)]
    finally:
        torch.set_default_dtype(default)
    assert len(together) == len(histories) == 2 and not together[0].training
    for a, b in zip(alone, together):
        for name, value in a.state_dict().items():
            torch.testing.assert_close(
                b.state_dict()[name], value, atol=1e-6, rtol=0, msg=name
            )


def test_with_training_overrides_without_touching_the_recipe():
    paper = recipes.pinwheel_paper()
    short = paper.with_training(epochs=2)
    assert short.training["epochs"] == 2 and paper.training["epochs"] == 400
    assert short.model == paper.model
    with pytest.raises(TypeError, match=r"unknown training settings \['epoch'\]"):
        paper.with_training(epoch=2)


def test_run_builds_and_trains_the_recipe():
    recipe = recipes.two_circles(epochs=1, pretrain_epochs=2)
    x, y = recipes.data_for(recipe, n_per_circle=64)
    labels = recipes.labeled_subset(y, recipe.labels_per_class)
    model, history = recipe.run(x, labels, seed=0)
    assert isinstance(model, vm.VMoNF) and model.k == 2 and model.config["blocks"] == 10
    assert (
        len(history.pretrain_loss) == 2
        and len(history.loss) == 1
        and not model.training
    )


def test_labeled_subset():
    y = torch.tensor([0] * 10 + [1] * 5)
    labels = recipes.labeled_subset(y, per_class=3, seed=1)
    assert torch.bincount(labels[labels >= 0]).tolist() == [3, 3]
    assert bool((labels[labels >= 0] == y[labels >= 0]).all())
    assert torch.equal(labels, recipes.labeled_subset(y, per_class=3, seed=1))
    assert not torch.equal(labels, recipes.labeled_subset(y, per_class=3, seed=2))
    with pytest.raises(
        ValueError, match="class 1 has 5 points, fewer than per_class=6"
    ):
        recipes.labeled_subset(y, per_class=6)


def test_cluster_images_on_the_digits():
    """scikit-learn's 8x8 digits 0-4: the embedding's starts and the kept VMoNF find the digits."""
    x, y = vm.data.digits()
    fitted = recipes.cluster_images(x, 5, init_epochs=20, epochs=5, seed=0)
    assert fitted.labels.shape == (901,) and fitted.model.dim == 10
    assert fitted.embedding.dim == 10 and fitted.model.k == 5
    assert 1 <= len(fitted.start_labels) <= recipes.IMAGE_RECIPE["starts"]
    assert len(fitted.elbo) == len(fitted.run_labels) == len(fitted.start_labels)
    assert fitted.elbo[fitted.chosen] == max(fitted.elbo)  # kept by its ELBO
    assert (fitted.labels == fitted.run_labels[fitted.chosen]).all()
    assert cluster_accuracy(y, fitted.start) > 0.9  # the Gaussian mixture's start
    assert cluster_accuracy(y, fitted.labels) > 0.9  # kept by the flows
    assert fitted.seconds > 0


def test_cluster_images_predicts_new_images():
    x, y = vm.data.digits()
    fitted = recipes.cluster_images(x[:700], 5, init_epochs=20, epochs=2, seed=1)
    new = fitted.predict(x[700:])
    assert new.shape == (201,) and cluster_accuracy(y[700:], new) > 0.85


def test_distinct_mixtures_keeps_different_partitions_by_likelihood():
    """Four blobs on a square, k=2: the two ways to pair them are each kept once, the more
    likely first; the same pairing found by several fits is kept once."""
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [8.0, 0.0], [0.0, 8.0], [8.0, 8.0]])
    blobs = np.concatenate([rng.normal(c, 1.0, size=(100, 2)) for c in centres])
    kept = recipes.distinct_mixtures(blobs, 2, seed=0, fits=10, keep=3)
    bounds = [m.lower_bound_ for m in kept]
    assert len(kept) == 2 and bounds == sorted(bounds, reverse=True)
    a, b = (m.predict(blobs) for m in kept)
    assert adjusted_rand_score(a, b) <= 0.95
    assert len(recipes.distinct_mixtures(blobs, 2, seed=0, fits=10, keep=1)) == 1


def test_cluster_images_takes_the_number_of_starts():
    x, _ = vm.data.digits()
    one = recipes.cluster_images(x, 5, starts=1, init_epochs=1, epochs=1)
    assert len(one.start_labels) == len(one.elbo) == 1 and one.chosen == 0
    with pytest.raises(ValueError, match="starts must be a positive integer"):
        recipes.cluster_images(x, 5, starts=0)
    with pytest.raises(
        ValueError, match="gmm_starts=2 Gaussian mixtures cannot give starts=3"
    ):
        recipes.cluster_images(x, 5, starts=3, gmm_starts=2)
