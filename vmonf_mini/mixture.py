"""The variational mixture of normalizing flows (Pires & Figueiredo, 2020), chapter 4.

``p(x) = sum_c p(c) p(x|c)`` with every ``p(x|c)`` a normalizing flow, and an amortized
posterior ``q(c|x) = softmax(encoder(x) / T)``.  Training maximises

    ELBO(x) = sum_c q(c|x) [log p(x|c) + log p(c) - log q(c|x)] = log p(x) - KL(q || p(c|x)).

Example:
    >>> import torch
    >>> from vmonf_mini import VMoNF
    >>> model = VMoNF(dim=2, k=3, blocks=2).eval()
    >>> x = torch.randn(5, 2)
    >>> bool((model.elbo(x) <= model.log_prob(x) + 1e-5).all())
    True
"""

from __future__ import annotations

import copy
import operator
import os
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor, nn

from .checks import (
    as_data,
    as_labels,
    check_bool,
    SettingsMapping,
    check_number,
    check_positive_int,
    check_temperature,
)
from . import checkpoint, objectives
from .flows import FlowList, Hidden, StackedFlow, maf, realnvp
from .objectives import MIN_TEMPERATURE, floor_temperature

__all__ = ["VMoNF", "ModelConfig", "MIN_TEMPERATURE", "DEFAULT_CHUNK_SIZE"]

#: Rows evaluated at a time by the evaluation methods in eval mode (their ``chunk_size``).
DEFAULT_CHUNK_SIZE = 16384

_FLOW_DEFAULTS = {
    "realnvp": dict(blocks=8, hidden=8),
    "maf": dict(blocks=5, hidden=200),
}
Prior = Union[None, str, Sequence[float], Tensor]


def built_in_flows(config: Dict[str, Any], k: int) -> StackedFlow:
    """The K stacked flows that a :class:`VMoNF` with this ``config`` builds; ``k`` may differ
    from the config's (``fit_many`` stacks R models' components as R*K flows)."""
    if config["flow"] == "realnvp":
        return realnvp(
            config["dim"], k, config["blocks"], config["hidden"], config["batch_norm"]
        )
    return maf(
        config["dim"],
        k,
        config["blocks"],
        config["hidden"],
        config["batch_norm"],
        config["log_scale_bound"],
    )


def _encoder(
    dim: int, k: int, hidden: Sequence[int], batch_norm: bool
) -> nn.Sequential:
    """MLP ``dim -> hidden... -> k`` logits; Linear, ReLU, BatchNorm1d as in the thesis."""
    layers: list[nn.Module] = []
    width = dim
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        if batch_norm:
            layers.append(nn.BatchNorm1d(h))
        width = h
    layers.append(nn.Linear(width, k))
    return nn.Sequential(*layers)


def _prior_probabilities(prior: Prior, k: int) -> Optional[Tensor]:
    """A fixed ``prior``'s K probabilities, checked, as a CPU tensor; ``None`` for ``None`` and
    ``"learned"``.

    Read on the CPU whatever the default device, so that the model can be built on the ``meta``
    device (as :meth:`VMoNF.load` does to check a checkpoint's config before allocating it).

    >>> _prior_probabilities([0.25, 0.75], 2).tolist()
    [0.25, 0.75]
    >>> _prior_probabilities([0.5, 0.6], 2)
    Traceback (most recent call last):
    ...
    ValueError: prior probabilities must sum to 1, they sum to 1.100000
    """
    if prior is None or isinstance(prior, str):
        if prior not in (None, "learned"):
            raise ValueError(
                f"prior must be None, 'learned' or K probabilities, got {prior!r}"
            )
        return None
    try:
        p = torch.as_tensor(
            prior, dtype=torch.get_default_dtype(), device="cpu"
        ).detach()
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(
            f"prior must be None, 'learned' or {k} probabilities, got {prior!r}"
        ) from None
    if p.shape != (k,) or not bool(torch.isfinite(p).all()) or bool((p <= 0).any()):
        raise ValueError(f"prior must be {k} positive probabilities, got {p.tolist()}")
    if abs(float(p.sum()) - 1.0) > 1e-4:
        raise ValueError(
            f"prior probabilities must sum to 1, they sum to {float(p.sum()):.6f}"
        )
    return p


