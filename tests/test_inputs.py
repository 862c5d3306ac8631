"""Bad input gets a clear error that names the problem, before anything is changed."""

import pytest
import torch

from vmonf_mini import ExponentialDecay, VMoNF, fit
from vmonf_mini.data import digits, pinwheel, two_circles
from vmonf_mini.metrics import cluster_accuracy, contingency
from vmonf_mini.runtime import budget, pick


@pytest.fixture
def model():
    return VMoNF(2, 3, blocks=1, encoder_hidden=(4,)).eval()


@pytest.mark.parametrize(
    "bad, error, message",
    [
        (torch.zeros(4, 3), ValueError, r"x must have shape \(N, 2\), got \(4, 3\)"),
        (torch.zeros(4), ValueError, r"x must have shape \(N, 2\), got \(4,\)"),
        (torch.zeros(0, 2), ValueError, "x is empty"),
        (
            torch.tensor([[0.0, float("nan")], [1.0, 2.0]]),
            ValueError,
            "NaN or infinite values \\(in 1 of 2 rows\\)",
        ),
        (torch.tensor([[0.0, float("inf")]]), ValueError, "NaN or infinite"),
        ("not data", TypeError, "x must be a tensor or array"),
        (torch.zeros(2, 2, dtype=torch.complex64), TypeError, "real numbers"),
    ],
)
@pytest.mark.parametrize(
    "method", ["log_prob", "component_log_prob", "posterior", "elbo", "predict"]
)
def test_every_density_method_rejects_bad_x(model, method, bad, error, message):
    with pytest.raises(error, match=message):
        getattr(model, method)(bad)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(dim=2, k=0), "k must be a positive integer"),
        (dict(dim=0, k=2), "dim must be a positive integer"),
        (dict(dim=2, k=2.5), "k must be a positive integer"),
        (dict(dim=2, k=2, flow="glow"), "flow must be one of"),
        (dict(dim=2, k=2, prior="uniform"), "prior must be None, 'learned'"),
        (dict(dim=2, k=2, prior=[0.5, 0.6]), "sum to 1"),
        (dict(dim=2, k=2, prior=[1.0, 0.0]), "positive probabilities"),
        (dict(dim=2, k=2, encoder_hidden=(0,)), "encoder_hidden"),
        (dict(dim=2, k=2, blocks=0), "blocks must be a positive integer"),
        (dict(dim=1, k=2), "realnvp needs dim >= 2"),
        (dict(dim=2, k=2, components=[]), "components must hold k=2"),
    ],
)
def test_constructor_rejects_bad_arguments(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        VMoNF(**kwargs)


@pytest.mark.parametrize("temperature", [0.0, -1.0, float("nan"), float("inf"), "hot"])
def test_bad_temperature(model, temperature):
    with pytest.raises((ValueError, TypeError), match="temperature must be a positive"):
        model.posterior(torch.zeros(2, 2), temperature)


def test_bad_sampling_arguments(model):
    with pytest.raises(ValueError, match="n must be a positive integer"):
        model.sample(0)
    with pytest.raises(ValueError, match=r"c must be a component index in 0..2"):
        model.sample_component(3, 5)
    with pytest.raises(ValueError, match="n must be a positive integer"):
        model.sample_each_component(0)


@pytest.mark.parametrize(
    "labels, message",
    [
        (
            torch.tensor([0, 1, 5, -1]),
            r"labels must be -1 \(unlabeled\) or 0..2; found \[5\]",
        ),
        (torch.tensor([0, 1, -2, -1]), r"found \[-2\]"),
        (
            torch.tensor([0, 1, 2]),
            r"labels must have shape \(4,\) to match x, got \(3,\)",
        ),
        (torch.tensor([0.0, 1.0, 1.0, 0.0]), "labels must be integers"),
    ],
)
def test_fit_rejects_bad_labels(model, labels, message):
    x = torch.randn(4, 2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises((ValueError, TypeError), match=message):
        fit(model, x, labels, epochs=1, batch_size=4, progress=False)
    assert all(
        torch.equal(before[k], v) for k, v in model.state_dict().items()
    )  # nothing changed


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(epochs=0), "epochs must be a positive integer"),
        (dict(epochs=1, batch_size=1), "batch_size must be at least 2"),
        (dict(epochs=1, lr=-1.0), "lr must be a positive number"),
        (dict(epochs=1, weight_decay=-0.1), "weight_decay must be a number >= 0"),
        (dict(epochs=1, objective="map"), "objective must be 'elbo' or 'exact'"),
        (dict(epochs=1, temperature=0.0), "temperature must be a positive"),
        (
            dict(epochs=1, temperature=lambda step: float("nan")),
            r"temperature\(step\) must be a positive",
        ),
        (
            dict(epochs=1, pretrain_epochs=2),
            "pretrain_epochs needs at least two labeled points",
        ),
        (
            dict(epochs=1, clip_grad_norm=0.0),
            "clip_grad_norm must be None or a positive number",
        ),
        (dict(epochs=1, consistency="high"), "consistency must be a number >= 0"),
        (dict(epochs=1, lr=True), "lr must be a positive number"),
        (dict(epochs=1, init_epochs=0), "init_epochs must be a positive integer"),
        (
            dict(epochs=1, init_lr=float("nan")),
            "init_lr must be None or a positive number",
        ),
    ],
)
def test_fit_rejects_bad_settings(model, kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        fit(model, torch.randn(8, 2), progress=False, **kwargs)


def test_fit_rejects_a_single_point_and_a_wrong_model(model):
    with pytest.raises(ValueError, match="at least two points"):
        fit(model, torch.randn(1, 2), epochs=1, progress=False)
    with pytest.raises(TypeError, match="model must be a VMoNF"):
        fit(torch.nn.Linear(2, 2), torch.randn(4, 2), epochs=1, progress=False)


def test_missing_and_corrupt_checkpoints(tmp_path, model):
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        VMoNF.load(tmp_path / "absent.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00not a checkpoint")
    with pytest.raises(ValueError, match="not a readable VMoNF checkpoint"):
        VMoNF.load(junk)
    good = tmp_path / "good.pt"
    model.save(good)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:200])
    with pytest.raises(ValueError, match="not a readable VMoNF checkpoint"):
        VMoNF.load(truncated)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(ValueError, match="not a VMoNF checkpoint"):
        VMoNF.load(other)


