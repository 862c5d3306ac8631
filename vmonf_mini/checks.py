"""Input validation shared by the package: fail early, name the argument and what was expected.

>>> import torch
>>> as_data(torch.zeros(3, 2), dim=2, name="x").shape
torch.Size([3, 2])
>>> as_data(torch.zeros(3, 4), dim=2, name="x")
Traceback (most recent call last):
...
ValueError: x must have shape (N, 2), got (3, 4)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, Iterable, Iterator, Optional, Tuple

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "as_data",
    "as_labels",
    "check_bool",
    "check_fields",
    "check_label_counts",
    "SettingsMapping",
    "check_number",
    "check_positive_int",
    "check_temperature",
]


def as_data(
    x: Any,
    dim: Optional[int] = None,
    name: str = "x",
    dtype: Optional[torch.dtype] = None,
    device: Optional[torch.device] = None,
) -> Tensor:
    """Return ``x`` as a finite floating tensor of shape ``(N, dim)`` with N >= 1.

    Floating-point and integer inputs (of any width, signed or not) are accepted, integers
    converted to ``dtype`` (default: torch's default dtype). Finite values that overflow
    ``dtype`` (float64 data beyond 3.4e38 for a float32 model) are refused with a message
    that says so, apart from NaN and infinite values.

    >>> as_data(torch.ones(2, 2, dtype=torch.int16)).dtype
    torch.float32
    >>> as_data(torch.tensor([[1e39, 0.0]], dtype=torch.float64), dtype=torch.float32)
    Traceback (most recent call last):
    ...
    ValueError: x holds values beyond the range of torch.float32 (in 1 of 1 rows; |x| up to 1e+39, torch.float32 holds up to 3.4e+38): rescale x, or use a float64 model (model.double())
    """
    if not isinstance(x, (Tensor, np.ndarray, list, tuple)):
        raise TypeError(
            f"{name} must be a tensor or array of shape (N, D), got {type(x).__name__}"
        )
    accepted = "real numbers (a floating-point or integer dtype)"
    try:
        t = torch.as_tensor(x)
    except (TypeError, ValueError, RuntimeError):
        what = x.dtype if isinstance(x, np.ndarray) else type(x).__name__
        raise TypeError(f"{name} must hold {accepted}, got {what}") from None
    if t.is_complex() or t.dtype == torch.bool:
        raise TypeError(f"{name} must hold {accepted}, got dtype {t.dtype}")
    if t.dim() != 2:
        expected = f"(N, {dim})" if dim is not None else "(N, D)"
        raise ValueError(f"{name} must have shape {expected}, got {tuple(t.shape)}")
    if dim is not None and t.shape[1] != dim:
        raise ValueError(f"{name} must have shape (N, {dim}), got {tuple(t.shape)}")
    if t.shape[0] == 0:
        raise ValueError(f"{name} is empty: it needs at least one row")
    given = t
    target = dtype or (t.dtype if t.is_floating_point() else torch.get_default_dtype())
    t = t.to(dtype=target, device=device)
    if not bool(torch.isfinite(t).all()):
        bad = int((~torch.isfinite(t)).any(dim=1).sum())
        if given.is_floating_point() and not bool(torch.isfinite(given).all()):
            raise ValueError(
                f"{name} contains NaN or infinite values (in {bad} of {t.shape[0]} rows)"
            )
        largest = float(given.to(torch.float64).abs().max())
        raise ValueError(
            f"{name} holds values beyond the range of {target} (in {bad} of "
            f"{t.shape[0]} rows; |{name}| up to {largest:.3g}, {target} holds up to "
            f"{torch.finfo(target).max:.3g}): rescale {name}, or use a float64 model "
            "(model.double())"
        )
    return t


def as_labels(
    labels: Any, n: int, k: int, name: str = "labels", allow_unlabeled: bool = True
) -> Tensor:
    """Return integer labels of shape ``(n,)`` in ``[0, k)``; ``-1`` marks unlabeled if allowed."""
    t = torch.as_tensor(labels)
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise TypeError(f"{name} must be integers, got dtype {t.dtype}")
    if t.dim() != 1 or t.shape[0] != n:
        raise ValueError(
            f"{name} must have shape ({n},) to match x, got {tuple(t.shape)}"
        )
    t = t.long()
    low = -1 if allow_unlabeled else 0
    bad = (t < low) | (t >= k)
    if bool(bad.any()):
        allowed = f"-1 (unlabeled) or 0..{k - 1}" if allow_unlabeled else f"0..{k - 1}"
        raise ValueError(f"{name} must be {allowed}; found {t[bad][:5].tolist()}")
    return t


def check_label_counts(
    labeled: int, unlabeled: int, name: str, where: str = ""
) -> None:
    """Refuse labels ``name`` that leave a lone point of either kind: batch norm normalizes the
    labeled and the unlabeled points in batches of their own, and needs two of each kind that
    is present (chapter 7). ``where`` (e.g. ``" (run 2)"``) follows the count in the message.

    >>> check_label_counts(2, 0, "y")
    >>> check_label_counts(1, 9, "y")
    Traceback (most recent call last):
    ...
    ValueError: y: exactly one point is labeled; batch norm needs two: label another or none
    """
    if labeled == 1:
        raise ValueError(
            f"{name}: exactly one point is labeled{where}; batch norm needs two: "
            "label another or none"
        )
    if unlabeled == 1:
        raise ValueError(
            f"{name}: exactly one point is unlabeled{where}; batch norm needs two: "
            "label it or leave another unlabeled"
        )


def check_positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def check_bool(value: Any, name: str) -> bool:
    """``True`` or ``False`` (a numpy bool too); anything else, e.g. the string ``"no"``, is refused.

    >>> check_bool("no", "batch_norm")
    Traceback (most recent call last):
    ...
    ValueError: batch_norm must be True or False, got 'no'
    """
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_fields(names: Iterable[str], cls: type, what: str) -> None:
    """A ``TypeError`` naming every entry of ``names`` that is not a field of the dataclass ``cls``.

    >>> from vmonf_mini import TrainConfig
    >>> check_fields(["lr", "epoch"], TrainConfig, "training settings")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    TypeError: unknown training settings ['epoch']; TrainConfig has epochs, batch_size, lr, ...
    """
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise TypeError(
            f"unknown {what} {unknown}; {cls.__name__} has {', '.join(known)}"
        )


class SettingsMapping(Mapping):
    """The base of a frozen dataclass of settings (:class:`~vmonf_mini.TrainConfig`,
    :class:`~vmonf_mini.ModelConfig`): it reads as a read-only mapping of its fields
    (``config["lr"]``, ``dict(config)``, ``fit(model, x, **config)``), and :meth:`replace`
    refuses a name that is not a field (:func:`check_fields`, naming the settings as ``_what``).

    >>> from vmonf_mini import TrainConfig
    >>> config = TrainConfig(epochs=3)
    >>> config["epochs"], len(config) == len(dict(config)), config.replace(lr=0.1).lr
    (3, True, 0.1)
    """

    _what = "settings"  # how an error names them, e.g. "training settings"

    def replace(self, **changes: Any) -> SettingsMapping:
        """A copy with ``changes`` (validated; a name that is not a field is a ``TypeError``)."""
        check_fields(changes, type(self), self._what)
        return dataclasses.replace(self, **changes)

    def _names(self) -> Tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(self))

    def __getitem__(self, name: str) -> Any:
        if name not in self._names():
            raise KeyError(name)
        return getattr(self, name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())


def check_number(
    value: Any, name: str, *, positive: bool = True, optional: bool = False
) -> Optional[float]:
    """A finite real number, ``> 0`` when ``positive`` else ``>= 0``; ``None`` passes when ``optional``.

    >>> check_number(1e-3, "lr")
    0.001
    >>> check_number(-1, "weight_decay", positive=False)
    Traceback (most recent call last):
    ...
    ValueError: weight_decay must be a number >= 0, got -1
    """
    if value is None and optional:
        return None
    real = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )
    if not (real and math.isfinite(value) and (value > 0 if positive else value >= 0)):
        what = "a positive number" if positive else "a number >= 0"
        raise ValueError(
            f"{name} must be {'None or ' if optional else ''}{what}, got {value!r}"
        )
    return float(value)


def check_temperature(value: Any, name: str = "temperature") -> float:
    """A positive finite number (a 0-d tensor too), as a float; a string or a bool is refused.

    >>> check_temperature("0.5")
    Traceback (most recent call last):
    ...
    TypeError: temperature must be a positive number, got '0.5'
    """
    if isinstance(value, (str, bytes, bool, np.bool_)):
        raise TypeError(f"{name} must be a positive number, got {value!r}")
    try:
        t = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a positive number, got {value!r}") from None
    if not math.isfinite(t) or t <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return t
