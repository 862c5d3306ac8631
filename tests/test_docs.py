"""The book's pages cite tests by name (``tests/test_x.py::test_name``): each cited test exists."""

import ast
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted((ROOT / "book").glob("*.md")) + sorted((ROOT / "book").glob("*.ipynb"))
CITED = re.compile(r"tests/(test_\w+\.py)::(test_\w+)")


def _text(path: Path) -> str:
    if path.suffix == ".ipynb":
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        return "\n".join("".join(c["source"]) for c in cells)
    return path.read_text(encoding="utf-8")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_test_a_page_cites_exists(page):
    for module, name in CITED.findall(_text(page)):
        tree = ast.parse((ROOT / "tests" / module).read_text(encoding="utf-8"))
        names = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
        assert name in names, (
            f"{page.name} cites tests/{module}::{name}, which does not exist"
        )


def test_the_defects_page_defines_all_five_labels():
    text = (ROOT / "book" / "defects.md").read_text(encoding="utf-8")
    assert [f"(defect-{i})=" in text for i in range(1, 6)] == [True] * 5
