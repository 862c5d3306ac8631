"""Checkpoints: what save() writes, interrupted saves, and checkpoints load() must refuse.

(Missing, corrupt and truncated files, another format version and a config whose weights do not
match are in tests/test_inputs.py; exact round trips in tests/test_mixture.py and
tests/test_properties.py.)
"""

import os

import pytest
import torch

from vmonf_mini import VMoNF
from vmonf_mini.flows import realnvp
from vmonf_mini.mixture import CHECKPOINT_FORMAT


def _model(**kw):
    kw.setdefault("blocks", 1)
    return VMoNF(2, 3, encoder_hidden=(4,), **kw).eval()


def test_a_checkpoint_holds_its_format_version_and_constructor_arguments(tmp_path):
    model = VMoNF(3, 2, flow="maf", blocks=2, hidden=[5, 4], encoder_hidden=(6,), prior=[0.25, 0.75],
                  batch_norm=False, log_scale_bound=3.0)
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
def test_an_interrupted_save_leaves_the_old_checkpoint_and_no_temporary_file(tmp_path, monkeypatch, error):
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


def test_a_failing_rename_leaves_the_old_checkpoint_and_no_temporary_file(tmp_path, monkeypatch):
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
        (lambda p: p.update(format=CHECKPOINT_FORMAT + 1), f"checkpoint format {CHECKPOINT_FORMAT + 1}"),
    ],
    ids=["unknown option", "unknown flow", "bad k", "format as text", "newer format"],
)
def test_load_refuses_configs_it_cannot_build_with_a_clear_message(tmp_path, change, message):
    with pytest.raises(ValueError, match=message):
        VMoNF.load(_tamper(tmp_path, change))


@pytest.mark.parametrize("payload", [[1, 2, 3], {"format": 1}, "text"], ids=["list", "no config", "str"])
def test_load_refuses_files_that_are_not_vmonf_checkpoints(tmp_path, payload):
    path = tmp_path / "other.pt"
    torch.save(payload, path)
    with pytest.raises(ValueError, match="not a VMoNF checkpoint"):
        VMoNF.load(path)
