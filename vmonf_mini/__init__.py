"""vmonf_mini: a variational mixture of normalizing flows in a few hundred lines of PyTorch.

The companion package of the book *Variational Mixtures of Normalizing Flows, by example*
(Pires & Figueiredo, ESANN 2020).

>>> import torch, vmonf_mini
>>> model = vmonf_mini.VMoNF(dim=2, k=5, flow="realnvp", blocks=2, encoder_hidden=(8,))
>>> model.log_prob(torch.zeros(3, 2)).shape
torch.Size([3])
"""

from __future__ import annotations

import importlib
from typing import Any, List

from . import (
    checkpoint,
    data,
    embedding,
    experiments,
    flows,
    graph,
    layers,
    metrics,
    mnist,
    objectives,
    preprocess,
    presentation,
    record_html,
    records,
    recipes,
    runtime,
)
from .estimator import MixtureOfFlows
from .mixture import ModelConfig, VMoNF
from .runtime import budget, default_device, full_budget_hint, pick, seed_everything
from .training import (
    ExponentialDecay,
    History,
    TrainConfig,
    fit,
    fit_density,
    fit_many,
)

# The public API: the model, its training and the budget switch, and the modules a reader calls.
# (checks, stacking, atomic, mixture, training and estimator are internals.)
__all__ = [
    "VMoNF",
    "ModelConfig",
    "TrainConfig",
    "MixtureOfFlows",
    "fit",
    "fit_many",
    "fit_density",
    "History",
    "ExponentialDecay",
    "budget",
    "pick",
    "full_budget_hint",
    "seed_everything",
    "default_device",
    "recipes",
    "flows",
    "layers",
    "graph",
    "data",
    "embedding",
    "metrics",
    "mnist",
    "objectives",
    "preprocess",
    "experiments",
    "records",
    "record_html",
    "checkpoint",
    "runtime",
    "presentation",
    "plot",
]
__version__ = "0.2.0"


def __getattr__(name: str) -> Any:
    """``vm.plot`` imports :mod:`vmonf_mini.plot` on first use, so that ``import vmonf_mini``
    does not import matplotlib."""
    if name == "plot":
        return importlib.import_module(f"{__name__}.plot")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> List[str]:
    return sorted({*globals(), "plot"})
