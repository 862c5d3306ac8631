"""Recorded runs: results of runs too long for the book's build, kept with their provenance.

A record is a small JSON file (numbers, tables, the configuration and where, when and how the run
was made) plus an ``.npz`` of the arrays a figure needs, both under ``book/recorded/``, written
by ``make record`` (``tools/record.py``).  A chapter shows a record in a box labelled as a
recorded run (:mod:`vmonf_mini.record_html`), beside the build's own shortened run of the same
code (chapter 8).  The tests
compare every record's configuration with the code's ``full`` configuration, so that a change
of the model cannot leave a stale record in the book unnoticed.

Example:
    >>> import tempfile, pathlib, numpy as np
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> path = write_record(folder, "demo", {"acc": 0.9}, {"epochs": 1}, {"x": np.zeros(3)},
    ...                     command="make record", seeds=[0], wall_seconds=1.5)
    >>> record = read_record(path)
    >>> record["results"]["acc"], missing_provenance(record)
    (0.9, [])
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import numpy as np
import torch

from .atomic import write_atomically

__all__ = [
    "PROVENANCE_FIELDS",
    "write_record",
    "read_record",
    "missing_provenance",
    "config_differences",
    "hardware",
    "find_record",
]

#: What every record says of its run.
PROVENANCE_FIELDS = (
    "command",
    "commit",
    "date",
    "hardware",
    "torch",
    "python",
    "wall_seconds",
    "seeds",
)

PathLike = Union[str, os.PathLike]


def hardware(device: Optional[torch.device] = None) -> str:
    """The accelerator's name when ``device`` is a GPU, else the CPU's, with the core count."""
    if device is not None and torch.device(device).type == "cuda":
        return f"{torch.cuda.get_device_name(torch.device(device))} (CUDA {torch.version.cuda})"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            names = [
                line.split(":", 1)[1].strip()
                for line in info
                if line.startswith("model name")
            ]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores"


def _commit() -> str:
    """The repository's commit, with ``+changes`` when the work tree differs from it.

    ``$VMONF_RECORD_COMMIT`` names it where the run happens outside a git checkout (a copy of
    the work tree on a GPU machine).
    """
    if os.environ.get("VMONF_RECORD_COMMIT"):
        return os.environ["VMONF_RECORD_COMMIT"]
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=here,
            capture_output=True,
            text=True,
            check=True,
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return commit.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _non_finite(value: Any, where: str) -> Optional[str]:
    """The place of the first NaN or infinite number in ``value`` (JSON has neither), else ``None``."""
    if isinstance(value, float):
        return None if np.isfinite(value) else f"{where} = {value}"
    if isinstance(value, dict):
        items: Any = ((f"{where}[{k!r}]", v) for k, v in value.items())
    elif isinstance(value, list):
        items = ((f"{where}[{i}]", v) for i, v in enumerate(value))
    else:
        return None
    for place, item in items:
        found = _non_finite(item, place)
        if found:
            return found
    return None


def _wall_seconds(value: Any) -> Optional[float]:
    """``value`` as a wall time in seconds: a finite number >= 0, else ``None``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(
        value, (int, float, np.integer, np.floating)
    ):
        return None
    seconds = float(value)
    return seconds if np.isfinite(seconds) and seconds >= 0 else None


def write_record(
    folder: PathLike,
    name: str,
    results: Mapping[str, Any],
    config: Mapping[str, Any],
    arrays: Mapping[str, np.ndarray],
    *,
    command: str,
    seeds: Sequence[int],
    wall_seconds: float,
    device: Optional[torch.device] = None,
) -> Path:
    """Write ``folder/name.json`` (results, configuration, provenance) and ``folder/name.npz``.

    The JSON is strict (no ``NaN`` or ``Infinity``): a non-finite number in ``results`` or
    ``config``, or a wall time that is not a finite number of seconds >= 0, is refused with a
    ``ValueError`` before any file is written.  Each file is written to a temporary file and
    renamed, the JSON last, so a failure never leaves a half-written record.

    >>> import tempfile
    >>> write_record(tempfile.mkdtemp(), "r", {"acc": float("nan")}, {}, {},
    ...              command="c", seeds=[0], wall_seconds=1.0)
    Traceback (most recent call last):
    ...
    ValueError: a record holds finite numbers only (JSON has no NaN or infinity): results['acc'] = nan
    """
    seconds = _wall_seconds(wall_seconds)
    if seconds is None:
        raise ValueError(
            f"wall_seconds must be a finite number of seconds >= 0, got {wall_seconds!r}"
        )
    if not isinstance(results, Mapping) or not isinstance(config, Mapping):
        raise TypeError(
            f"results and config must be mappings, got {type(results).__name__} "
            f"and {type(config).__name__}"
        )
    folder = Path(folder)
    record = {
        "name": name,
        "provenance": {
            "command": command,
            "commit": _commit(),
            "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "hardware": hardware(device),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "wall_seconds": round(seconds, 1),
            "seeds": [int(s) for s in seeds],
        },
        "config": _jsonable(dict(config)),
        "results": _jsonable(dict(results)),
        "arrays": f"{name}.npz",
    }
    bad = _non_finite(record["config"], "config") or _non_finite(
        record["results"], "results"
    )
    if bad:
        raise ValueError(
            f"a record holds finite numbers only (JSON has no NaN or infinity): {bad}"
        )
    text = json.dumps(record, indent=1, allow_nan=False) + "\n"
    folder.mkdir(parents=True, exist_ok=True)
    write_atomically(
        folder / f"{name}.npz",
        lambda file: np.savez_compressed(
            file, **{k: np.asarray(v) for k, v in arrays.items()}
        ),
    )
    path = folder / f"{name}.json"
    write_atomically(path, lambda file: file.write(text.encode("utf-8")))
    return path