def test_checkpoint_from_another_format_version_is_refused(tmp_path, model):
    path = tmp_path / "m.pt"
    model.save(path)
    payload = torch.load(path, weights_only=True)
    payload["format"] = 99
    torch.save(payload, path)
    with pytest.raises(ValueError, match="checkpoint format 99"):
        VMoNF.load(path)


def test_checkpoint_whose_weights_do_not_match_its_config_is_refused(tmp_path, model):
    path = tmp_path / "m.pt"
    model.save(path)
    payload = torch.load(path, weights_only=True)
    payload["config"]["blocks"] = 2
    torch.save(payload, path)
    with pytest.raises(ValueError, match="weights do not match the architecture"):
        VMoNF.load(path)


def test_data_and_metric_arguments():
    with pytest.raises(ValueError, match="n_per_class must be a positive integer"):
        pinwheel(n_per_class=0)
    with pytest.raises(ValueError, match="noise must be >= 0"):
        two_circles(noise=-1)
    with pytest.raises(
        ValueError, match="digits must be a non-empty selection of 0..9"
    ):
        digits(digits=[12])
    with pytest.raises(ValueError, match="same length"):
        cluster_accuracy([0, 1, 1], [0, 1])
    with pytest.raises(ValueError, match="1-D"):
        contingency([[0, 1]], [[0, 1]])


def test_budget_switch(monkeypatch):
    monkeypatch.setenv("VMONF_BUDGET", "huge")
    with pytest.raises(ValueError, match="budget must be one of"):
        budget()
    monkeypatch.setenv("VMONF_BUDGET", "full")
    assert pick({"smoke": 1, "default": 2, "full": 3}) == 3
    with pytest.raises(ValueError, match="missing \\['full'\\]"):
        pick({"smoke": 1, "default": 2})
