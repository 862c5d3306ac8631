"""What every chapter's header uses: the budget switch, seeds and the device (all chapters).

One switch, the *budget*, sets every size in a chapter: ``"smoke"`` (nbval, seconds),
``"default"`` (the HTML build on a CPU, minutes) and ``"full"`` (the paper's settings, for a GPU).
A chapter chooses it once, in its header, and every later call uses that choice:

>>> import os
>>> _ = os.environ.pop("VMONF_BUDGET", None)
>>> budget("full")       # the chapter's choice (its Colab form field)
'full'
>>> pick({"smoke": 1, "default": 10, "full": 100})
100

The environment variable ``VMONF_BUDGET``, when set, wins over the chapter's choice, so that
``make test`` (smoke), ``make book`` (default) and ``make timings`` can size every chapter
without editing it:

>>> os.environ["VMONF_BUDGET"] = "smoke"
>>> budget("full"), budget(), pick({"smoke": 1, "default": 10, "full": 100})
('smoke', 'smoke', 1)

So the budget is, in order: ``$VMONF_BUDGET`` when set; else the name last passed to
:func:`budget`; else ``"default"``.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import time
from importlib import resources
from typing import (
    Any,
    Callable,
    Dict,
    Iterable,
    Mapping,
    Optional,
    Sequence,
    TypeVar,
    Union,
)

import numpy as np
import torch

__all__ = [
    "BUDGETS",
    "budget",
    "pick",
    "budget_times",
    "full_budget_hint",
    "seed_everything",
    "default_device",
    "best_time",
    "mean_std",
    "median_range",
    "MarkdownTable",
    "markdown_table",
    "glue",
]

BUDGETS = ("smoke", "default", "full")
T = TypeVar("T")
_chosen: Optional[str] = (
    None  # the name last passed to budget(); the environment still wins
)


def _check(name: str, where: str) -> str:
    chosen = str(name).strip().lower()
    if chosen not in BUDGETS:
        raise ValueError(f"budget must be one of {BUDGETS}, got {name!r} ({where})")
    return chosen


def budget(value: Optional[str] = None) -> str:
    """The run's budget; given a name, also the choice that every later call uses.

    Returns ``$VMONF_BUDGET`` when it is set (the build and the tests set it), else ``value``
    (remembered for later calls of :func:`budget` and :func:`pick`), else the name an earlier
    call was given, else ``"default"``.
    """
    global _chosen
    if value is not None:
        _chosen = _check(value, "the name passed to budget()")
    env = os.environ.get("VMONF_BUDGET", "").strip()
    if env:
        return _check(env, "check VMONF_BUDGET")
    return _chosen or "default"


def pick(sizes: Mapping[str, T], which: Optional[str] = None) -> T:
    """The entry of ``sizes`` (keyed by budget name) for the current budget (or for ``which``)."""
    missing = [b for b in BUDGETS if b not in sizes]
    if missing:
        raise ValueError(f"sizes needs an entry for every budget; missing {missing}")
    return sizes[
        _check(which, "the name passed to pick()") if which is not None else budget()
    ]


def budget_times() -> Dict[str, Any]:
    """The measured execution times of the chapters (``vmonf_mini/budget_times.json``).

    ``["chapters"][chapter][budget][hardware]`` is ``None`` (not measured) or a record with
    ``status`` (``"ok"``, ``"failed"`` or ``"stopped"``: not run to its end), ``seconds`` and
    where and when it was measured; ``["hardware"][hardware]["name"]`` names the machine.
    ``bench/chapter_times.py --record HARDWARE`` writes it; the book's timings page shows it.
    """
    text = (
        resources.files("vmonf_mini")
        .joinpath("budget_times.json")
        .read_text(encoding="utf-8")
    )
    return json.loads(text)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def describe_time(record: Optional[Mapping[str, Any]]) -> str:
    """One measurement as the timings table and :func:`full_budget_hint` write it."""
    if not record:
        return "not measured"
    status, seconds = record.get("status", "ok"), record.get("seconds")
    if status == "ok" and seconds is not None:
        return _duration(float(seconds))
    if status == "failed":
        return "failed" + (
            f" after {_duration(float(seconds))}" if seconds is not None else ""
        )
    return "not run to its end" + (
        f" (stopped after {_duration(float(seconds))})" if seconds is not None else ""
    )


def full_budget_hint(
    chapter: str,
    sizes: Mapping[str, Any],
    device: Union[torch.device, str, None] = None,
) -> None:
    """On a GPU, when the budget is not ``"full"``: print what ``"full"`` would run and how long
    it took where it was measured (the header's last line: it returns nothing to display).

    ``chapter`` is the notebook's name (``"06_pinwheel"``), ``sizes`` the header's table of sizes.
    """
    device = torch.device(device) if device is not None else default_device()
    if device.type != "cuda" or budget() == "full":
        return
    times = budget_times()
    hardware = times.get("hardware", {})
    measured = times.get("chapters", {}).get(chapter, {}).get("full", {})
    where = [
        f"{describe_time(measured.get(key))} on {info.get('name') or key}"
        for key, info in hardware.items()
    ]
    took = (
        f"It took: {'; '.join(where)}."
        if any(measured.get(key) for key in hardware)
        else "How long it takes has not been measured yet"
        + (f" ({'; '.join(where)})." if where else ".")
    )
    text = (
        f'This runtime has a GPU: the "full" budget (the paper\'s settings) would run {sizes["full"]}.\n'
        f"{took}\n"
        f'To use it, choose "full" for BUDGET in this cell and run the chapter again.'
    )
    print(text)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and GPU)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def default_device() -> torch.device:
    """The GPU when there is one, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def best_time(
    fn: Callable[[], Any],
    repeats: int = 5,
    device: Union[torch.device, str, None] = None,
) -> float:
    """The fastest of ``repeats`` calls of ``fn``, in milliseconds (introduced in chapter 2).

    The fastest call is the one least disturbed by other work on the machine. On a GPU
    (``device`` of type ``cuda``) each call is followed by a synchronisation, so that the
    time covers the kernels, not just their launch.

    >>> best_time(lambda: sum(range(1000)), repeats=3) >= 0.0
    True
    """
    if int(repeats) < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    cuda = device is not None and torch.device(device).type == "cuda"
    best = float("inf")
    for _ in range(int(repeats)):
        start = time.perf_counter()
        fn()
        if cuda:
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return 1e3 * best


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