def _overflowed(values: Tensor) -> Tensor:
    """Rows of ``(N, K)`` scores with a NaN or without any finite entry, shape ``(N,)``."""
    return torch.isnan(values).any(dim=1) | ~torch.isfinite(values).any(dim=1)


def _component_index(c: Any, k: int) -> int:
    """``c`` as a component index in ``0..k-1``: any integer (Python, numpy, a 0-d tensor), not a bool."""
    try:
        index = None if isinstance(c, (bool, np.bool_)) else operator.index(c)
    except TypeError:
        index = None
    if index is None or not 0 <= index < k:
        raise ValueError(f"c must be a component index in 0..{k - 1}, got {c!r}")
    return index


@dataclass(frozen=True)
class ModelConfig(SettingsMapping):
    """A :class:`VMoNF`'s architecture, validated: what the recipes, the estimator and the
    paper's experiment hold and build their models from (chapter 4).

    The fields are :class:`VMoNF`'s arguments (see there); ``blocks`` and ``hidden`` left
    ``None`` take the flow's defaults. ``replace`` returns a copy with some fields changed
    (unknown names are refused), and the config is a read-only mapping of its fields too:
    ``VMoNF(**config)`` is ``config.build()``.

    >>> config = ModelConfig(dim=2, k=5, blocks=2, encoder_hidden=(8,))
    >>> model = config.build()
    >>> model.config["blocks"], model.config["hidden"], config.replace(k=3).build().k
    (2, 8, 3)
    """

    _what = "model settings"  # how SettingsMapping.replace names them

    dim: int
    k: int
    flow: str = "realnvp"
    blocks: Optional[int] = None
    hidden: Optional[Hidden] = None
    encoder_hidden: Sequence[int] = (32, 32)
    prior: Prior = None
    batch_norm: bool = True
    encoder_batch_norm: bool = True
    log_scale_bound: float = 5.0

    def __post_init__(self) -> None:
        dim = check_positive_int(self.dim, "dim")
        k = check_positive_int(self.k, "k")
        if self.flow not in _FLOW_DEFAULTS:
            raise ValueError(
                f"flow must be one of {sorted(_FLOW_DEFAULTS)}, got {self.flow!r}"
            )
        encoder_hidden = tuple(self.encoder_hidden)
        if any(
            isinstance(h, bool) or not isinstance(h, int) or h < 1
            for h in encoder_hidden
        ):
            raise ValueError(
                f"encoder_hidden must be a sequence of positive ints, got {encoder_hidden!r}"
            )
        blocks = (
            None if self.blocks is None else check_positive_int(self.blocks, "blocks")
        )
        checked = dict(
            dim=dim,
            k=k,
            encoder_hidden=encoder_hidden,
            blocks=blocks,
            batch_norm=check_bool(self.batch_norm, "batch_norm"),
            encoder_batch_norm=check_bool(
                self.encoder_batch_norm, "encoder_batch_norm"
            ),
            log_scale_bound=check_number(self.log_scale_bound, "log_scale_bound"),
        )
        if self.hidden is not None and not isinstance(self.hidden, int):
            checked["hidden"] = tuple(self.hidden)
        probabilities = _prior_probabilities(self.prior, k)
        if probabilities is not None:  # fixed probabilities, as plain floats
            checked["prior"] = tuple(probabilities.tolist())
        for name, value in checked.items():
            object.__setattr__(self, name, value)

    def build(self, components: Optional[Sequence[nn.Module]] = None) -> "VMoNF":
        """A fresh, untrained :class:`VMoNF` of this architecture (``components``: see there)."""
        return VMoNF(**self, components=components)

    def as_dict(self) -> Dict[str, Any]:
        """The architecture as plain data, the flow's defaults filled in: what ``VMoNF.config``
        holds and a checkpoint stores."""
        defaults = _FLOW_DEFAULTS[self.flow]
        hidden = defaults["hidden"] if self.hidden is None else self.hidden
        return dict(
            dim=self.dim,
            k=self.k,
            flow=self.flow,
            blocks=defaults["blocks"] if self.blocks is None else self.blocks,
            hidden=hidden if isinstance(hidden, int) else list(hidden),
            encoder_hidden=list(self.encoder_hidden),
            prior=self.prior if not isinstance(self.prior, tuple) else list(self.prior),
            batch_norm=self.batch_norm,
            encoder_batch_norm=self.encoder_batch_norm,
            log_scale_bound=self.log_scale_bound,
        )


