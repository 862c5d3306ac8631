"""Large inputs: evaluation in chunks gives the same numbers with memory flat in N (issue 16, item 7)."""

import pytest
import torch

from vmonf_mini import VMoNF
from vmonf_mini.mixture import DEFAULT_CHUNK_SIZE

METHODS = [
    "log_prob",
    "component_log_prob",
    "exact_posterior",
    "log_posterior",
    "posterior",
    "elbo",
    "predict",
]


def _model(flow="realnvp"):
    torch.manual_seed(0)
    model = (
        VMoNF(2, 3, flow=flow, blocks=2, hidden=6, encoder_hidden=(5,)).double().train()
    )
    with torch.no_grad():
        for _ in range(5):  # running averages away from their initial values
            model.elbo(torch.randn(64, 2, dtype=torch.float64) * 2 + 1)
    return model.eval()


def _spy_rows(model):
    """Rows of every call to the flows and to the encoder."""
    rows = {"flows": [], "encoder": []}
    log_prob = model.components.log_prob

    def flows(x):
        rows["flows"].append(x.shape[0])
        return log_prob(x)

    model.components.log_prob = flows
    model.encoder.register_forward_hook(
        lambda module, args, out: rows["encoder"].append(args[0].shape[0])
    )
    return rows


@pytest.mark.parametrize("flow", ["realnvp", "maf"])
@pytest.mark.parametrize("method", METHODS)
def test_evaluation_in_chunks_gives_the_same_numbers_and_never_passes_more_rows(
    flow, method
):
    model = _model(flow)
    x = torch.randn(1000, 2, dtype=torch.float64) * 3
    with torch.no_grad():
        whole = getattr(model, method)(x, chunk_size=1000)
        rows = _spy_rows(model)
        chunked = getattr(model, method)(x, chunk_size=64)
    torch.testing.assert_close(chunked, whole, rtol=1e-12, atol=1e-12)
    for called in rows.values():
        assert max(called, default=0) <= 64 and sum(called) in (0, 1000)
    assert rows["flows"] or rows["encoder"]


def test_small_inputs_take_one_pass_and_large_ones_the_default_chunk():
    model = _model()
    rows = _spy_rows(model)
    with torch.no_grad():
        model.log_prob(torch.zeros(10, 2, dtype=torch.float64))
        model.log_prob(torch.zeros(DEFAULT_CHUNK_SIZE + 5, 2, dtype=torch.float64))
    assert rows["flows"] == [10, DEFAULT_CHUNK_SIZE, 5]


def test_training_mode_is_not_chunked_batch_norm_uses_the_whole_batch():
    model = _model().train()
    x = torch.randn(100, 2, dtype=torch.float64)
    rows = _spy_rows(model)
    model.elbo(x, chunk_size=10)
    assert rows["flows"] == [100] and rows["encoder"] == [100]


def test_gradients_flow_through_chunked_evaluation():
    model = _model()
    x = torch.randn(50, 2, dtype=torch.float64)
    grads = []
    for chunk_size in (50, 7):
        model.zero_grad()
        model.log_prob(x, chunk_size=chunk_size).sum().backward()
        grads.append([p.grad.clone() for p in model.components.parameters()])
    for whole, chunked in zip(*grads):
        torch.testing.assert_close(chunked, whole)


@pytest.mark.parametrize("chunk_size", [0, -1, 2.5, True, None])
def test_a_bad_chunk_size_is_refused(chunk_size):
    with pytest.raises(ValueError, match="chunk_size"):
        _model().log_prob(torch.zeros(3, 2, dtype=torch.float64), chunk_size=chunk_size)
