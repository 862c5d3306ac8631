"""Inputs that used to be accepted silently, with wrong results (issue 16, item 10)."""

import math

import numpy as np
import pytest
import torch

from vmonf_mini import VMoNF
from vmonf_mini.flows import maf
from vmonf_mini.metrics import ari, cluster_accuracy, nmi


@pytest.mark.parametrize("bound", [float("nan"), 0.0, -1.0, float("inf"), "5"])
def test_log_scale_bound_must_be_a_positive_number(bound):
    with pytest.raises(ValueError, match="log_scale_bound"):
        VMoNF(2, 2, flow="maf", blocks=1, hidden=4, log_scale_bound=bound)
    with pytest.raises(ValueError, match="log_scale_bound"):
        maf(2, blocks=1, hidden=4, log_scale_bound=bound)


@pytest.mark.parametrize("name", ["batch_norm", "encoder_batch_norm"])
@pytest.mark.parametrize("value", ["no", "False", 0, 1, None])
def test_batch_norm_switches_must_be_booleans(name, value):
    with pytest.raises(ValueError, match=name):
        VMoNF(2, 2, blocks=1, **{name: value})


def test_numpy_booleans_are_booleans():
    model = VMoNF(
        2, 2, blocks=1, batch_norm=np.bool_(False), encoder_batch_norm=np.bool_(True)
    )
    assert (
        model.config["batch_norm"] is False
        and model.config["encoder_batch_norm"] is True
    )
    assert not any(
        isinstance(m, torch.nn.BatchNorm1d) for m in model.components.modules()
    )


@pytest.mark.parametrize(
    "c", [np.int64(1), np.int32(1), torch.tensor(1)], ids=["int64", "int32", "tensor"]
)
def test_sample_component_takes_any_integer_index(c):
    model = VMoNF(2, 3, blocks=1, encoder_hidden=(4,)).eval()
    torch.manual_seed(0)
    expected = model.sample_component(1, 5)
    torch.manual_seed(0)
    assert torch.equal(model.sample_component(c, 5), expected)


@pytest.mark.parametrize("c", [True, np.bool_(True), 1.0, np.float64(1), 3, -1])
def test_sample_component_refuses_what_is_not_a_component_index(c):
    with pytest.raises(ValueError, match="component index"):
        VMoNF(2, 3, blocks=1).eval().sample_component(c, 5)


def _extreme_rows(dtype):
    huge = torch.finfo(dtype).max
    return torch.tensor(
        [[1e19, 0.0], [huge, -huge], [0.0, 1e30], [-huge / 3, 1.0], [0.3, -0.2]],
        dtype=dtype,
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("flow", ["realnvp", "maf"])
def test_extreme_finite_inputs_have_log_density_minus_inf_not_nan(flow, dtype):
    torch.manual_seed(0)
    model = VMoNF(2, 3, flow=flow, blocks=2, hidden=8).to(dtype).eval()
    x = _extreme_rows(dtype)
    with torch.no_grad():
        log_p, comp, elbo = (
            model.log_prob(x),
            model.component_log_prob(x),
            model.elbo(x),
        )
    for values in (log_p, comp, elbo):
        assert not bool(torch.isnan(values).any())
    assert bool(
        (log_p[1] == -math.inf) & (log_p[3] == -math.inf)
    )  # |x| ~ max float: beyond any float
    assert bool((log_p[:4] < -1e30).all()) and bool(
        torch.isfinite(log_p[4])
    )  # far tails; a normal point
    assert bool((elbo <= log_p).all())


def test_a_model_with_nan_weights_still_answers_nan():
    model = VMoNF(2, 3, blocks=2).double().eval()
    with torch.no_grad():
        next(model.components.parameters()).fill_(float("nan"))
        assert bool(torch.isnan(model.log_prob(_extreme_rows(torch.float64))).all())


@pytest.mark.parametrize("metric", [cluster_accuracy, nmi, ari])
def test_metrics_refuse_nan_labels(metric):
    y = np.array([0.0, 1.0, float("nan"), 1.0])
    c = np.array([0, 1, 1, 1])
    with pytest.raises(ValueError, match="labels contain NaN"):
        metric(y, c)
    with pytest.raises(ValueError, match="clusters contain NaN"):
        metric(c, torch.tensor(y))
