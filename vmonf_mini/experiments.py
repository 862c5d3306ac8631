"""The paper's MNIST experiment as one function, shared by chapter 8 and ``make record``.

Chapter 8 runs :func:`paper_mnist` on its budget's :data:`PAPER_MNIST` configuration (a
shortened run on a CPU); ``make record`` (``tools/record.py``) runs the same function on the
``full`` configuration, the paper's 100 epochs, and writes what the chapter shows of it under
``book/recorded/`` (see :mod:`vmonf_mini.records`).

Example (a tiny configuration on random "images"):
    >>> import torch
    >>> config = PaperMNIST(
    ...     images=60, epochs=1, blocks=1, hidden=8, encoder_hidden=(16,),
    ...     samples=2, seeds=(0, 1),
    ... )
    >>> x, y = torch.rand(60, 6), torch.arange(60) % 5
    >>> result = paper_mnist(config, x, y, x[:20], y[:20])
    >>> len(result.runs), result.runs[0]["table_train"].shape, result.samples.shape
    (2, (5, 5), (2, 5, 2, 6))
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from .checks import check_positive_int, check_temperature
from .metrics import ari, cluster_accuracy, match_clusters, nmi
from .mixture import ModelConfig, VMoNF
from .objectives import tempered_log_q, unlabeled_loss
from .preprocess import LogitTransform, dequantize
from .presentation import median_range
from .records import PathLike, find_record
from .training import ExponentialDecay, History, TrainConfig, fit_many

#: The MAF paper's logit transform of MNIST pixels (``alpha = 1e-6``).
LOGIT = LogitTransform(alpha=1e-6)

__all__ = [
    "PaperMNIST",
    "PAPER_MNIST",
    "PAPER_MNIST_VARIANTS",
    "PREPROCESSINGS",
    "EPOCH_LOG_KEYS",
    "EpochLog",
    "paper_inputs",
    "paper_variant",
    "paper_pixels",
    "PAPER_TABLE1",
    "variant_records",
    "variant_summary",
    "variant_table",
    "VARIANT_TABLE_HEADER",
    "SUMMARY_KEYS",
    "PaperResult",
    "paper_mnist",
    "matched_table",
    "clusters_in_use",
]


#: The preprocessings :class:`PaperMNIST` knows: ``"raw"`` trains on pixels / 255 (what this
#: book first took the paper to do); ``"logit"`` dequantizes the pixels once (uniform noise of
#: 1/256) and applies the MAF paper's logit transform with ``alpha = 1e-6``, as the MAF library
#: whose defaults match the thesis's settings loads MNIST (an inference: the thesis names no
#: preprocessing; see chapter 8).
PREPROCESSINGS = ("raw", "logit")


@dataclass(frozen=True)
class PaperMNIST:
    """The paper's MNIST model and training (thesis settings), and how much of it a budget runs.

    ``holdout`` training images are held out at random (the paper's Table 1 counts 25,596 of the
    30,596 training images of digits 0-4: 5,000 held out); ``images`` of the rest are trained on
    (all when ``None``). ``preprocessing`` is one of :data:`PREPROCESSINGS`. The temperature
    follows ``exp(-temperature_rate * t)``, floored at ``temperature_floor`` (``None``: no floor
    at all, the paper's). ``samples`` images are drawn per component for Figure 3; one run per
    seed.
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
    temperature_floor: Optional[float] = 0.01
    k: int = 5
    samples: int = 8
    seeds: Tuple[int, ...] = (0,)
    preprocessing: str = "raw"
    holdout: int = 0

    def __post_init__(self) -> None:
        if self.preprocessing not in PREPROCESSINGS:
            raise ValueError(
                f"preprocessing must be one of {PREPROCESSINGS}, got {self.preprocessing!r}"
            )
        if self.temperature_floor is not None:
            check_temperature(self.temperature_floor, "temperature_floor")
        if (
            isinstance(self.holdout, bool)
            or not isinstance(self.holdout, int)
            or self.holdout < 0
        ):
            raise ValueError(f"holdout must be an integer >= 0, got {self.holdout!r}")

    @property
    def model(self) -> ModelConfig:
        """The architecture, a MAF mixture of ``k`` flows on MNIST's 784 pixels."""
        return ModelConfig(
            dim=784,
            k=self.k,
            flow="maf",
            blocks=self.blocks,
            hidden=self.hidden,
            encoder_hidden=self.encoder_hidden,
        )

    @property
    def training(self) -> TrainConfig:
        """The training's settings. The temperature floor lives in the schedule alone (what
        :class:`EpochLog` reads back), so the training sets no ``min_temperature`` of its own:
        ``temperature_floor=None`` then means no floor at all, the paper's."""
        return TrainConfig(
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            weight_decay=self.weight_decay,
            temperature=ExponentialDecay(
                rate=self.temperature_rate, floor=self.temperature_floor
            ),
            min_temperature=None,
        )

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

_PAPER_LENGTH = PaperMNIST(
    images=None, epochs=100, samples=8, seeds=(0, 1, 2), holdout=5_000
)

#: The variants of the paper's run that decide Table 1, each at the paper's own length of
#: 25,600 steps on 25,596 images with three seeds (chapter 8, ``make record``). ``paper`` is the
#: paper as now understood: dequantized, logit-transformed pixels and no temperature floor at
#: all. ``paper_floor`` is the same with the floor 0.01, ``raw`` pixels / 255 with the floor 0.01.
PAPER_MNIST_VARIANTS: Dict[str, PaperMNIST] = {
    "paper": replace(_PAPER_LENGTH, preprocessing="logit", temperature_floor=None),
    "paper_floor": replace(
        _PAPER_LENGTH, preprocessing="logit", temperature_floor=0.01
    ),
    "raw": replace(_PAPER_LENGTH, preprocessing="raw", temperature_floor=0.01),
}


def paper_variant(name: str, budget: str = "full") -> PaperMNIST:
    """The variant ``name`` of :data:`PAPER_MNIST_VARIANTS` sized by ``budget``: at ``full`` the
    paper's length, otherwise the budget's sizes (:data:`PAPER_MNIST`) with the variant's
    preprocessing, temperature floor and held-out images (chapter 8, ``make record``).

    >>> variant = paper_variant("paper", "smoke")
    >>> variant.preprocessing, variant.epochs
    ('logit', 1)
    """
    if name not in PAPER_MNIST_VARIANTS:
        raise ValueError(
            f"variant must be one of {sorted(PAPER_MNIST_VARIANTS)}, got {name!r}"
        )
    if budget not in PAPER_MNIST:
        raise ValueError(f"budget must be one of {sorted(PAPER_MNIST)}, got {budget!r}")
    variant = PAPER_MNIST_VARIANTS[name]
    if budget == "full":
        return variant
    return replace(
        PAPER_MNIST[budget],
        preprocessing=variant.preprocessing,
        temperature_floor=variant.temperature_floor,
        holdout=variant.holdout,
    )


#: What the paper's Table 1 shows, as published and as derived from its counts. ``table`` is
#: its normalized digit-by-cluster table (rows are the digits 0-4, columns its clusters c0-c4,
#: each row summing to 1 at two decimals), ``order`` the columns in matched order (digit d's
#: Hungarian-matched cluster first, so the diagonal holds the matches, as :func:`matched_table`
#: orders ours); ``acc``, ``nmi`` and ``ari`` are what its counts imply, and
#: ``clusters_per_digit`` counts per digit the clusters holding at least 10% of its images.
PAPER_TABLE1: Dict[str, Any] = dict(
    acc=0.757,
    nmi=0.660,
    ari=0.559,
    clusters_per_digit=[1, 1, 1, 3, 2],
    table=[
        [0.00, 0.01, 0.00, 0.98, 0.00],
        [0.00, 0.02, 0.98, 0.00, 0.00],
        [0.00, 0.95, 0.01, 0.01, 0.03],
        [0.00, 0.48, 0.30, 0.00, 0.21],
        [0.65, 0.35, 0.01, 0.00, 0.00],
    ],
    order=[3, 2, 1, 4, 0],
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
    """The book's one definition of a component (cluster) *in use*: it wins at least ``share``
    (1%) of the points of some class. Counts the columns of a ``P(cluster | label)`` table, rows
    labels (chapters 5, 8 and 9).

    The table can come from :func:`matched_table` or, from labels ``y`` and assignments ``c``,
    from :func:`vmonf_mini.metrics.contingency` (whose columns are only the clusters that occur:
    a cluster without points is not in use either way).

    >>> from vmonf_mini.metrics import contingency
    >>> y = [0] * 100 + [1] * 100
    >>> c = [0] * 99 + [2] + [1] * 100   # cluster 2 wins 1% of class 0; cluster 3 wins nothing
    >>> clusters_in_use(contingency(y, c)), clusters_in_use(contingency(y, c), share=0.02)
    (3, 2)
    """
    return int((np.asarray(table).max(axis=0) >= share).sum())


def paper_inputs(
    config: PaperMNIST, pixels: Tensor, generator: Optional[torch.Generator] = None
) -> Tensor:
    """What the model is trained on: ``pixels`` (in ``[0, 1]``, on the grid k / 255) as they are
    (``"raw"``), or dequantized once and logit-transformed (``"logit"``; chapter 8).

    >>> import torch
    >>> pixels = torch.tensor([[0.0, 1.0]])
    >>> paper_inputs(PaperMNIST(images=1, epochs=1), pixels).tolist()
    [[0.0, 1.0]]
    >>> y = paper_inputs(PaperMNIST(images=1, epochs=1, preprocessing="logit"), pixels)
    >>> bool(y[0, 0] < -4 and y[0, 1] > 4)   # logit(1/512) = -6.2, logit(511/512) = 6.2
    True
    """
    if config.preprocessing == "raw":
        return pixels
    return LOGIT(dequantize(pixels, generator=generator))[0]


def paper_pixels(config: PaperMNIST, inputs: Tensor) -> Tensor:
    """Pixels in ``[0, 1]`` from what the model sees: the inverse of :func:`paper_inputs` (up to
    the dequantization noise), clamped. Figure 3's samples go through it."""
    pixels = inputs if config.preprocessing == "raw" else LOGIT.inverse(inputs)
    return pixels.clamp(0, 1)


class EpochLog:
    """A :func:`~vmonf_mini.fit_many` callback that logs, after every epoch and for every run,
    what chapter 8 plots of the paper's run: on the training images (argmax of q(c|x)) the
    matched accuracy, NMI and clusters in use (holding at least 1% of some digit); the training
    temperature; the share of images whose q(c|x) at that temperature is exactly one-hot in the
    model's dtype; and the norm of the ELBO's gradient with respect to the encoder on ``probe``
    images (exactly 0 once the encoder has saturated).
    """

    def __init__(
        self,
        models: List[VMoNF],
        x: Tensor,
        y: Tensor,
        probe: Tensor,
        config: PaperMNIST,
        steps_per_epoch: int,
    ) -> None:
        self.runs = {id(model): r for r, model in enumerate(models)}
        self.x, self.y, self.probe, self.config = x, y, probe, config
        self.steps_per_epoch = steps_per_epoch
        self.schedule = config.training.temperature
        self.logs: List[Dict[str, List[float]]] = [
            {key: [] for key in EPOCH_LOG_KEYS} for _ in models
        ]

    def temperature(self, epoch: int) -> float:
        """The temperature the training divided by in the last step of ``epoch``."""
        return self.schedule(epoch * self.steps_per_epoch)

    def __call__(self, epoch: int, model: VMoNF) -> None:
        log = self.logs[self.runs[id(model)]]
        temperature = self.temperature(epoch)
        device = next(model.parameters()).device
        logits = torch.cat(
            [model.encoder(part.to(device)) for part in self.x.split(4096)]
        )
        clusters = logits.argmax(1).cpu().numpy()
        q_max = torch.softmax(logits / temperature, dim=1).max(1).values
        table, _ = matched_table(self.y.numpy(), clusters, self.config.k)
        log["temperature"].append(temperature)
        log["acc"].append(cluster_accuracy(self.y, clusters))
        log["nmi"].append(nmi(self.y, clusters))
        log["clusters_in_use"].append(clusters_in_use(table))
        log["one_hot"].append(float((q_max == 1).double().mean()))
        log["encoder_grad"].append(self._encoder_gradient(model, temperature, device))

    def _encoder_gradient(
        self, model: VMoNF, temperature: float, device: torch.device
    ) -> float:
        probe = self.probe.to(device)
        with torch.enable_grad():
            joint = model.joint(probe).detach()
            log_q = tempered_log_q(model.encoder(probe), temperature)
            loss = unlabeled_loss(joint, log_q, "elbo").mean()
            grads = torch.autograd.grad(loss, list(model.encoder.parameters()))
        return float(torch.sqrt(sum(g.double().pow(2).sum() for g in grads)))


#: What :class:`EpochLog` records per epoch (the keys of each run's ``per_epoch``).
EPOCH_LOG_KEYS = (
    "acc",
    "nmi",
    "clusters_in_use",
    "temperature",
    "one_hot",
    "encoder_grad",
)


def paper_mnist(
    config: PaperMNIST,
    x_train: Tensor,
    y_train: Tensor,
    x_test: Tensor,
    y_test: Tensor,
    device: Optional[torch.device] = None,
    progress: bool = False,
    probe: int = 1000,
) -> PaperResult:
    """Train the paper's mixture of K MAFs, one run per seed (with :func:`~vmonf_mini.fit_many`).

    ``x_train`` and ``x_test`` are pixels in ``[0, 1]`` (:func:`vmonf_mini.data.mnist`); the
    model sees :func:`paper_inputs` of them. ``config.holdout`` training images are held out at
    random (drawn with the first seed); the rest are the *training images*, of which a random
    ``config.images`` are trained on (all when ``None``). Clusters are ``argmax q(c|x)``, as in
    the paper; every score is reported on the training images (as the paper), on the held-out
    images (when any) and on the test images, and :class:`EpochLog` records each epoch (the
    encoder's gradient on the first ``probe`` images trained on).
    """
    probe = check_positive_int(probe, "probe")
    device = torch.device("cpu") if device is None else torch.device(device)
    tic = time.perf_counter()
    generator = torch.Generator().manual_seed(config.seeds[0])
    order = torch.randperm(len(x_train), generator=generator)
    held_out, pool = order[: config.holdout], order[config.holdout :]
    subset = pool[: config.images] if config.images is not None else pool
    inputs = paper_inputs(config, x_train, generator)
    test_inputs = paper_inputs(config, x_test, generator)
    models = []
    for seed in config.seeds:
        torch.manual_seed(seed)
        models.append(config.model.replace(dim=x_train.shape[1]).build())
    steps_per_epoch = math.ceil(len(subset) / config.batch_size)
    if len(subset) % config.batch_size == 1 and steps_per_epoch > 1:
        steps_per_epoch -= 1  # fit drops a last batch of one point
    log = EpochLog(
        models,
        inputs[pool],
        y_train[pool],
        inputs[subset[:probe]],
        config,
        steps_per_epoch,
    )
    histories = fit_many(
        models,
        inputs[subset],
        None,
        config.training,
        seeds=list(config.seeds),
        device=device,
        progress=progress,
        callback=log,
    )
    runs, samples = [], []
    for seed, model, history, per_epoch in zip(
        config.seeds, models, histories, log.logs
    ):
        with torch.no_grad():
            torch.manual_seed(seed)
            base = torch.randn(config.samples, x_train.shape[1], device=device)
            samples.append(  # (K, n, D), all at once
                paper_pixels(config, model.components.inverse(base)).cpu().numpy()
            )
        splits = {"": (inputs[pool], y_train[pool]), "test_": (test_inputs, y_test)}
        if config.holdout:
            splits["holdout_"] = (inputs[held_out], y_train[held_out])
        run: Dict[str, Any] = dict(
            seed=seed,
            steps=history.steps,
            loss=history.loss,
            final_temperature=history.temperature[-1],
        )
        for prefix, (x, y) in splits.items():
            clusters = _predict(model, x, device)
            table, order_ = matched_table(y.numpy(), clusters, config.k)
            run[prefix + "acc"] = cluster_accuracy(y, clusters)
            run[prefix + "nmi"] = nmi(y, clusters)
            run[prefix + "ari"] = ari(y, clusters)
            run[prefix + "clusters_in_use"] = clusters_in_use(table)
            run["table_" + (prefix.rstrip("_") or "train")] = table
            run["order_" + (prefix.rstrip("_") or "train")] = order_
        run["clusters_per_digit"] = [
            int(v) for v in (run["table_train"] >= 0.10).sum(1)
        ]
        run["per_epoch"] = per_epoch
        runs.append(run)
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


def variant_records(
    name: str, folders: Sequence[PathLike] = ("recorded", "book/recorded")
) -> List[Dict[str, Any]]:
    """The records of the variant ``name`` (:data:`PAPER_MNIST_VARIANTS`) written by
    ``make record``, one per seed found (``mnist_NAME_seedS.json``), in the order of the variant's
    seeds; empty when none is there (a chapter opened alone, in Colab). Chapter 8.

    >>> variant_records("paper", folders=["/nonexistent"])
    []
    """
    variant = paper_variant(name)
    found = (find_record(f"mnist_{name}_seed{seed}", folders) for seed in variant.seeds)
    return [record for record in found if record is not None]


#: What :func:`variant_summary` summarises: the run's scores on the training images, the
#: held-out and the test images (argmax of q(c|x), matched to the digits), and clusters in use.
SUMMARY_KEYS = (
    "acc",
    "nmi",
    "ari",
    "clusters_in_use",
    "holdout_acc",
    "test_acc",
)


def variant_summary(
    records: Sequence[Mapping[str, Any]],
) -> Dict[str, Dict[str, float]]:
    """Median, minimum and maximum over the runs of ``records`` (one record per seed, as
    :func:`variant_records` returns them, or one record of several seeds) of each of
    :data:`SUMMARY_KEYS` that every run has (a run that held nothing out has no
    ``holdout_acc``; chapter 8).

    >>> runs = [{"results": {"runs": [dict.fromkeys(SUMMARY_KEYS, v)]}} for v in (0.2, 0.9, 0.4)]
    >>> variant_summary(runs)["acc"]
    {'median': 0.4, 'min': 0.2, 'max': 0.9, 'seeds': 3}
    """
    if not records:
        raise ValueError("variant_summary needs at least one record")
    runs = [run for record in records for run in record["results"]["runs"]]
    summary = {}
    for key in [k for k in SUMMARY_KEYS if all(k in run for run in runs)]:
        values = np.asarray([run[key] for run in runs], dtype=float)
        summary[key] = dict(
            median=float(np.median(values)),
            min=float(values.min()),
            max=float(values.max()),
            seeds=len(values),
        )
    return summary


#: The columns of :func:`variant_table`, one per entry of :data:`SUMMARY_KEYS` after the name and
#: the number of seeds.
VARIANT_TABLE_HEADER = (
    "variant",
    "seeds",
    "matched acc.",
    "NMI",
    "ARI",
    "clusters in use",
    "held-out acc.",
    "test acc.",
)


def variant_table(
    runs_by_name: Mapping[str, Sequence[Mapping[str, Any]]],
) -> List[List[Any]]:
    """Chapter 8's table of recorded runs, under :data:`VARIANT_TABLE_HEADER`: the published
    Table 1 first, then a row per name with the median [range] over its runs of each of
    :data:`SUMMARY_KEYS` ("–" for a key its runs lack: the held-out accuracy of a run that held
    nothing out).

    >>> run = dict.fromkeys(SUMMARY_KEYS, 0.5) | {"clusters_in_use": 5}
    >>> variant_table({"paper": [run, run]})[1]
    ['paper', 2, '0.500 [0.500, 0.500]', '0.500 [0.500, 0.500]', '0.500 [0.500, 0.500]', '5 [5, 5]', '0.500 [0.500, 0.500]', '0.500 [0.500, 0.500]']
    """
    published = [f"{PAPER_TABLE1[key]:.3f}" for key in ("acc", "nmi", "ari")]
    rows: List[List[Any]] = [["published: paper, Table 1", 1, *published, 5, "–", "–"]]
    for name, runs in runs_by_name.items():
        cells = [
            median_range(
                [run[key] for run in runs if key in run],
                0 if key == "clusters_in_use" else 3,
            )
            for key in SUMMARY_KEYS
        ]
        rows.append([name, len(runs), *cells])
    return rows
