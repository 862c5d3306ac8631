"""The book's helpers name the problem (issue 25, D14): glue, the figures' colours, the image recipe.

Each case once ended in an error that blamed something else (a format code, ``.item()``, an
argument nobody passed, a bare ``StopIteration``, the whitening) or in a silent acceptance
(``ImageClusters.predict`` of pixels 16 times the fitted scale).
"""

import sys

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

import vmonf_mini as vm
from vmonf_mini import plot, recipes
from vmonf_mini.presentation import glue


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(params=["colab", "myst-nb"])
def where(request, monkeypatch):
    """Run glue as on Colab (myst-nb absent) and as in the book's build (myst-nb present)."""
    if request.param == "colab":
        monkeypatch.setitem(sys.modules, "myst_nb", None)
    else:
        pytest.importorskip("myst_nb")
    return request.param


def test_glue_refuses_a_float_format_for_text_wherever_it_runs(where):
    with pytest.raises(
        ValueError, match=r"glue\('model'\): format '.3f' does not apply to str"
    ):
        glue("model", "VMoNF", ".3f")


def test_glue_refuses_a_tensor_of_several_numbers(where):
    with pytest.raises(
        ValueError, match=r"glue\('t'\) pastes one number.*shape \(2,\)"
    ):
        glue("t", torch.tensor([1.0, 2.0]))


def test_glue_still_takes_one_element_tensors_and_numpy_numbers(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "myst_nb", None)
    assert glue("a", torch.tensor([[0.125]]), ".2f") == 0.125
    assert glue("b", np.int64(3), "d") == 3
    assert glue("c", "text") == "text"
    assert capsys.readouterr().out.splitlines() == ["a = 0.12", "b = 3", "c = text"]


def test_decision_regions_draws_more_than_ten_components_by_default():
    """K=12 blamed ``colors`` (never passed): the default colours now cover any K."""
    model = vm.VMoNF(2, 12, blocks=1)
    ax = plot.decision_regions(model, n_samples=20, resolution=10)
    colors = list(ax.images[0].get_cmap().colors)
    assert colors == plot.component_colors(12)
    assert colors[:10] == list(plot.PALETTE) and len(set(colors)) == 12
    with pytest.raises(ValueError, match=r"one colour per component \(12\), got 10"):
        plot.decision_regions(model, n_samples=20, resolution=10, colors=plot.PALETTE)


def test_class_colors_gives_distinct_colours_to_many_unmatched_components():
    """k=20 with two classes ended in a bare StopIteration (16 spare colours)."""
    y = np.r_[np.zeros(20, int), np.ones(20, int)]
    clusters = np.arange(40) % 20
    colors = plot.class_colors(y, clusters, k=20)
    assert len(colors) == 20 and len(set(colors)) == 20
    matched = vm.metrics.match_clusters(y, clusters)
    for c, label in matched.items():
        assert colors[c] == plot.PALETTE[label]
    spare = [colors[c] for c in range(20) if c not in matched]
    assert not set(spare) & {plot.PALETTE[0], plot.PALETTE[1]}


def test_class_colors_beyond_every_distinct_colour_repeat_and_labels_must_be_natural():
    n = len(plot.COLORS) + 5
    colors = plot.class_colors([0] * n, range(n), k=n)
    assert len(colors) == n and len(set(colors)) == len(plot.COLORS)
    assert plot.class_colors([12, 12, 3, 3], [0, 0, 1, 1], k=2) == [
        plot.COLORS[12],
        plot.PALETTE[3],
    ]
    with pytest.raises(ValueError, match=r"class labels must be 0 or more.*\[-1\]"):
        plot.class_colors([-1, 0], [0, 1], k=2)


@pytest.fixture(scope="module")
def digits():
    x, _ = vm.data.digits(range(5))
    return x


def test_cluster_images_with_more_clusters_than_images_says_so(digits):
    with pytest.raises(
        ValueError, match="k=10 clusters need at least 10 images, got 5"
    ):
        recipes.cluster_images(digits[:5], 10, epochs=1, init_epochs=1)
    neighbours = recipes.IMAGE_RECIPE["embedding"]["n_neighbors"]
    expected = f"n_neighbors={neighbours} needs at least {neighbours + 1} images, got 8"
    with pytest.raises(ValueError, match=expected):
        recipes.cluster_images(digits[:8], 3, epochs=1, init_epochs=1)


def test_cluster_images_refuses_pixels_outside_the_unit_interval(digits):
    with pytest.raises(ValueError, match=r"pixels must lie in \[0, 1\].*from 0 to 16"):
        recipes.cluster_images(digits[:60] * 16, 3, epochs=1, init_epochs=1)


def test_predict_follows_the_rule_of_fitting(digits):
    """predict of raw 0..16 pixels (16 times the fitted scale) was silently accepted."""
    fitted = recipes.cluster_images(
        digits[:60], 3, epochs=1, init_epochs=1, starts=1, gmm_starts=1
    )
    assert fitted.predict(digits[:60]).shape == (60,)
    for bad in (digits[:60] * 16, digits[:60] - 0.5):
        with pytest.raises(
            ValueError, match=r"pixels must lie in \[0, 1\] as for fitting"
        ):
            fitted.predict(bad)
        with pytest.raises(
            ValueError, match=r"pixels must lie in \[0, 1\] as for fitting"
        ):
            fitted.transform(bad)
    with pytest.raises(
        ValueError, match=r"pixels must have shape \(N, 64\), got \(5, 10\)"
    ):
        fitted.predict(digits[:5, :10])
