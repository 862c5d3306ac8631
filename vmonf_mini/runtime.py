"""The book's runtime switches: budget, seeds, device, timing, and the chapters' measured times.

Every chapter's header uses them (the table cells and numbers for the prose are in
:mod:`vmonf_mini.presentation`).

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
import time
from importlib import resources
from typing import Any, Callable, Dict, Mapping, Optional, TypeVar, Union

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
]

#: The budget names, from the shortest runs (nbval) to the paper's settings.
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
