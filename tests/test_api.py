"""The package's public surface: ``__all__``, the lazy ``vm.plot``, the API page, checkpoints."""

import inspect
import os
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch

import vmonf_mini as vm
from vmonf_mini import checkpoint
from vmonf_mini.atomic import write_atomically

ROOT = Path(__file__).resolve().parents[1]
INTERNALS = {"checks", "stacking", "atomic", "mixture", "training", "estimator"}


def test_every_name_in_all_is_public_and_importable():
    assert len(set(vm.__all__)) == len(vm.__all__)
    for name in vm.__all__:
        assert not name.startswith("_"), name
        assert getattr(vm, name) is not None, name
    assert not INTERNALS & set(vm.__all__)


def test_the_public_modules_are_the_package_s_modules_minus_its_internals():
    files = {p.stem for p in (ROOT / "vmonf_mini").glob("*.py")} - {"__init__"}
    modules = {n for n in vm.__all__ if isinstance(getattr(vm, n), types.ModuleType)}
    assert modules == files - INTERNALS


def test_import_vmonf_mini_does_not_import_matplotlib_and_vm_plot_works():
    code = (
        "import sys, vmonf_mini as vm\n"
        "assert 'matplotlib' not in sys.modules, 'imported by import vmonf_mini'\n"
        "assert 'plot' in dir(vm)\n"
        "assert callable(vm.plot.decision_regions)\n"
        "assert 'matplotlib' in sys.modules\n"
        "from vmonf_mini import plot\n"
        "assert plot is vm.plot\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "MPLBACKEND": "Agg"},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr


def test_an_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'plots'"):
        vm.plots  # noqa: B018


def test_the_api_page_documents_every_public_name():
    page = (ROOT / "book" / "api.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"\.\. automodule:: vmonf_mini\.(\w+)", page))
    for name in vm.__all__:
        if inspect.ismodule(getattr(vm, name)):
            assert name in documented, f"book/api.md has no automodule for {name}"
        else:
            assert re.search(rf"\b{name}\b", page), f"book/api.md never names {name}"


def test_a_checkpoint_written_by_the_module_loads_as_the_model_that_wrote_it(tmp_path):
    torch.manual_seed(0)
    model = vm.VMoNF(2, 3, flow="maf", blocks=2, encoder_hidden=(4,)).eval()
    path = tmp_path / "m.pt"
    checkpoint.save(model, path)
    loaded = checkpoint.load(vm.VMoNF, path)
    x = torch.randn(16, 2)
    assert type(loaded) is vm.VMoNF and not loaded.training
    assert torch.equal(loaded.log_prob(x), model.log_prob(x))
    assert torch.equal(loaded.posterior(x), model.posterior(x))
    assert torch.load(path, weights_only=True)["format"] == checkpoint.CHECKPOINT_FORMAT
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]


def test_a_failed_atomic_write_keeps_the_previous_file(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"before")

    def broken(file):
        file.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomically(path, broken)
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]
    assert path.read_bytes() == b"before"
