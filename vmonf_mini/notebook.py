"""What every chapter's header uses: the budget switch, seeds and the device (all chapters).

The budget is read from the ``VMONF_BUDGET`` environment variable so that one switch sets every
size in a chapter: ``"smoke"`` (nbval, seconds), ``"default"`` (the HTML build on a CPU, minutes)
and ``"full"`` (the paper's settings, for a GPU).

>>> import os
>>> os.environ["VMONF_BUDGET"] = "smoke"
>>> budget()
'smoke'
>>> pick({"smoke": 1, "default": 10, "full": 100})
1
"""

from __future__ import annotations

import os
import random
from typing import Mapping, Optional, TypeVar

import numpy as np
import torch

__all__ = ["BUDGETS", "budget", "pick", "seed_everything", "default_device"]

BUDGETS = ("smoke", "default", "full")
T = TypeVar("T")


def budget(value: Optional[str] = None) -> str:
    """The run's budget: ``value`` if given, else ``$VMONF_BUDGET``, else ``"default"``."""
    chosen = value if value is not None else os.environ.get("VMONF_BUDGET", "default")
    chosen = chosen.strip().lower()
    if chosen not in BUDGETS:
        raise ValueError(f"budget must be one of {BUDGETS}, got {chosen!r} (check VMONF_BUDGET)")
    return chosen


def pick(sizes: Mapping[str, T], which: Optional[str] = None) -> T:
    """The entry of ``sizes`` (keyed by budget name) for the current budget."""
    missing = [b for b in BUDGETS if b not in sizes]
    if missing:
        raise ValueError(f"sizes needs an entry for every budget; missing {missing}")
    return sizes[budget(which)]


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and GPU)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def default_device() -> torch.device:
    """The GPU when there is one, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
