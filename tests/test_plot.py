"""vmonf_mini.plot: every figure draws under Agg, runs the model in eval mode, and restores its mode.

Defect 4 of the original code: plots were made in training mode, so batch norm normalised the
plot's grid with the grid's own statistics and the picture showed another model.
"""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from vmonf_mini import History, VMoNF
from vmonf_mini.data import pinwheel
from vmonf_mini.plot import (
    PALETTE,
    component_samples,
    contingency_heatmap,
    decision_regions,
    density_map,
    eval_mode,
    figure_alt_text,
    training_curves,
)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _model(dim=2, k=3):
    return VMoNF(dim=dim, k=k, blocks=2, hidden=8, encoder_hidden=(8,))


def _shift_batch_norm_statistics(model, x):
    """Run a few training-mode passes on shifted, scaled data so the running averages of every
    batch-norm layer (encoder and flows) are far from the statistics of any plot grid."""
    model.train()
    with torch.no_grad():
        for _ in range(30):
            model.encoder(3.0 * x + 2.0)
            model.components.log_prob(3.0 * x + 2.0)


def _regions(ax):
    return np.asarray(ax.images[0].get_array())


@pytest.mark.parametrize("training", [True, False])
def test_decision_regions_restores_the_mode_and_draws(training):
    model = _model().train(training)
    x, _ = pinwheel(n_per_class=20, seed=0)
    ax = decision_regions(model, x, n_samples=50, resolution=20, title="t")
    assert model.training is training
    assert all(m.training is training for m in model.modules())
    assert _regions(ax).shape == (20, 20)
    assert len(ax.collections) == 2  # data underneath, samples on top
    assert ax.get_title() == "t"


def test_decision_regions_uses_eval_mode_not_the_grid_statistics():
    """A model left in training mode must give the regions of its eval mode (defect 4)."""
    x, _ = pinwheel(n_per_class=40, seed=0)
    model = _model(k=3)
    _shift_batch_norm_statistics(model, x)

    model.train()
    from_train_mode = _regions(decision_regions(model, x, n_samples=20, resolution=40))
    model.eval()
    from_eval_mode = _regions(decision_regions(model, x, n_samples=20, resolution=40))
    np.testing.assert_array_equal(from_train_mode, from_eval_mode)

    # The test is not vacuous: evaluated in training mode, batch norm would use the grid's own
    # statistics and pick different components on the same grid.
    (x0, x1), (y0, y1) = (
        (float(x[:, 0].min()), float(x[:, 0].max())),
        (float(x[:, 1].min()), float(x[:, 1].max())),
    )
    gx, gy = np.meshgrid(np.linspace(x0, x1, 40), np.linspace(y0, y1, 40))
    grid = torch.as_tensor(np.stack([gx.ravel(), gy.ravel()], 1), dtype=torch.float32)
    with torch.no_grad():
        model.train()
        train_pick = model.posterior(grid).argmax(1)
        model.eval()
        eval_pick = model.posterior(grid).argmax(1)
    assert (train_pick != eval_pick).float().mean() > 0.05


def test_decision_regions_exact_posterior_matches_predict():
    x, _ = pinwheel(n_per_class=30, seed=1)
    model = _model(k=4)
    _shift_batch_norm_statistics(model, x)
    model.train()
    ax = decision_regions(model, x, n_samples=20, resolution=12, exact=True)
    assert model.training
    regions = _regions(ax)
    x0, x1, y0, y1 = ax.images[0].get_extent()
    gx, gy = np.meshgrid(np.linspace(x0, x1, 12), np.linspace(y0, y1, 12))
    grid = torch.as_tensor(np.stack([gx.ravel(), gy.ravel()], 1), dtype=torch.float32)
    model.eval()
    with torch.no_grad():
        expected = model.predict(grid, exact=True).numpy().reshape(12, 12)
    np.testing.assert_array_equal(regions, expected)
    assert "p(c|x)" in ax.get_title()


def test_decision_regions_rejects_other_dimensions():
    with pytest.raises(ValueError, match="2-D"):
        decision_regions(_model(dim=3))


@pytest.mark.parametrize("training", [True, False])
def test_density_map_restores_the_mode_and_uses_eval_mode(training):
    x, _ = pinwheel(n_per_class=20, seed=0)
    model = _model()
    _shift_batch_norm_statistics(model, x)
    model.train(training)
    ax = density_map(model, x, resolution=15, floor=-50.0)
    assert model.training is training
    drawn = np.asarray(ax.images[0].get_array())
    x0, x1, y0, y1 = ax.images[0].get_extent()
    gx, gy = np.meshgrid(np.linspace(x0, x1, 15), np.linspace(y0, y1, 15))
    grid = torch.as_tensor(np.stack([gx.ravel(), gy.ravel()], 1), dtype=torch.float32)
    model.eval()
    with torch.no_grad():
        expected = np.maximum(model.log_prob(grid).numpy().reshape(15, 15), -50.0)
    np.testing.assert_allclose(drawn, expected, rtol=1e-5, atol=1e-5)


def test_density_map_default_floor_and_limits_from_samples():
    model = _model()
    ax = density_map(model, resolution=10, colorbar=False)
    drawn = np.asarray(ax.images[0].get_array())
    assert np.isfinite(drawn).all()
    assert drawn.max() - drawn.min() <= 12.0 + 1e-4
    assert len(ax.figure.axes) == 1  # no colour bar
    with pytest.raises(ValueError, match="2-D"):
        density_map(_model(dim=3))


