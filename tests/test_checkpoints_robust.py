"""Checkpoints: what save() writes, interrupted saves, and checkpoints load() must refuse.

(Missing, corrupt and truncated files, another format version and a config whose weights do not
match are in tests/test_inputs.py; exact round trips in tests/test_mixture.py and
tests/test_properties.py.)
"""

import os
import subprocess
import sys
import time

import pytest
import torch

from vmonf_mini import VMoNF
from vmonf_mini.flows import realnvp
from vmonf_mini.checkpoint import CHECKPOINT_FORMAT


def _model(**kw):
    kw.setdefault("blocks", 1)
    return VMoNF(2, 3, encoder_hidden=(4,), **kw).eval()


def test_a_checkpoint_holds_its_format_version_and_constructor_arguments(tmp_path):
    model = VMoNF(
        3,
        2,
        flow="maf",
        blocks=2,
        hidden=[5, 4],
        encoder_hidden=(6,),
        prior=[0.25, 0.75],
        batch_norm=False,
        log_scale_bound=3.0,
    )
    path = tmp_path / "m.pt"
    model.save(path)
    payload = torch.load(path, weights_only=True)
    assert payload["format"] == CHECKPOINT_FORMAT
    config = dict(payload["config"])
    assert config == model.config and config.pop("custom_components") is False
    rebuilt = VMoNF(**config)  # the config is exactly the constructor's arguments
    rebuilt.load_state_dict(payload["state_dict"])
    assert all(v.device.type == "cpu" for v in payload["state_dict"].values())


def test_a_checkpoint_gets_the_permissions_of_a_normally_created_file(tmp_path):
    path, plain = tmp_path / "m.pt", tmp_path / "plain.txt"
    _model().save(path)
    plain.write_text("")
    assert (path.stat().st_mode & 0o777) == (plain.stat().st_mode & 0o777)


def test_save_replaces_an_existing_checkpoint(tmp_path):
    path = tmp_path / "m.pt"
    _model().save(path)
    newer = _model(blocks=2)
    newer.save(path)
    assert VMoNF.load(path).config["blocks"] == 2
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]


def test_save_to_a_relative_path_and_a_str(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _model().save("relative.pt")
    assert VMoNF.load(str(tmp_path / "relative.pt")).k == 3


class _Interrupted(Exception):
    pass


def _torch_save_that_dies_half_way(payload, f, *args, **kwargs):
    f.write(b"PK\x03\x04 half a checkpoint")
    raise _Interrupted("simulated crash while writing")


@pytest.mark.parametrize("error", [_Interrupted, KeyboardInterrupt])
def test_an_interrupted_save_leaves_the_old_checkpoint_and_no_temporary_file(
    tmp_path, monkeypatch, error
):
    path = tmp_path / "m.pt"
    old = _model()
    old.save(path)
    before = path.read_bytes()

    def dies(payload, f, *args, **kwargs):
        f.write(b"partial")
        raise error("simulated interruption")

    monkeypatch.setattr(torch, "save", dies)
    with pytest.raises(error):
        _model(blocks=2).save(path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]
    x = torch.randn(4, 2)
    assert torch.equal(VMoNF.load(path).eval().log_prob(x), old.log_prob(x))


def test_a_failing_rename_leaves_the_old_checkpoint_and_no_temporary_file(
    tmp_path, monkeypatch
):
    path = tmp_path / "m.pt"
    _model().save(path)
    before = path.read_bytes()

    def no_rename(src, dst):
        raise OSError("simulated: disk full at rename")

    monkeypatch.setattr(os, "replace", no_rename)
    with pytest.raises(OSError, match="disk full"):
        _model(blocks=2).save(path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]


def test_an_interrupted_first_save_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(torch, "save", _torch_save_that_dies_half_way)
    with pytest.raises(_Interrupted):
        _model().save(tmp_path / "m.pt")
    assert list(tmp_path.iterdir()) == []


def test_saving_into_a_missing_folder_fails_and_creates_nothing(tmp_path):
    with pytest.raises(FileNotFoundError):
        _model().save(tmp_path / "absent" / "m.pt")
    assert list(tmp_path.iterdir()) == []


def test_custom_components_cannot_be_saved_with_save(tmp_path):
    model = VMoNF(2, 2, components=[realnvp(2, k=1, blocks=1) for _ in range(2)])
    with pytest.raises(ValueError, match="needs the built-in flows"):
        model.save(tmp_path / "m.pt")
    assert list(tmp_path.iterdir()) == []


def _tamper(tmp_path, change):
    path = tmp_path / "m.pt"
    _model().save(path)
    payload = torch.load(path, weights_only=True)
    change(payload)
    torch.save(payload, path)
    return path


@pytest.mark.parametrize(
    "change",
    [
        lambda p: p["config"].update(flow="maf"),
        lambda p: p["config"].update(dim=4),
        lambda p: p["config"].update(k=2),
        lambda p: p["config"].update(encoder_hidden=[8]),
        lambda p: p["state_dict"].pop("encoder.0.weight"),
    ],
    ids=["other flow", "other dim", "other k", "other encoder", "missing weight"],
)
def test_load_refuses_weights_of_another_architecture(tmp_path, change):
    with pytest.raises(ValueError, match="weights do not match the architecture"):
        VMoNF.load(_tamper(tmp_path, change))


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda p: p["config"].update(future_option=True), "cannot build"),
        (lambda p: p["config"].update(flow="glow"), "cannot build"),
        (lambda p: p["config"].update(k=0), "cannot build"),
        (lambda p: p.update(format="1"), "checkpoint format '1'"),
        (
            lambda p: p.update(format=CHECKPOINT_FORMAT + 1),
            f"checkpoint format {CHECKPOINT_FORMAT + 1}",
        ),
    ],
    ids=["unknown option", "unknown flow", "bad k", "format as text", "newer format"],
)
def test_load_refuses_configs_it_cannot_build_with_a_clear_message(
    tmp_path, change, message
):
    with pytest.raises(ValueError, match=message):
        VMoNF.load(_tamper(tmp_path, change))


