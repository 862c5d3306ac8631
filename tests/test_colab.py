"""The Colab-like check (tools/colab/check_install.py): its pieces here, the whole check with
``make colab-test`` (marker ``colab``; it needs Python 3.11 and a few minutes, and skips unless
``VMONF_COLAB_TEST=1``, which ``make colab-test`` sets)."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location(
    "check_install", ROOT / "tools" / "colab" / "check_install.py"
)
check_install = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_install)

KERNEL = {
    "ipykernel": "6.17.1",
    "ipython": "7.34.0",
    "ipywidgets": "7.7.1",
    "traitlets": "5.7.1",
    "torch": "2.13.0",
}


def test_the_install_cell_is_pointed_at_the_wheel():
    new = json.loads((ROOT / "book" / "06_pinwheel.ipynb").read_text(encoding="utf-8"))[
        "cells"
    ]
    old = [
        {
            "cell_type": "code",
            "source": [
                'if importlib.util.find_spec("vmonf_mini") is None:\n',
                '    %pip install -q "vmonf_mini[book] @ git+https://github.com/vmonf-book/vmonf-mini"',
            ],
        }
    ]
    for cells in (new, old):
        assert (
            check_install.point_install_at(
                cells, "file:///w/vmonf_mini-0.2.0-py3-none-any.whl"
            )
            == 1
        )
        text = "".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        assert (
            "github.com" not in text
            and "file:///w/vmonf_mini-0.2.0-py3-none-any.whl" in text
        )
    assert 'f"file:///w/vmonf_mini-0.2.0-py3-none-any.whl"' in "".join(
        new[1]["source"]
    )  # @{VMONF_REF} went too


def test_adding_the_book_packages_is_fine():
    after = dict(KERNEL, **{"vmonf-mini": "0.2.0", "normflows": "1.7.3"})
    assert check_install.problems_with(KERNEL, after) == []
    assert check_install.diff(KERNEL, after) == {
        "added": ["normflows 1.7.3", "vmonf-mini 0.2.0"],
        "removed": [],
        "changed": [],
    }


def test_replacing_a_kernel_package_or_adding_others_fails():
    # what today's cell did in Colab: ipywidgets 7 -> 8, and jupyter-book among 31 other packages
    after = dict(
        KERNEL,
        ipywidgets="8.1.9",
        **{"vmonf-mini": "0.1.0", "jupyter-book": "1.0.4.post1"},
    )
    found = check_install.problems_with(KERNEL, after)
    assert (
        "replaced ipywidgets 7.7.1 -> 8.1.9 (a package the kernel has loaded)" in found
    )
    assert "added jupyter-book 1.0.4.post1, which the chapters do not need" in found
    assert check_install.problems_with(
        KERNEL, {k: v for k, v in after.items() if k != "traitlets"}
    )[-1].startswith("removed traitlets")
    assert check_install.problems_with(KERNEL, dict(KERNEL, normflows="1.7.3")) == [
        "vmonf_mini was not installed"
    ]
    assert check_install.problems_with(
        dict(KERNEL, normflows="1.7.2"),
        dict(KERNEL, normflows="1.7.3", **{"vmonf-mini": "0.2.0"}),
    )


def test_numpy_copy_warnings_are_found_in_outputs():
    cells = [
        {
            "cell_type": "code",
            "id": "a",
            "source": "ax.imshow(t)\n",
            "outputs": [
                {
                    "output_type": "stream",
                    "name": "stderr",
                    "text": "DeprecationWarning: __array__ implementation doesn't accept a copy keyword, so passing copy=False failed.",
                }
            ],
        },
        {
            "cell_type": "code",
            "id": "b",
            "source": "ax.imshow(t.numpy())",
            "outputs": [],
        },
    ]
    assert check_install.numpy_copy_warnings(cells) == ["a"]


@pytest.mark.colab
@pytest.mark.skipif(
    os.environ.get("VMONF_COLAB_TEST", "") in ("", "0"),
    reason="the Colab-like check: make colab-test",
)
def test_every_chapter_installs_and_runs_in_a_colab_like_environment():
    # the check's report streams to the terminal (make colab-test runs pytest with -s)
    run = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "colab" / "check_install.py")]
    )
    assert run.returncode == 0, "the Colab-like check failed: see its report above"