@pytest.mark.parametrize("training", [True, False])
def test_component_samples_restores_the_mode_and_draws_a_grid(training):
    model = _model(dim=4, k=3).train(training)
    fig = component_samples(
        model, n_per_component=5, image_shape=(2, 2), transform=torch.sigmoid
    )
    assert model.training is training
    assert len(fig.axes) == 3 * 5
    assert all(len(ax.images) == 1 for ax in fig.axes)
    assert fig.axes[0].get_ylabel() == "c=0"


def test_eval_mode_restores_the_mode_after_an_error():
    model = _model().train()
    with pytest.raises(RuntimeError):
        with eval_mode(model):
            assert not model.training
            assert not torch.is_grad_enabled()
            raise RuntimeError("inside the block")
    assert model.training
    assert torch.is_grad_enabled()


def test_contingency_heatmap_annotates_every_cell():
    table = np.array([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5]])
    ax = contingency_heatmap(table, row_labels=["a", "b", "c"], title="T")
    assert len(ax.texts) == table.size
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b", "c"]
    assert ax.get_title() == "T"


def test_training_curves_plots_loss_and_temperature():
    history = History(
        loss=[3.0, 2.0, 1.5], temperature=[1.0, 0.9, 0.8], seconds=[0.1] * 3
    )
    ax = training_curves(history)
    assert list(ax.lines[0].get_ydata()) == history.loss
    twin = [a for a in ax.figure.axes if a is not ax][0]
    assert list(twin.lines[0].get_ydata()) == history.temperature


def test_palette_has_a_colour_per_component_up_to_ten():
    assert len(PALETTE) >= 10


def test_palette_is_okabe_ito_and_the_colour_cycle():
    """The first eight colours are Okabe and Ito's, which colour-blind readers tell apart;
    importing ``vmonf_mini.plot`` makes the palette matplotlib's colour cycle (``C0``...)."""
    okabe_ito = [
        "#0072b2",
        "#e69f00",
        "#009e73",
        "#d55e00",
        "#cc79a7",
        "#56b4e9",
        "#f0e442",
    ]
    assert [matplotlib.colors.to_hex(c) for c in PALETTE[:7]] == okabe_ito
    assert len(set(PALETTE)) == len(PALETTE)
    cycle = [
        matplotlib.colors.to_hex(c)
        for c in plt.rcParams["axes.prop_cycle"].by_key()["color"]
    ]
    assert cycle == [matplotlib.colors.to_hex(c) for c in PALETTE]


def test_contingency_heatmap_names_its_axes_for_what_they_hold():
    ax = contingency_heatmap(np.eye(2))
    assert (ax.get_ylabel(), ax.get_xlabel()) == ("digit", "cluster")
    ax = contingency_heatmap(np.eye(2), row_name="wing")
    assert ax.get_ylabel() == "wing"


def test_figure_alt_text_names_the_titles_and_axes():
    fig, axes = plt.subplots(1, 2)
    fig.suptitle("Two panels")
    axes[0].set(title="$q(c|x)$", xlabel="$x_1$", ylabel="$x_2$")
    axes[1].set(xlabel="epoch")
    assert figure_alt_text(fig) == "Figure: Two panels; q(c|x) (x_2 against x_1); epoch"
    plt.close(fig)
    fig = plt.figure()
    assert figure_alt_text(fig) == "Figure: a figure without titles"
    plt.close(fig)


def test_a_gaussian_mixture_is_drawn_by_the_same_figures():
    """Chapter 6 draws scikit-learn's GaussianMixture beside the VMoNF with decision_regions,
    and its regions are those of predict_proba."""
    from sklearn.mixture import GaussianMixture

    x, y = pinwheel(300, seed=0)
    gmm = GaussianMixture(5, random_state=0).fit(x.numpy())
    ax = decision_regions(gmm, x, n_samples=60, resolution=20)
    region = ax.images[0].get_array()
    extent = ax.images[0].get_extent()
    gx, gy = np.meshgrid(
        np.linspace(extent[0], extent[1], 20), np.linspace(extent[2], extent[3], 20)
    )
    expected = gmm.predict(np.stack([gx.ravel(), gy.ravel()], 1)).reshape(20, 20)
    assert np.array_equal(np.asarray(region), expected)
    density_map(gmm, x, resolution=20)
    fig = component_samples(gmm, n_per_component=2, image_shape=(1, 2))
    assert len(fig.axes) == 10
    with pytest.raises(TypeError, match="fitted mixture"):
        decision_regions(object())


def test_class_colors_give_a_component_its_matched_class_colour():
    from vmonf_mini.plot import class_colors

    y = np.array([0, 0, 1, 1, 2, 2])
    clusters = np.array([2, 2, 0, 0, 3, 3])  # component 1 unused, 3 holds class 2
    colors = class_colors(y, clusters, k=4)
    assert (
        colors[2] == PALETTE[0] and colors[0] == PALETTE[1] and colors[3] == PALETTE[2]
    )
    assert colors[1] not in (PALETTE[0], PALETTE[1], PALETTE[2])
    ax = decision_regions(_model(k=4), n_samples=20, resolution=10, colors=colors)
    assert list(ax.images[0].get_cmap().colors) == colors
    with pytest.raises(ValueError, match="one colour per component"):
        decision_regions(_model(k=4), n_samples=20, resolution=10, colors=colors[:2])