@pytest.mark.parametrize(
    "payload", [[1, 2, 3], {"format": 1}, "text"], ids=["list", "no config", "str"]
)
def test_load_refuses_files_that_are_not_vmonf_checkpoints(tmp_path, payload):
    path = tmp_path / "other.pt"
    torch.save(payload, path)
    with pytest.raises(ValueError, match="not a VMoNF checkpoint"):
        VMoNF.load(path)


def _trained_model(flow="realnvp"):
    """A model whose batch-norm running averages are far from their initial values."""
    torch.manual_seed(0)
    model = (
        VMoNF(2, 3, flow=flow, blocks=2, hidden=6, encoder_hidden=(5,)).double().train()
    )
    with torch.no_grad():
        for _ in range(20):
            model.elbo(3.0 + 2.0 * torch.randn(64, 2, dtype=torch.float64))
    return model.eval()


@pytest.mark.parametrize("flow", ["realnvp", "maf"])
def test_a_loaded_model_is_in_eval_mode_and_answers_exactly_as_the_saved_one(
    tmp_path, flow
):
    model = _trained_model(flow)
    model.save(tmp_path / "m.pt")
    loaded = VMoNF.load(
        tmp_path / "m.pt"
    )  # no .eval(): load must return an eval-mode model
    assert not loaded.training and not any(m.training for m in loaded.modules())
    x = torch.randn(50, 2, dtype=torch.float64)
    running = {k: v.clone() for k, v in loaded.state_dict().items() if "running" in k}
    with torch.no_grad():
        assert torch.equal(loaded.log_prob(x), model.log_prob(x))
        assert torch.equal(loaded.predict(x), model.predict(x))
        assert torch.equal(loaded.predict(x, exact=True), model.predict(x, exact=True))
        assert torch.equal(
            loaded.posterior(x[:1]), model.posterior(x[:1])
        )  # one point: no batch statistics
    assert all(
        torch.equal(loaded.state_dict()[k], v) for k, v in running.items()
    )  # running averages untouched