class VMoNF(nn.Module):
    """A mixture of K normalizing flows with an amortized posterior q(c|x).

    Args:
        dim: data dimension D.
        k: number of components K.
        flow: ``"realnvp"`` (affine coupling + batch norm) or ``"maf"`` (MADE layers).
        blocks: flow depth (default 8 for RealNVP, 5 for MAF, the paper's settings).
        hidden: hidden widths of each coupling net / MADE (default 8 / 200).
        encoder_hidden: hidden widths of the encoder q(c|x).
        prior: ``None`` (uniform, fixed, the paper), ``"learned"`` (trainable logits), or a
            sequence of K probabilities (fixed).
        components: optional list of K independent flow modules (e.g. normflows models) used
            instead of the built-in stacked flow; they are evaluated in a Python loop.
        batch_norm: batch-norm layers inside the flow.
        encoder_batch_norm: batch norm inside the encoder.
        log_scale_bound: soft bound on MAF log-scales.

    Shapes: ``x`` is ``(N, D)``; per-component outputs are ``(N, K)``.
    """

    def __init__(
        self,
        dim: int,
        k: int,
        flow: str = "realnvp",
        blocks: Optional[int] = None,
        hidden: Optional[Hidden] = None,
        encoder_hidden: Sequence[int] = (32, 32),
        prior: Prior = None,
        components: Optional[Sequence[nn.Module]] = None,
        batch_norm: bool = True,
        encoder_batch_norm: bool = True,
        log_scale_bound: float = 5.0,
    ) -> None:
        super().__init__()
        architecture = ModelConfig(
            dim=dim,
            k=k,
            flow=flow,
            blocks=blocks,
            hidden=hidden,
            encoder_hidden=encoder_hidden,
            prior=prior,
            batch_norm=batch_norm,
            encoder_batch_norm=encoder_batch_norm,
            log_scale_bound=log_scale_bound,
        )
        dim, k, encoder_hidden = (
            architecture.dim,
            architecture.k,
            architecture.encoder_hidden,
        )
        probabilities = _prior_probabilities(architecture.prior, k)
        self.dim, self.k = dim, k
        self.config: Dict[str, Any] = dict(
            architecture.as_dict(), custom_components=components is not None
        )
        self.components: nn.Module
        if components is not None:
            if len(components) != k:
                raise ValueError(
                    f"components must hold k={k} flows, got {len(components)}"
                )
            self.components = FlowList(list(components))
        else:
            self.components = built_in_flows(self.config, k)
        self.encoder = _encoder(dim, k, encoder_hidden, architecture.encoder_batch_norm)
        if isinstance(prior, str):  # "learned", checked above
            self.prior_logits = nn.Parameter(torch.zeros(k))
        else:  # fixed: uniform, or the given probabilities (on the default device)
            logits = torch.zeros(k)
            if probabilities is not None:
                logits.copy_(probabilities.log())
            self.register_buffer("prior_logits", logits)

    # ------------------------------------------------------------------ helpers
    @property
    def _reference(self) -> Tensor:
        return self.prior_logits

    def _data(self, x: Any) -> Tensor:
        ref = self._reference
        return as_data(x, self.dim, "x", dtype=ref.dtype, device=ref.device)

    # ------------------------------------------------------------------ densities
    def log_prior(self) -> Tensor:
        """``log p(c)``, shape ``(K,)``."""
        return torch.log_softmax(self.prior_logits, dim=0)

    def component_log_prob(
        self, x: Any, chunk_size: int = DEFAULT_CHUNK_SIZE
    ) -> Tensor:
        """``log p(x|c)`` for every component, shape ``(N, K)``, from one batched pass per chunk.

        ``chunk_size``: rows evaluated at a time in eval mode (see :meth:`log_prob`).
        """
        return self._in_chunks(self.components.log_prob, x, chunk_size)

    def joint(self, x: Any, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Tensor:
        """``log p(c) + log p(x|c)`` for every component, shape ``(N, K)``: the log of the joint ``p(x, c)``.

        Every density of the model derives from it: ``log p(x)`` is its logsumexp over ``c``,
        the exact posterior ``p(c|x)`` its softmax, and the training losses of
        :mod:`vmonf_mini.objectives` take it as input (chapter 4).  ``chunk_size``: rows evaluated
        at a time in eval mode (see :meth:`log_prob`).

        >>> import torch
        >>> model = VMoNF(dim=2, k=3, blocks=2).eval()
        >>> x = torch.randn(4, 2)
        >>> torch.allclose(model.joint(x).logsumexp(dim=1), model.log_prob(x))
        True
        """
        return self._in_chunks(self._joint, x, chunk_size)

    def _joint(self, x: Tensor) -> Tensor:
        return self.components.log_prob(x) + self.log_prior()

    def _in_chunks(
        self, fn: Callable[..., Tensor], x: Any, chunk_size: int, *rows: Tensor
    ) -> Tensor:
        """``fn(x, *rows)`` row by row in blocks of ``chunk_size`` (eval mode), written into one
        output; ``rows`` are tensors with a row per row of ``x``, split with it.

        Identical to ``fn(x)`` up to float rounding: in eval mode every row is evaluated on its
        own.  In training mode batch norm normalizes with the statistics of the rows it is given,
        so all rows go in at once (chunking would change the result).
        """
        chunk_size = check_positive_int(chunk_size, "chunk_size")
        x = self._data(x)
        n = x.shape[0]
        if self.training or n <= chunk_size:
            return fn(x, *rows)
        part = lambda start: [t[start : start + chunk_size] for t in (x, *rows)]  # noqa: E731
        first = fn(*part(0))
        out = first.new_empty((n, *first.shape[1:]))
        out[:chunk_size] = first
        for start in range(chunk_size, n, chunk_size):
            out[start : start + chunk_size] = fn(*part(start))
        return out

    def log_prob(self, x: Any, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Tensor:
        """Exact ``log p(x) = logsumexp_c(log p(c) + log p(x|c))``, shape ``(N,)``.

        In eval mode the rows are evaluated ``chunk_size`` at a time (the same numbers).  To
        evaluate many points without building an autograd graph, call it under
        ``torch.no_grad()`` (or ``torch.inference_mode()``): memory then stays flat in N apart
        from the ``(N,)`` result.  With gradients enabled every chunk's graph is kept for the
        backward pass, so memory grows with N (about 8 KB a point for the pinwheel model).
        """
        return self._in_chunks(
            lambda part: torch.logsumexp(self._joint(part), dim=1), x, chunk_size
        )

    def exact_posterior(self, x: Any, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Tensor:
        """The true responsibilities ``p(c|x)`` under the model, shape ``(N, K)`` (chunks: :meth:`log_prob`).

        Far from the data (float32 at about 1e30) every ``log p(x|c)`` can overflow to
        ``-inf``, and the softmax would be 0/0. Such rows are evaluated again by a float64 copy
        of the model (see ``_far_rows_in_float64``), so every row is a distribution;
        where float64 overflows too (a float64 model at about 1e300), a ``ValueError`` names
        the rows.
        """
        return self._in_chunks(
            lambda part: self._far_rows_in_float64(
                "exact_posterior",
                part,
                lambda model, rows: model._joint(rows),
                lambda joint: torch.softmax(joint, dim=1),
            ),
            x,
            chunk_size,
        )

    def _far_rows_in_float64(
        self,
        what: str,
        x: Tensor,
        scores: Callable[["VMoNF", Tensor], Tensor],
        finish: Callable[[Tensor], Tensor],
    ) -> Tensor:
        """``finish(scores(self, x))``, the rows whose scores overflowed evaluated in float64.

        A row overflowed where its ``(K,)`` scores hold a NaN or no finite value (the joint of
        a point far from the data, or encoder logits near the dtype's limit). In eval mode those
        rows, in training mode all rows (batch norm uses the batch's statistics), are evaluated
        again by a float64 copy of the model, without gradient, and ``finish`` is applied in
        float64 before the result is cast back. Rows that overflow float64 too, or in a float64
        model, are refused: a ``ValueError`` that says whether the points lie too far from the
        data or the weights are not finite. The other rows are exactly
        ``finish(scores(self, x))``.
        """
        values = scores(self, x)
        out = finish(values)
        far = _overflowed(values)
        if not bool(far.any()):
            return out
        rows = torch.ones_like(far) if self.training else far
        if values.dtype != torch.float64:
            with torch.no_grad():
                wide = copy.deepcopy(self).to(torch.float64)
                again = scores(wide, x[rows].to(torch.float64))
            if not bool(_overflowed(again).any()):
                return out.index_put((rows,), finish(again).to(out.dtype))
            far = rows.clone().masked_scatter_(rows, _overflowed(again))
        finite = all(
            bool(torch.isfinite(t).all())
            for t in self.state_dict().values()
            if t.is_floating_point()
        )
        cause = (
            f"they lie too far from the data (|x| up to {float(x[far].abs().max()):.3g})"
            if finite
            else "the model's weights hold NaN or infinite values"
        )
        raise ValueError(
            f"{what}: no component has a finite score, even in float64, for "
            f"{int(far.sum())} of {x.shape[0]} rows of x: {cause}"
        )

    # ------------------------------------------------------------------ posterior
    def _log_q(self, x: Tensor, temperature: float) -> Tensor:
        t = floor_temperature(check_temperature(temperature))
        return torch.log_softmax(self.encoder(x) / t, dim=1)

    def log_posterior(
        self, x: Any, temperature: float = 1.0, chunk_size: int = DEFAULT_CHUNK_SIZE
    ) -> Tensor:
        """``log q(c|x) = log_softmax(logits / max(T, MIN_TEMPERATURE))``, shape ``(N, K)`` (chunks: :meth:`log_prob`).

        Rows whose logits overflow the model's dtype (float32 inputs near 3e38) are evaluated
        again in float64, as in :meth:`exact_posterior`; a ``ValueError`` where that overflows
        too.
        """
        t = floor_temperature(check_temperature(temperature))
        return self._in_chunks(
            lambda part: self._far_rows_in_float64(
                "posterior",
                part,
                lambda model, rows: model.encoder(rows) / t,
                lambda logits: torch.log_softmax(logits, dim=1),
            ),
            x,
            chunk_size,
        )

    def posterior(
        self, x: Any, temperature: float = 1.0, chunk_size: int = DEFAULT_CHUNK_SIZE
    ) -> Tensor:
        """The amortized posterior ``q(c|x)``, shape ``(N, K)``, rows sum to one (chunks: :meth:`log_prob`).

        Far rows as in :meth:`log_posterior`.
        """
        return self.log_posterior(x, temperature, chunk_size).exp()

    def _elbo(
        self, x: Tensor, temperature: float, labels: Optional[Tensor] = None
    ) -> Tensor:
        log_q, joint = self._log_q(x, temperature), self._joint(x)
        return objectives.lower_bound(joint, log_q, labels)

    def elbo(
        self,
        x: Any,
        temperature: float = 1.0,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        labels: Any = None,
    ) -> Tensor:
        """``sum_c q(c|x) [log p(c) + log p(x|c) - log q(c|x)]``, shape ``(N,)``; <= log p(x).

        ``labels``: optional ``(N,)`` component indices, ``-1`` for unlabeled points; a labeled
        point's value is then ``log p(x, y)`` (:func:`~vmonf_mini.objectives.lower_bound`,
        chapter 7). Chunks as :meth:`log_prob` (in eval mode only: training mode evaluates all
        rows at once).
        """
        check_temperature(temperature)
        if labels is not None:
            x = self._data(x)
            labels = as_labels(labels, x.shape[0], self.k)
        return self._checked_elbo(x, temperature, chunk_size, labels)

    def _checked_elbo(
        self, x: Any, temperature: float, chunk_size: int, labels: Optional[Tensor]
    ) -> Tensor:
        """:meth:`elbo` of labels already checked (``None``, or a ``(N,)`` tensor of ``-1`` and
        ``0..K-1`` on any device): the estimator's objective, whose labels its ``fit`` checked."""
        if labels is None:
            return self._in_chunks(
                lambda part: self._elbo(part, temperature), x, chunk_size
            )
        y = labels.to(self._reference.device)
        return self._in_chunks(
            lambda part, y_part: self._elbo(part, temperature, y_part), x, chunk_size, y
        )

    def predict(
        self, x: Any, exact: bool = False, chunk_size: int = DEFAULT_CHUNK_SIZE
    ) -> Tensor:
        """Cluster assignment ``argmax_c q(c|x)`` (or of ``p(c|x)`` when ``exact``), shape ``(N,)``.

        Chunks as :meth:`log_prob`; under ``torch.no_grad()`` memory stays flat in N. Far rows
        as in :meth:`exact_posterior` (evaluated again in float64, else a ``ValueError``).
        """
        return self._in_chunks(
            lambda part: self._far_rows_in_float64(
                "predict",
                part,
                lambda model, rows: (
                    model._joint(rows) if exact else model.encoder(rows)
                ),
                lambda scores: scores.argmax(dim=1),
            ),
            x,
            chunk_size,
        )

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def sample(self, n: int) -> Tuple[Tensor, Tensor]:
        """Draw ``n`` points: ``c ~ p(c)``, ``x ~ p(x|c)``. Returns ``(x (n, D), c (n,))``."""
        n = check_positive_int(n, "n")
        c = torch.multinomial(self.log_prior().exp(), n, replacement=True)
        return self.components.sample(c), c

    @torch.no_grad()
    def sample_component(self, c: int, n: int) -> Tensor:
        """Draw ``n`` points from component ``c``, shape ``(n, D)``."""
        index = _component_index(c, self.k)
        n = check_positive_int(n, "n")
        return self.components.sample(
            torch.full((n,), index, dtype=torch.long, device=self._reference.device)
        )

    @torch.no_grad()
    def sample_each_component(self, n: int) -> Tensor:
        """Draw ``n`` points from every component in one batched pass, shape ``(K, n, D)``.

        (MAF samples one feature at a time, so one pass for all K costs K times less than
        :meth:`sample_component` called for each c.)
        """
        n = check_positive_int(n, "n")
        which = torch.arange(self.k, device=self._reference.device).repeat_interleave(n)
        return self.components.sample(which).reshape(self.k, n, self.dim)

    # ------------------------------------------------------------------ checkpoints
    def save(self, path: Union[str, os.PathLike]) -> None:
        """Write config and weights to ``path`` atomically (a temporary file, then a rename).

        The temporary file, ``.<name>.vmonf-tmp-<host>-<pid>-<random>`` in the same folder, is
        removed if the save fails; one left by a killed save is removed by the next ``save`` into
        that folder: one whose writing process is gone, or not modified for an hour
        (:mod:`vmonf_mini.checkpoint` holds the file layout).
        """
        checkpoint.save(self, path)

    @classmethod
    def load(
        cls,
        path: Union[str, os.PathLike],
        map_location: Union[str, torch.device, None] = "cpu",
    ) -> "VMoNF":
        """Rebuild a model written by :meth:`save` (read with ``weights_only=True``), in eval mode.

        The loaded model answers exactly as the saved one did in eval mode (batch norm uses the
        saved running averages); call ``.train()`` on it to resume training.  A file that is
        not such a checkpoint, or whose config does not fit its weights, is refused with a
        ``ValueError`` (:func:`vmonf_mini.checkpoint.load`).
        """
        return checkpoint.load(cls, path, map_location)
