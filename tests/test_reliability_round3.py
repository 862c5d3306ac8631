"""Reliability, round three (issue 25): the estimator's and the model's defects D05-D10, D12, D13.

Each test failed before its fix: a fixed prior's checkpoint that could not be loaded, a failed
refit that changed the fitted estimator, a tolerance checked only after training, a fit that
reseeded torch's global generator, data whose standard deviation overflows, NaN posteriors of
far points, and input errors that named the wrong problem.
"""

import numpy as np
import pytest
import torch

import vmonf_mini as vm
from vmonf_mini import MixtureOfFlows, VMoNF


# ------------------------------------------------------------------ D10: a fixed prior's checkpoint
@pytest.mark.parametrize("prior", [[0.3, 0.7], torch.tensor([0.9, 0.1])])
def test_a_model_with_a_fixed_prior_loads_back_and_answers_as_saved(tmp_path, prior):
    model = VMoNF(2, 2, blocks=1, encoder_hidden=(4,), prior=prior).eval()
    model.save(tmp_path / "m.pt")
    loaded = VMoNF.load(tmp_path / "m.pt")
    x = torch.randn(20, 2)
    assert loaded.config == model.config
    assert torch.equal(loaded.prior_logits, model.prior_logits)
    with torch.no_grad():
        assert torch.equal(loaded.log_prob(x), model.log_prob(x))


def test_a_fixed_prior_can_be_built_on_the_meta_device():
    with torch.device("meta"):
        model = VMoNF(2, 2, blocks=1, prior=[0.3, 0.7])
    assert model.prior_logits.device.type == "meta"
    assert model.config["prior"] == pytest.approx([0.3, 0.7])


@pytest.mark.parametrize(
    "prior, message",
    [
        ([0.5, 0.6], "sum to 1"),
        ([1.0, 0.0], "positive probabilities"),
        ([0.3, 0.3, 0.4], "2 positive probabilities"),
        ("uniform", "prior must be None, 'learned'"),
        (["a", "b"], "prior must be None, 'learned' or 2 probabilities"),
        ({"a": 1}, "prior must be None, 'learned' or 2 probabilities"),
    ],
)
def test_a_tampered_prior_in_a_checkpoint_is_refused_with_a_value_error(
    tmp_path, prior, message
):
    path = tmp_path / "m.pt"
    VMoNF(2, 2, blocks=1, prior=[0.3, 0.7]).save(path)
    payload = torch.load(path, weights_only=True)
    payload["config"]["prior"] = prior
    torch.save(payload, path)
    with pytest.raises(ValueError, match=message):
        VMoNF.load(path)


def test_a_checkpoint_whose_prior_logits_are_nan_is_refused(tmp_path):
    path = tmp_path / "m.pt"
    VMoNF(2, 2, blocks=1, prior=[0.3, 0.7]).save(path)
    payload = torch.load(path, weights_only=True)
    payload["state_dict"]["prior_logits"] = torch.tensor([float("nan"), 0.0])
    torch.save(payload, path)
    with pytest.raises(ValueError, match="prior_logits are not a distribution"):
        VMoNF.load(path)
