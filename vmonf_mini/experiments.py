"""The paper's MNIST experiment as one function, shared by chapter 8 and ``make record``.

Chapter 8 runs :func:`paper_mnist` on its budget's :data:`PAPER_MNIST` configuration (a
shortened run on a CPU); ``make record`` (``tools/record.py``) runs the same function on the
``full`` configuration, the paper's 100 epochs, and writes what the chapter shows of it under
``book/recorded/`` (see :mod:`vmonf_mini.records`).

Example (a tiny configuration on random "images"):
    >>> import torch
    >>> config = PaperMNIST(images=60, epochs=1, blocks=1, hidden=8, encoder_hidden=(16,),
    ...                     samples=2, seeds=(0, 1))
    >>> x, y = torch.rand(60, 6), torch.arange(60) % 5
    >>> result = paper_mnist(config, x, y, x[:20], y[:20])
    >>> len(result.runs), result.runs[0]["table_train"].shape, result.samples.shape
    (2, (5, 5), (2, 5, 2, 6))
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch
from torch import Tensor

from .metrics import ari, cluster_accuracy, match_clusters, nmi
from .mixture import VMoNF
from .training import ExponentialDecay, History, fit_many

__all__ = [
    "PaperMNIST",
    "PAPER_MNIST",
    "PAPER_TABLE1",
    "PaperResult",
    "paper_mnist",
    "matched_table",
    "clusters_in_use",
]


@dataclass(frozen=True)
class PaperMNIST:
    """The paper's MNIST model and training (thesis settings), and how much of it a budget runs.

    ``images=None`` trains on every training image (the paper held 5,000 out: 25,596 images);
    ``samples`` images are drawn per component for Figure 3; one run per seed.
    """

    images: Optional[int]
    epochs: int
    blocks: int = 5
    hidden: int = 200
    encoder_hidden: Tuple[int, ...] = (512,)
    lr: float = 1e-4
    weight_decay: float = 1e-6
    batch_size: int = 100
    temperature_rate: float = 1e-3
    temperature_floor: float = 0.01
    k: int = 5
    samples: int = 8
    seeds: Tuple[int, ...] = (0,)

    def as_dict(self) -> Dict[str, Any]:
        """The configuration as JSON-ready data (what a record stores and the tests compare)."""
        return {
            key: list(value) if isinstance(value, tuple) else value
            for key, value in asdict(self).items()
        }


#: The configuration of each budget. ``full`` is the paper's (100 epochs), ``default`` a CPU-sized
#: shortening of the same model, ``smoke`` a tiny model for the tests (chapter 8).
PAPER_MNIST: Dict[str, PaperMNIST] = {
    "smoke": PaperMNIST(images=200, epochs=1, blocks=1, hidden=16, samples=4),
    "default": PaperMNIST(images=10_000, epochs=2, samples=6),
    "full": PaperMNIST(images=None, epochs=100, samples=8, seeds=(0, 1, 2)),
}

#: The matched accuracy, NMI and ARI that the paper's Table 1 implies (derived from its counts),
#: and per digit the number of clusters holding at least 10% of its images.
PAPER_TABLE1: Dict[str, Any] = dict(
    acc=0.757, nmi=0.660, ari=0.559, clusters_per_digit=[1, 1, 1, 3, 2]
)


@dataclass
class PaperResult:
    """What :func:`paper_mnist` measured: one dict per seed, the trained models and Figure 3's samples."""

    config: PaperMNIST
    runs: List[Dict[str, Any]]
    models: List[VMoNF] = field(repr=False)
    histories: List[History] = field(repr=False)
    samples: np.ndarray = field(repr=False)  # (seeds, K, samples, D), pixels in [0, 1]
    subset: Tensor = field(repr=False)  # indices of the training images used
    seconds: float = 0.0


def matched_table(y: Any, clusters: Any, k: int) -> Tuple[np.ndarray, List[int]]:
    """``P(cluster | label)`` as a ``(labels, k)`` table whose columns are ordered so that the
    Hungarian match of each label sits on the diagonal, and that column order (chapter 8)."""
    y_arr, c_arr = np.asarray(y), np.asarray(clusters)
    labels = np.unique(y_arr)
    counts = np.zeros((len(labels), k))
    np.add.at(counts, (np.searchsorted(labels, y_arr), c_arr), 1)
    match = {label: cluster for cluster, label in match_clusters(y_arr, c_arr).items()}
    order = [match[label] for label in labels if label in match]
    order += [c for c in range(k) if c not in order]
    table = counts / counts.sum(axis=1, keepdims=True)
    return table[:, order], [int(c) for c in order]