def _refuse_constant(constant: str) -> None:
    raise ValueError(f"holds {constant}, which strict JSON does not allow")


def read_record(path: PathLike) -> Dict[str, Any]:
    """A record's JSON, with its arrays loaded under ``"arrays"`` (a dict of numpy arrays).

    A file that is not strict JSON (``NaN``, ``Infinity``) is refused with a ``ValueError``.
    """
    path = Path(path)
    try:
        record = json.loads(path.read_text(), parse_constant=_refuse_constant)
    except ValueError as error:
        raise ValueError(f"{path} is not a valid record: {error}") from None
    if not isinstance(record, dict) or not isinstance(record.get("arrays"), str):
        raise ValueError(f"{path} is not a record: it names no .npz of arrays")
    with np.load(path.parent / record["arrays"]) as stored:
        record["arrays"] = {key: stored[key] for key in stored.files}
    return record


def _section(record: Any, key: str) -> Optional[Mapping[str, Any]]:
    """``record[key]`` when it is a mapping, ``None`` when absent or null; anything else is refused."""
    if not isinstance(record, Mapping):
        raise ValueError(
            f"a record must be a mapping (a JSON object), got {type(record).__name__}"
        )
    section = record.get(key)
    if section is not None and not isinstance(section, Mapping):
        raise ValueError(
            f"the record's {key!r} must be a mapping (a JSON object), "
            f"got {type(section).__name__}: {section!r}"
        )
    return section


def missing_provenance(record: Mapping[str, Any]) -> List[str]:
    """The provenance fields a record lacks or leaves empty (``[]`` when complete).

    A wall time that is not a finite number of seconds >= 0 counts as missing; a
    ``provenance`` or ``config`` that is not a mapping is refused with a ``ValueError``.

    >>> missing_provenance({"provenance": {"wall_seconds": float("nan")}, "config": {"k": 5}})
    ['command', 'commit', 'date', 'hardware', 'torch', 'python', 'wall_seconds', 'seeds']
    """
    given = _section(record, "provenance") or {}
    config = _section(record, "config")
    missing = [
        f
        for f in PROVENANCE_FIELDS
        if given.get(f) in (None, "", [])
        or (f == "wall_seconds" and _wall_seconds(given[f]) is None)
    ]
    return missing + ([] if config else ["config"])


def config_differences(
    record: Mapping[str, Any], expected: Mapping[str, Any]
) -> List[str]:
    """Each setting where the record's configuration differs from ``expected`` (``[]`` when equal).

    A record without a configuration (absent or null) is refused with a ``ValueError``, as is
    one whose configuration is not a mapping.

    >>> config_differences({"config": {"epochs": 1}}, {"epochs": 2})
    ['epochs: record 1, code 2']
    """
    have = _section(record, "config")
    if have is None:
        raise ValueError(
            "the record has no configuration ('config' is absent or null) to compare"
        )
    keys = sorted(set(have) | set(expected))
    return [
        f"{k}: record {have.get(k)!r}, code {expected.get(k)!r}"
        for k in keys
        if have.get(k) != expected.get(k)
    ]


def find_record(
    name: str, folders: Sequence[PathLike] = ("recorded", "book/recorded")
) -> Optional[Dict[str, Any]]:
    """The record ``name`` from the first folder (relative to the working directory) that holds it.

    A chapter runs with its own folder, ``book/``, as working directory; ``None`` when no
    folder holds it (a chapter opened alone, in Colab).
    """
    for folder in folders:
        path = Path(folder) / f"{name}.json"
        if path.is_file():
            return read_record(path)
    return None
