"""tools/reader_stats.py's count of glue calls whose value is text (issue 29: glue numbers only)."""

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location(
    "reader_stats", ROOT / "tools" / "reader_stats.py"
)
reader_stats = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(reader_stats)

TEXT = reader_stats.TEXT_BUILTINS | reader_stats.package_text_functions()


def test_the_package_functions_that_return_text_are_known():
    assert {"median_range", "mean_std", "budget"} <= TEXT
    assert "markdown_table" not in TEXT  # a table object, which glue may paste
    assert "glue" not in TEXT


@pytest.mark.parametrize(
    "source",
    [
        'glue("acc", "0.98")',
        'glue("acc", f"{acc:.3f}")',
        'glue("acc", median_range(accs))',  # chapter 8 before issue 29
        'glue("use", mean_std(counts, 1))',  # chapter 9 before issue 29
        'glue("acc", vm.presentation.median_range(accs))',
        'glue("acc", str(acc))',
        'glue("acc", format(acc, ".3f"))',
        'glue("acc", repr(acc))',
        'glue("acc", "{:.3f}".format(acc))',
        'glue("acc", template.format(acc))',  # .format and .join, whatever the receiver
        'glue("accs", sep.join(parts))',
        'name = "vmonf"\nglue("name", name.upper())',
        'cell = median_range(accs)\nglue("acc", cell)',
        'glue("acc", f"{a:.3f}" if ok else "n/a")',
        'vm.glue("acc", "%.3f" % acc)',
    ],
)
def test_text_is_counted(source):
    assert reader_stats._text_glues(source, TEXT) == 1, source


@pytest.mark.parametrize(
    "source",
    [
        'glue("acc", acc)',
        'glue("acc", np.median(accs), ".3f")',
        'glue("acc_lo", min(accs))',
        'glue("n", len(seeds))',
        'glue("table", markdown_table(header, rows))',  # a table object
        'glue("share", x.upper_bound())',
        'glue(f"acc_{key}", take(accs))',
        "x = 1\nglue('x', x)",
    ],
)
def test_numbers_and_tables_are_not_counted(source):
    assert reader_stats._text_glues(source, TEXT) == 0, source


def test_a_chapters_own_text_helpers_count(tmp_path):
    cells = [
        "def cell_of(runs):\n    return median_range(runs)\n",
        "def label(x) -> str:\n    return x\n",
        "def twice(runs):\n    text = cell_of(runs)\n    return text\n",
        "def number(runs):\n    return min(runs)\n",
        'glue("a", cell_of(r))\nglue("b", label(r))\nglue("c", twice(r))\n'
        'glue("d", number(r))\n',
    ]
    notebook = {
        "cells": [
            {"cell_type": "code", "metadata": {}, "source": c.splitlines(True)}
            for c in cells
        ]
    }
    path = tmp_path / "01_x.ipynb"
    path.write_text(json.dumps(notebook))
    stats = reader_stats.chapter_stats(path, 88, TEXT)
    assert stats["text_glues"] == 3