def clusters_in_use(table: Any, share: float = 0.01) -> int:
    """Columns (clusters) of a ``P(cluster | label)`` table that hold at least ``share`` of some label."""
    return int((np.asarray(table).max(axis=0) >= share).sum())


def paper_mnist(
    config: PaperMNIST,
    x_train: Tensor,
    y_train: Tensor,
    x_test: Tensor,
    y_test: Tensor,
    device: Optional[torch.device] = None,
    progress: bool = False,
) -> PaperResult:
    """Train the paper's mixture of K MAFs on pixels in [0, 1], one run per seed (with :func:`~vmonf_mini.fit_many`).

    The training images are a random subset of ``config.images`` (all when ``None``), drawn with
    the first seed. Clusters are ``argmax q(c|x)``, as in the paper; every score is reported on
    the training images (as the paper) and on the test images.
    """
    device = torch.device("cpu") if device is None else torch.device(device)
    tic = time.perf_counter()
    subset = torch.randperm(
        len(x_train), generator=torch.Generator().manual_seed(config.seeds[0])
    )
    subset = subset[: config.images] if config.images is not None else subset
    models = []
    for seed in config.seeds:
        torch.manual_seed(seed)
        models.append(
            VMoNF(
                x_train.shape[1],
                config.k,
                flow="maf",
                blocks=config.blocks,
                hidden=config.hidden,
                encoder_hidden=config.encoder_hidden,
            )
        )
    schedule = ExponentialDecay(
        rate=config.temperature_rate, floor=config.temperature_floor
    )
    histories = fit_many(
        models,
        x_train[subset],
        seeds=list(config.seeds),
        epochs=config.epochs,
        batch_size=config.batch_size,
        lr=config.lr,
        weight_decay=config.weight_decay,
        temperature=schedule,
        device=device,
        progress=progress,
    )
    runs, samples = [], []
    for seed, model, history in zip(config.seeds, models, histories):
        with torch.no_grad():
            train_clusters = _predict(model, x_train, device)
            test_clusters = _predict(model, x_test, device)
            torch.manual_seed(seed)
            base = torch.randn(config.samples, x_train.shape[1], device=device)
            samples.append(
                model.components.inverse(base).clamp(0, 1).cpu().numpy()
            )  # (K, n, D), all at once
        table_train, order_train = matched_table(
            y_train.numpy(), train_clusters, config.k
        )
        table_test, order_test = matched_table(y_test.numpy(), test_clusters, config.k)
        runs.append(
            dict(
                seed=seed,
                steps=history.steps,
                loss=history.loss,
                final_temperature=history.temperature[-1],
                acc=cluster_accuracy(y_train, train_clusters),
                nmi=nmi(y_train, train_clusters),
                ari=ari(y_train, train_clusters),
                test_acc=cluster_accuracy(y_test, test_clusters),
                test_nmi=nmi(y_test, test_clusters),
                test_ari=ari(y_test, test_clusters),
                table_train=table_train,
                order_train=order_train,
                table_test=table_test,
                order_test=order_test,
                clusters_per_digit=[int(v) for v in (table_train >= 0.10).sum(1)],
            )
        )
    return PaperResult(
        config=config,
        runs=runs,
        models=models,
        histories=histories,
        samples=np.stack(samples),
        subset=subset,
        seconds=time.perf_counter() - tic,
    )


def _predict(
    model: VMoNF, x: Tensor, device: torch.device, chunk: int = 4096
) -> np.ndarray:
    parts = [model.predict(part.to(device)).cpu() for part in x.split(chunk)]
    return torch.cat(parts).numpy()


def paper_steps(images: int = 25_596, epochs: int = 100, batch_size: int = 100) -> int:
    """Optimiser steps of the paper's MNIST training: 100 epochs of 25,596 images in batches of 100."""
    return epochs * math.ceil(images / batch_size)
