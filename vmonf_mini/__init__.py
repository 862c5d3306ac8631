"""vmonf_mini: a variational mixture of normalizing flows in a few hundred lines of PyTorch.

The companion package of the book *Variational Mixtures of Normalizing Flows, by example*
(Pires & Figueiredo, ESANN 2020).

>>> import torch, vmonf_mini
>>> model = vmonf_mini.VMoNF(dim=2, k=5, flow="realnvp", blocks=2, encoder_hidden=(8,))
>>> model.log_prob(torch.zeros(3, 2)).shape
torch.Size([3])
"""

from . import (
    checks,
    data,
    experiments,
    flows,
    graph,
    metrics,
    notebook,
    objectives,
    preprocess,
    records,
    stacking,
)
from .mixture import ModelConfig, VMoNF
from .notebook import budget, default_device, full_budget_hint, pick, seed_everything
from .training import (
    ExponentialDecay,
    History,
    TrainConfig,
    fit,
    fit_density,
    fit_many,
)
from . import recipes
from .estimator import MixtureOfFlows

__all__ = [
    "VMoNF",
    "ModelConfig",
    "TrainConfig",
    "MixtureOfFlows",
    "recipes",
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
    "flows",
    "graph",
    "data",
    "metrics",
    "notebook",
    "checks",
    "preprocess",
    "objectives",
    "stacking",
    "experiments",
    "records",
]
__version__ = "0.2.0"
