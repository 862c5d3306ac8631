"""Numbers for the reader: table cells over seeds, Markdown tables, values glued into the prose.

The chapters' runtime switches (budget, seeds, device, timing) are in :mod:`vmonf_mini.runtime`.

>>> print(markdown_table(["seeds", "accuracy"], [[3, mean_std([0.981, 0.987, 0.990])]]))
| seeds | accuracy |
|---|---|
| 3 | 0.986 ± 0.005 |
"""

from __future__ import annotations

import statistics
from typing import Any, Iterable, Sequence

import numpy as np
import torch

__all__ = [
    "mean_std",
    "median_range",
    "MarkdownTable",
    "markdown_table",
    "glue",
]


def _floats(values: Iterable[Any]) -> list:
    return [float(v) for v in values]


def mean_std(values: Iterable[Any], digits: int = 3) -> str:
    """Mean ± sample standard deviation (ddof=1) over seeds, as a table cell (chapter 6).

    One value when every seed shows the same number to ``digits``; "–" when there are none.

    >>> mean_std([0.981, 0.987, 0.990])
    '0.986 ± 0.005'
    >>> mean_std([1.0, 1.0]), mean_std([])
    ('1.000', '–')
    """
    v = _floats(values)
    if not v:
        return "–"
    shown = {f"{x:.{digits}f}" for x in v}
    if len(shown) == 1:
        return shown.pop()
    std = statistics.stdev(v)
    spread = f"{std:.{digits}f}" if std >= 10**-digits else f"{std:.1g}"
    return f"{statistics.fmean(v):.{digits}f} ± {spread}"


def median_range(values: Iterable[Any], digits: int = 3) -> str:
    """Median and [smallest, largest] over seeds, as a table cell (chapter 8).

    >>> median_range([0.31, 0.37, 0.355]), median_range([0.5])
    ('0.355 [0.310, 0.370]', '0.500')
    """
    v = _floats(values)
    if not v:
        return "–"
    if len(v) == 1:
        return f"{v[0]:.{digits}f}"
    return (
        f"{statistics.median(v):.{digits}f} [{min(v):.{digits}f}, {max(v):.{digits}f}]"
    )


class MarkdownTable(str):
    """A Markdown table that Jupyter displays as a table (and ``print`` as its text)."""

    def _repr_markdown_(self) -> str:
        return str(self)


def markdown_table(
    header: Sequence[Any], rows: Iterable[Sequence[Any]]
) -> MarkdownTable:
    """A Markdown table from a header and rows of cells (chapters 4-9); the last expression of a
    cell, or ``display(...)``, renders it. A ``|`` inside a cell is escaped, so ``q(c|x)``
    stays one cell.

    >>> print(markdown_table(["model", "q(c|x)"], [["GMM", "0.75"], ["VMoNF", "0.99"]]))
    | model | q(c\\|x) |
    |---|---|
    | GMM | 0.75 |
    | VMoNF | 0.99 |
    """
    header = [_cell(h) for h in header]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [_cell(c) for c in row]
        if len(cells) != len(header):
            raise ValueError(
                f"a row has {len(cells)} cells, the header {len(header)}: {cells}"
            )
        lines.append("| " + " | ".join(cells) + " |")
    return MarkdownTable("\n".join(lines))


def _cell(value: Any) -> str:
    """A table cell's text: ``|`` escaped, line breaks as spaces (a row is one line)."""
    return " ".join(str(value).split("\n")).replace("|", "\\|")


def glue(name: str, value: Any, fmt: str = "") -> Any:
    """Hand a number computed by the run to the prose: the HTML book pastes it where the text
    says ``{glue:text}`name``` (myst-nb's glue; chapters 4-9). Returns ``value``.

    Where myst-nb is not installed (Colab), the value is printed instead, as ``name = value``
    (formatted with ``fmt``), so that a reader of the notebook sees the number the text cites.
    NumPy and one-element torch numbers are glued as Python numbers. A tensor of several
    numbers, or a ``fmt`` that does not apply to ``value`` (a float format for text), is
    refused with a ``ValueError`` wherever the chapter runs, myst-nb installed or not.

    >>> import sys; sys.modules["myst_nb"] = None    # as on Colab, where myst-nb is absent
    >>> glue("accuracy", np.float64(0.98765), ".3f")
    accuracy = 0.988
    0.98765
    >>> glue("model", "VMoNF", ".3f")
    Traceback (most recent call last):
    ...
    ValueError: glue('model'): format '.3f' does not apply to str 'VMoNF' (Unknown format code 'f' for object of type 'str')
    >>> del sys.modules["myst_nb"]
    """
    if isinstance(value, torch.Tensor) and value.numel() != 1:
        raise ValueError(
            f"glue({name!r}) pastes one number into the text, got a tensor of shape "
            f"{tuple(value.shape)}: glue each number, or a string made of them"
        )
    if isinstance(
        value, (np.generic, torch.Tensor)
    ):  # "np.float64(0.98)" cannot be formatted
        value = value.item()
    try:
        shown = f"{value:{fmt}}"
    except (ValueError, TypeError) as error:
        raise ValueError(
            f"glue({name!r}): format {fmt!r} does not apply to "
            f"{type(value).__name__} {value!r} ({error})"
        ) from None
    try:
        from myst_nb import glue as myst_glue
    except ImportError:
        print(f"{name} = {shown}")
    else:
        myst_glue(name, value, display=False)
    return value
