"""Property-based tests (hypothesis): over random sizes, flows are invertible with exact
log-determinants, the ELBO bounds log p(x), and checkpoints round-trip exactly.

Bounded to a few dozen examples each so that the whole file runs in well under 30 seconds.
"""

import tempfile
from pathlib import Path

import pytest
import torch

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from flow_harness import jacobian_log_det  # noqa: E402
from vmonf_mini import VMoNF  # noqa: E402
from vmonf_mini.flows import maf, realnvp  # noqa: E402

BOUNDED = settings(max_examples=25, deadline=None, derandomize=True, database=None)

shapes = st.fixed_dictionaries(
    {
        "flow": st.sampled_from(["realnvp", "maf"]),
        "dim": st.integers(2, 6),
        "n": st.integers(1, 16),
        "k": st.integers(1, 5),
        "blocks": st.integers(1, 3),
        "hidden": st.integers(2, 12),
        "seed": st.integers(0, 2**16),
    }
)


def _perturbed(
    module: torch.nn.Module, seed: int, scale: float = 0.3
) -> torch.nn.Module:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return module


def _data(s, dtype=torch.float64):
    return torch.randn(
        s["n"],
        s["dim"],
        generator=torch.Generator().manual_seed(s["seed"] + 1),
        dtype=dtype,
    )


@BOUNDED
@given(shapes)
def test_flows_invert_and_log_det_matches_autograd(s):
    builder = realnvp if s["flow"] == "realnvp" else maf
    flow = _perturbed(
        builder(s["dim"], k=s["k"], blocks=s["blocks"], hidden=s["hidden"]).double(),
        s["seed"],
    ).eval()
    x = _data(s)
    z, log_det = flow(x)
    assert z.shape == (s["k"], s["n"], s["dim"]) and log_det.shape == (s["k"], s["n"])
    torch.testing.assert_close(flow.inverse(z), x.expand_as(z), atol=1e-8, rtol=1e-8)
    c, rows = (
        s["seed"] % s["k"],
        min(s["n"], 3),
    )  # one component, a few points: autograd's Jacobian is slow
    torch.testing.assert_close(
        log_det[c, :rows], jacobian_log_det(flow, x[:rows], c), atol=1e-8, rtol=1e-8
    )


@BOUNDED
@given(shapes, st.floats(min_value=1e-3, max_value=10.0))
def test_elbo_never_exceeds_log_p(s, temperature):
    model = VMoNF(
        s["dim"],
        s["k"],
        flow=s["flow"],
        blocks=s["blocks"],
        hidden=s["hidden"],
        encoder_hidden=(4,),
    )
    model = _perturbed(model.double(), s["seed"]).eval()
    x = _data(s)
    with torch.no_grad():
        elbo, log_p = model.elbo(x, temperature), model.log_prob(x)
    assert elbo.shape == log_p.shape == (s["n"],)
    assert (elbo <= log_p + 1e-9 * (1 + log_p.abs())).all()
    if s["k"] == 1:
        torch.testing.assert_close(elbo, log_p)


@settings(max_examples=15, deadline=None, derandomize=True, database=None)
@given(
    shapes,
    st.sampled_from([torch.float32, torch.float64]),
    st.sampled_from([None, "learned"]),
)
def test_save_load_round_trip_is_exact(s, dtype, prior):
    model = VMoNF(
        s["dim"],
        s["k"],
        flow=s["flow"],
        blocks=s["blocks"],
        hidden=s["hidden"],
        encoder_hidden=(3,),
        prior=prior,
    )
    model = _perturbed(model.to(dtype), s["seed"]).eval()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.pt"
        model.save(path)
        loaded = VMoNF.load(path).eval()
        assert sorted(p.name for p in Path(folder).iterdir()) == ["model.pt"]
    assert loaded.config == model.config
    state, loaded_state = model.state_dict(), loaded.state_dict()
    assert state.keys() == loaded_state.keys()
    assert all(torch.equal(state[key], loaded_state[key]) for key in state)
    x = _data(s, dtype)
    with torch.no_grad():
        assert torch.equal(loaded.log_prob(x), model.log_prob(x))
        assert torch.equal(loaded.posterior(x), model.posterior(x))
