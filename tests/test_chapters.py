"""The chapters' headers and widgets, read from the stored notebooks (nothing is executed here)."""

import functools
import json
import re
import sys
from pathlib import Path
from typing import Optional, Set, Tuple

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "book").glob("[0-9][0-9]_*.ipynb"))

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")


def cells(path):
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def source(cell):
    return "".join(cell["source"])


def test_every_install_cell_is_the_same_and_names_this_version():
    version = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))[
        "project"
    ]["version"]
    installs = {path.stem: source(cells(path)[1]) for path in CHAPTERS}
    assert len(set(installs.values())) == 1, "the chapters' install cells differ"
    install = next(iter(installs.values()))
    # the one place that names the version a chapter was written for: the package's release tag
    assert re.findall(r'^VMONF_REF = "([^"]+)"', install, re.M) == [f"v{version}"]
    assert "@{VMONF_REF}" in install
    # nothing already installed is upgraded or replaced, and no extra drags in the book build
    assert re.findall(r"^\s*%pip install -q --no-deps ", install, re.M)
    assert "[book]" not in install and "jupyter-book" not in install


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_setup_cell_has_the_budget_form_field_and_the_full_budget_hint(path):
    setup = source(cells(path)[2])
    assert (
        'BUDGET = "default"  # @param ["smoke", "default", "full"]\nBUDGET = vm.budget(BUDGET)'
        in setup
    )
    assert "SIZE = vm.pick(SIZES)" in setup
    assert f'vm.full_budget_hint("{path.stem}", SIZES, DEVICE)' in setup


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_sliders_are_left_out_of_the_html_book(path):
    """A slider cell runs in Jupyter and Colab but is removed from the HTML (an inert control
    there); a figure over the slider's range follows it for every reader."""
    all_cells = cells(path)
    for i, cell in enumerate(all_cells):
        if cell["cell_type"] == "code" and "widgets.interact" in source(cell):
            assert "remove-cell" in cell["metadata"].get("tags", []), (
                f"{path.stem}, cell {cell.get('id')}"
            )
            after = [source(c) for c in all_cells[i + 1 :] if c["cell_type"] == "code"]
            assert after and "plt.subplots(" in after[0], (
                f"no figure after the slider in {path.stem}"
            )


# {glue:text}`key:fmt`, or `chapter.ipynb::key:fmt` to paste from another chapter
GLUE_ROLE = re.compile(r"\{glue(?::\w+)?\}`(?:([\w.]+\.ipynb)::)?([^`:]+)")


@functools.lru_cache(
    maxsize=None
)  # the scorecard pastes dozens of numbers from each chapter
def _glued_keys(path: Path) -> Tuple[Set[str], Set[str]]:
    """The keys a chapter's code glues, and the prefixes of those it glues by f-string."""
    code = "\n".join(source(c) for c in cells(path) if c["cell_type"] == "code")
    glued = set(re.findall(r"""glue\(\s*f?["']([^"'{]+)["']""", code))
    prefixes = set(re.findall(r"""glue\(\s*f["']([^"'{]+)\{""", code))  # f"acc_{name}"
    return glued, prefixes


def _check_pasted(where: str, text: str, folder: Path, own: Optional[Path]) -> None:
    for doc, key in GLUE_ROLE.findall(text):
        chapter = folder / doc if doc else own
        assert chapter is not None and chapter.is_file(), f"{where}: no chapter {doc!r}"
        glued, prefixes = _glued_keys(chapter)
        assert key in glued or any(key.startswith(p) for p in prefixes), (
            f"{where}: the prose pastes {key!r}, which {chapter.stem} does not glue"
        )


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_every_number_the_prose_pastes_is_glued_by_the_chapter(path):
    """A ``{glue:text}`key``` in the prose needs a ``glue("key", ...)`` in the same chapter's
    code, and ``{glue:text}`other.ipynb::key``` one in that chapter's (the strict build would
    fail on either too, but only after executing every chapter)."""
    markdown = "\n".join(source(c) for c in cells(path) if c["cell_type"] == "markdown")
    _check_pasted(path.stem, markdown, path.parent, path)


PAGES = sorted((ROOT / "book").glob("*.md"))


@pytest.mark.parametrize("path", PAGES, ids=lambda p: p.stem)
def test_every_number_a_page_pastes_is_glued_by_its_chapter(path):
    """The scorecard and the defects page paste chapters' numbers (``chapter.ipynb::key``)."""
    _check_pasted(path.stem, path.read_text(encoding="utf-8"), path.parent, None)


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_the_prose_names_no_size_table_entry(path):
    """The prose says what a size is ("200 epochs", pasted by glue), never ``SIZE["epochs"]``."""
    for cell in cells(path):
        if cell["cell_type"] == "markdown":
            assert "SIZE[" not in source(cell), f"{path.stem}: {source(cell)[:80]!r}"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_install_and_setup_cells_are_collapsed_in_the_html_with_a_line_saying_what_they_do(
    path,
):
    """The HTML shows one line per set-up cell (myst-nb's ``code_prompt_show``) and hides the
    code behind it; Colab ignores the tags, so the cells stay plain there."""
    for cell in cells(path)[1:3]:
        metadata = cell["metadata"]
        assert "hide-input" in metadata.get("tags", []), f"{path.stem}, {cell['id']}"
        prompt = metadata.get("mystnb", {}).get("code_prompt_show", "")
        assert prompt.startswith("Set-up: "), f"{path.stem}, {cell['id']}"