def _real_weights_built(monkeypatch):
    """Record the number of weights of every StackedLinear built on a real (not meta) device."""
    import vmonf_mini.layers as layers

    built, init = [], layers.StackedLinear.__init__

    def spy(self, *args, **kwargs):
        init(self, *args, **kwargs)
        if self.weight.device.type != "meta":
            built.append(self.weight.numel())

    monkeypatch.setattr(layers.StackedLinear, "__init__", spy)
    return built


@pytest.mark.parametrize(
    "change",
    [
        lambda p: p["config"].update(hidden=[3000, 3000]),
        lambda p: p["config"].update(blocks=500),
        lambda p: p["config"].update(encoder_hidden=[4] * 200),
        lambda p: p["config"].update(
            hidden=[8, 8]
        ),  # plausible sizes: refused by the shapes built on meta
    ],
    ids=["huge hidden", "many blocks", "many encoder layers", "one more layer"],
)
def test_load_checks_the_config_against_the_saved_shapes_before_building_the_model(
    tmp_path, monkeypatch, change
):
    path = _tamper(tmp_path, change)
    built = _real_weights_built(monkeypatch)
    with pytest.raises(ValueError, match="weights do not match the architecture"):
        VMoNF.load(path)
    assert built == []  # refused before any real allocation


def test_load_names_the_tensors_whose_shapes_differ(tmp_path):
    path = _tamper(
        tmp_path,
        lambda p: p["state_dict"].update({"encoder.0.weight": torch.zeros(5, 2)}),
    )
    with pytest.raises(
        ValueError, match=r"encoder\.0\.weight \(5, 2\) \(config: \(4, 2\)\)"
    ):
        VMoNF.load(path)


def _dead_pid():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_save_removes_temporary_files_of_killed_saves_but_not_of_saves_in_progress(
    tmp_path,
):
    from vmonf_mini.atomic import _HOST, STALE_TEMPORARY_SECONDS

    dead = tmp_path / f".m.pt.vmonf-tmp-{_HOST}-{_dead_pid()}-abc123"
    other_dead = tmp_path / f".other.pt.vmonf-tmp-{_HOST}-{_dead_pid()}-x_9"
    live = (
        tmp_path / f".m.pt.vmonf-tmp-{_HOST}-{os.getppid()}-def456"
    )  # a save in progress elsewhere
    live_but_old = (
        tmp_path / f".m.pt.vmonf-tmp-{_HOST}-{os.getppid()}-ghi789"
    )  # a reused pid
    remote = (
        tmp_path / f".m.pt.vmonf-tmp-other-host-{os.getpid()}-jkl012"
    )  # another machine's save
    unrelated = tmp_path / ".m.pt.tmp"
    for f in (dead, other_dead, live, live_but_old, remote, unrelated):
        f.write_bytes(b"partial")
    hours_ago = time.time() - 2 * STALE_TEMPORARY_SECONDS
    os.utime(live_but_old, (hours_ago, hours_ago))
    _model().save(tmp_path / "m.pt")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["m.pt", live.name, remote.name, unrelated.name]
    )


_SAVE_FOREVER = """
import sys, torch
from vmonf_mini import VMoNF
torch.manual_seed(0)
model = VMoNF(20, 2, flow="maf", blocks=2, hidden=400, encoder_hidden=(4,))
print("ready", flush=True)
while True:
    model.save(sys.argv[1])
"""


def test_a_save_killed_with_sigkill_leaves_a_loadable_checkpoint_and_the_next_save_cleans_up(
    tmp_path,
):
    path = tmp_path / "m.pt"
    old = VMoNF(20, 2, flow="maf", blocks=2, hidden=400, encoder_hidden=(4,)).eval()
    old.save(path)
    child = subprocess.Popen(
        [sys.executable, "-c", _SAVE_FOREVER, str(path)], stdout=subprocess.PIPE
    )
    try:
        assert child.stdout.readline().strip() == b"ready"
        deadline = time.time() + 60
        while (
            not [p for p in tmp_path.iterdir() if p.name != "m.pt"]
            and time.time() < deadline
        ):
            time.sleep(0.001)
    finally:
        child.kill()  # SIGKILL: no cleanup handler runs
        child.wait()
    VMoNF.load(path)  # the old or a new checkpoint, whole
    _model().save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]
