"""Every method returns tensors of the model's dtype on the model's device, in float32 and float64.

A stray ``torch.arange`` without ``device=``, a float32 buffer that does not follow ``.double()``
or a NumPy round trip would show up here as a wrong dtype (or, on the "meta" device, as an error).
"""

import pytest
import torch

from vmonf_mini import VMoNF, fit
from vmonf_mini.flows import maf, realnvp

DTYPES = [torch.float32, torch.float64]
FLOWS = ["realnvp", "maf"]


def _model(flow, dtype, dim=3, k=3, **kw):
    return (
        VMoNF(dim, k, flow=flow, blocks=2, hidden=6, encoder_hidden=(5,), **kw)
        .to(dtype)
        .eval()
    )


def _check(t, dtype, device=torch.device("cpu")):
    assert t.dtype == dtype, f"{t.dtype} != {dtype}"
    assert t.device == device
    assert torch.isfinite(t.float()).all()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("flow", FLOWS)
def test_every_method_returns_the_model_dtype(flow, dtype):
    model = _model(flow, dtype, prior="learned")
    assert all(p.dtype == dtype for p in model.parameters())
    assert all(b.dtype == dtype for b in model.buffers() if b.is_floating_point())
    x = torch.randn(16, 3, dtype=dtype)
    with torch.no_grad():
        for method in (
            "log_prob",
            "component_log_prob",
            "exact_posterior",
            "posterior",
            "log_posterior",
            "elbo",
        ):
            _check(getattr(model, method)(x), dtype)
        _check(model.log_prior(), dtype)
        _check(model.elbo(x, temperature=0.01), dtype)
        for exact in (False, True):
            _check(model.predict(x, exact=exact), torch.int64)
        samples, components = model.sample(9)
        _check(samples, dtype)
        _check(components, torch.int64)
        _check(model.sample_component(1, 4), dtype)
        _check(model.sample_each_component(3), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_inputs_of_another_dtype_or_numpy_are_converted_to_the_model_dtype(dtype):
    model = _model("realnvp", dtype)
    other = torch.float64 if dtype == torch.float32 else torch.float32
    x = torch.randn(5, 3, dtype=other)
    with torch.no_grad():
        _check(model.log_prob(x), dtype)
        _check(model.posterior(x.numpy()), dtype)
        _check(model.elbo(x.tolist()), dtype)
        _check(model.log_prob(torch.zeros(2, 3, dtype=torch.int64)), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("flow", FLOWS)
def test_fit_and_checkpoints_keep_the_dtype(tmp_path, flow, dtype):
    model = _model(flow, dtype).train()
    x = torch.randn(
        40, 3, dtype=torch.float32
    )  # fit converts the data to the model's dtype
    labels = torch.full((40,), -1)
    labels[:4] = torch.tensor([0, 1, 2, 0])
    history = fit(
        model,
        x,
        labels,
        epochs=1,
        batch_size=16,
        pretrain_epochs=1,
        seed=0,
        progress=False,
    )
    assert all(isinstance(v, float) for v in history.loss + history.pretrain_loss)
    assert all(p.dtype == dtype for p in model.parameters())
    assert all(b.dtype == dtype for b in model.buffers() if b.is_floating_point())
    path = tmp_path / "m.pt"
    model.save(path)
    loaded = VMoNF.load(path).eval()
    assert all(p.dtype == dtype for p in loaded.parameters())
    xt = x[:6].to(dtype)
    with torch.no_grad():
        _check(loaded.log_prob(xt), dtype)
        assert torch.equal(loaded.log_prob(xt), model.log_prob(xt))


def test_fit_with_a_kmeans_init_keeps_the_dtype():
    model = _model("realnvp", torch.float64, k=2).train()
    x = torch.cat([torch.randn(20, 3) - 3, torch.randn(20, 3) + 3])
    fit(
        model,
        x,
        epochs=1,
        batch_size=20,
        init="kmeans",
        init_epochs=1,
        seed=0,
        progress=False,
    )
    with torch.no_grad():
        _check(model.posterior(x), torch.float64)


@pytest.mark.parametrize("builder", [realnvp, maf])
def test_building_under_a_float64_default_dtype_gives_float64_everywhere(builder):
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        flow = builder(3, k=2, blocks=2, hidden=4).eval()
        model = VMoNF(
            3, 2, flow="realnvp" if builder is realnvp else "maf", blocks=2, hidden=4
        ).eval()
    finally:
        torch.set_default_dtype(previous)
    for module in (flow, model):
        tensors = list(module.parameters()) + [
            b for b in module.buffers() if b.is_floating_point()
        ]
        assert all(t.dtype == torch.float64 for t in tensors)
    x = torch.randn(4, 3, dtype=torch.float64)
    with torch.no_grad():
        _check(flow.log_prob(x), torch.float64)
        _check(model.elbo(x), torch.float64)


@pytest.mark.parametrize("builder", [realnvp, maf])
def test_flows_run_on_the_meta_device(builder):
    """No tensor is created on a fixed device: on "meta" (shapes only) a stray CPU tensor would fail."""
    flow = builder(4, k=3, blocks=2, hidden=8).to("meta")
    x = torch.empty(5, 4, device="meta")
    lp = flow.log_prob(x)
    assert lp.shape == (5, 3) and lp.device.type == "meta"
    z, log_det = flow.train()(x)
    assert z.shape == (3, 5, 4) and log_det.device.type == "meta"
    if builder is realnvp:  # MAF's inverse walks its feature order on the host
        assert flow.eval().inverse(z).device.type == "meta"
