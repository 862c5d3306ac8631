"""vmonf_mini.recipes: each setting of the book in one place, and the calls that run them."""

import pytest
import torch

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


def test_with_fit_overrides_without_touching_the_recipe():
    paper = recipes.pinwheel_paper()
    short = paper.with_fit(epochs=2)
    assert short.fit["epochs"] == 2 and paper.fit["epochs"] == 400
    assert short.model == paper.model
    with pytest.raises(TypeError, match=r"unknown training settings \['epoch'\]"):
        paper.with_fit(epoch=2)


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
    x, y = vm.data.digits()
    fitted = recipes.cluster_images(x, 5, levels=17, init_epochs=40, epochs=5, seed=0)
    assert (
        fitted.labels.shape == (901,)
        and fitted.model.dim == 10
        and fitted.pca.dim == 10
    )
    assert cluster_accuracy(y, fitted.gmm_labels) > 0.9  # the Gaussian mixture's start
    assert cluster_accuracy(y, fitted.labels) > 0.9  # kept by the flows
    assert (
        fitted.predict(x) == fitted.labels
    ).mean() > 0.95  # new pixels: no dequantization noise


def test_cluster_images_takes_the_number_of_gaussian_mixture_starts():
    x, _ = vm.data.digits()
    fitted = recipes.cluster_images(
        x, 5, levels=17, gmm_n_init=1, init_epochs=1, epochs=1
    )
    assert fitted.gmm.n_init == 1
    default = recipes.cluster_images(x, 5, levels=17, init_epochs=1, epochs=1)
    assert default.gmm.n_init == recipes.IMAGE_RECIPE["gmm_n_init"]
    with pytest.raises(ValueError):
        recipes.cluster_images(x, 5, levels=17, gmm_n_init=0)
