"""Checkpoints of a :class:`~vmonf_mini.VMoNF`: the file layout, and what a load must refuse.

A checkpoint holds the format version, the constructor's arguments (``config``) and the weights
(``state_dict``, on the CPU); it is written atomically (:mod:`vmonf_mini.atomic`) and read with
``weights_only=True``.  Before a loaded config builds a model, its sizes are checked against
the saved tensors, so a tampered file cannot make :func:`load` allocate more than it holds.
``VMoNF.save`` and ``VMoNF.load`` call :func:`save` and :func:`load`.

>>> import pathlib, tempfile, torch
>>> from vmonf_mini import VMoNF
>>> model = VMoNF(dim=2, k=3, blocks=2).eval()
>>> path = pathlib.Path(tempfile.mkdtemp()) / "model.pt"
>>> save(model, path)
>>> loaded = load(VMoNF, path)
>>> x = torch.randn(4, 2)
>>> torch.equal(loaded.log_prob(x), model.log_prob(x))
True
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Tuple, Type, TypeVar, Union

import torch
from torch import Tensor

from .atomic import write_atomically

if TYPE_CHECKING:
    from .mixture import VMoNF

__all__ = ["CHECKPOINT_FORMAT", "save", "load"]

#: Version of the file layout written by :func:`save`.
CHECKPOINT_FORMAT = 1

_Model = TypeVar("_Model", bound="VMoNF")


def save(model: VMoNF, path: Union[str, os.PathLike]) -> None:
    """Write ``model``'s config and weights to ``path`` atomically (a temporary file, then a rename).

    A model with custom components cannot be rebuilt from its config, and is refused.
    """
    if model.config["custom_components"]:
        raise ValueError(
            "save() needs the built-in flows; with custom components use torch.save(model.state_dict())"
        )
    payload = {
        "format": CHECKPOINT_FORMAT,
        "config": model.config,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    write_atomically(Path(path), lambda file: torch.save(payload, file))


def load(
    model_class: Type[_Model],
    path: Union[str, os.PathLike],
    map_location: Union[str, torch.device, None] = "cpu",
) -> _Model:
    """Rebuild the ``model_class`` written to ``path`` by :func:`save`, in eval mode.

    A missing file, one that is not a checkpoint of this format, a config that does not fit the
    saved weights and prior logits that are not a distribution's are refused with an error that
    names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:
        raise ValueError(
            f"{path} is not a readable VMoNF checkpoint (corrupt or not written by VMoNF.save): {err}"
        ) from None
    if (
        not isinstance(payload, dict)
        or not {"format", "config", "state_dict"} <= payload.keys()
    ):
        raise ValueError(f"{path} is not a VMoNF checkpoint (no format/config entries)")
    if payload["format"] != CHECKPOINT_FORMAT:
        raise ValueError(
            f"{path} has checkpoint format {payload['format']!r}, this vmonf_mini reads format {CHECKPOINT_FORMAT}"
        )
    config, state = payload["config"], payload["state_dict"]
    if not isinstance(config, dict) or not isinstance(state, dict):
        raise ValueError(
            f"{path} is not a VMoNF checkpoint (config or state_dict is not a dict)"
        )
    config = {k: v for k, v in config.items() if k != "custom_components"}
    _check_config_fits_weights(model_class, path, config, state)
    model = _build(model_class, path, config)
    if isinstance(state.get("prior_logits"), Tensor):
        model = model.to(state["prior_logits"].dtype)
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(
            f"{path}: weights do not match the architecture in its config: {err}"
        ) from None
    if bool(torch.isnan(model.log_prior()).any()):  # NaN, +inf or all -inf logits
        raise ValueError(
            f"{path}: its prior_logits are not a distribution's logits: "
            f"{model.prior_logits.tolist()}"
        )
    return model.eval()


def _build(model_class: Type[_Model], path: Path, config: Dict[str, Any]) -> _Model:
    """``model_class(**config)``; a config it refuses is a ``ValueError`` that names the file."""
    try:
        return model_class(**config)
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"{path}: this vmonf_mini cannot build the model its config describes: {err}"
        ) from None


def _saved_shapes(path: Path, state: Dict[str, Any]) -> Dict[str, Tuple[int, ...]]:
    if not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(
            f"{path} is not a VMoNF checkpoint (its state_dict holds values that are not tensors)"
        )
    return {name: tuple(t.shape) for name, t in state.items()}


def _sizes_in(config: Dict[str, Any]) -> Tuple[int, int]:
    """The largest width and the longest list of widths that ``config`` asks for (ints only)."""
    widths, lengths = [], []
    for key in ("dim", "k", "hidden", "encoder_hidden"):
        value = config.get(key)
        values = value if isinstance(value, (list, tuple)) else [value]
        widths += [v for v in values if isinstance(v, int)]
        lengths.append(len(values))
    blocks = config.get("blocks")
    return max(widths, default=0), max(
        [*lengths, blocks if isinstance(blocks, int) else 0]
    )


def _check_config_fits_weights(
    model_class: type, path: Path, config: Dict[str, Any], state: Dict[str, Any]
) -> None:
    """Refuse a config whose model would not hold exactly the saved tensors, before building it.

    First, cheaply: every width the config names (``dim``, ``k``, ``hidden``, ``encoder_hidden``)
    must be at most the largest axis of a saved tensor, and ``blocks`` and the number of hidden
    layers at most the number of saved tensors (each adds at least one), so a tampered config
    cannot make ``load`` allocate more than the file holds.  Then the model is built on the
    ``meta`` device (shapes only, no memory) and its tensors' names and shapes compared.
    """
    shapes = _saved_shapes(path, state)
    largest_axis = max((max(s, default=1) for s in shapes.values()), default=0)
    widest, longest = _sizes_in(config)
    if widest > largest_axis or longest > len(shapes):
        raise ValueError(
            f"{path}: weights do not match the architecture in its config: the config asks for sizes up to "
            f"{widest} and {longest} layers, the {len(shapes)} saved tensors have no axis longer than {largest_axis}"
        )
    with torch.device("meta"):
        skeleton = _build(model_class, path, config)
    expected = {name: tuple(t.shape) for name, t in skeleton.state_dict().items()}
    if expected != shapes:
        missing, unexpected = (
            sorted(expected.keys() - shapes.keys()),
            sorted(shapes.keys() - expected.keys()),
        )
        wrong = [
            f"{n} {shapes[n]} (config: {expected[n]})"
            for n in sorted(expected.keys() & shapes.keys())
            if expected[n] != shapes[n]
        ]
        details = "; ".join(
            f"{what}: {', '.join(names[:3])}{' ...' if len(names) > 3 else ''}"
            for what, names in (
                ("missing", missing),
                ("unexpected", unexpected),
                ("shape", wrong),
            )
            if names
        )
        raise ValueError(
            f"{path}: weights do not match the architecture in its config: {details}"
        )
