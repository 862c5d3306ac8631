"""Recorded runs: results of runs too long for the book's build, kept with their provenance.

A record is a small JSON file (numbers, tables, the configuration and where, when and how the run
was made) plus an ``.npz`` of the arrays a figure needs, both under ``book/recorded/``, written
by ``make record`` (``tools/record.py``).  A chapter shows a record in a box labelled as a
recorded run, beside the build's own shortened run of the same code (chapter 8).  The tests
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
import html
import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import numpy as np
import torch

__all__ = [
    "PROVENANCE_FIELDS",
    "write_record",
    "read_record",
    "missing_provenance",
    "config_differences",
    "hardware",
    "record_box",
    "find_record",
    "html_table",
    "figure_html",
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
    """Write ``folder/name.json`` (results, configuration, provenance) and ``folder/name.npz``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        folder / f"{name}.npz", **{k: np.asarray(v) for k, v in arrays.items()}
    )
    record = {
        "name": name,
        "provenance": {
            "command": command,
            "commit": _commit(),
            "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "hardware": hardware(device),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "wall_seconds": round(float(wall_seconds), 1),
            "seeds": [int(s) for s in seeds],
        },
        "config": _jsonable(dict(config)),
        "results": _jsonable(dict(results)),
        "arrays": f"{name}.npz",
    }
    path = folder / f"{name}.json"
    path.write_text(json.dumps(record, indent=1) + "\n")
    return path


def read_record(path: PathLike) -> Dict[str, Any]:
    """A record's JSON, with its arrays loaded under ``"arrays"`` (a dict of numpy arrays)."""
    path = Path(path)
    record = json.loads(path.read_text())
    with np.load(path.parent / record["arrays"]) as stored:
        record["arrays"] = {key: stored[key] for key in stored.files}
    return record


def missing_provenance(record: Mapping[str, Any]) -> List[str]:
    """The provenance fields a record lacks or leaves empty (``[]`` when complete)."""
    given = record.get("provenance", {})
    missing = [f for f in PROVENANCE_FIELDS if given.get(f) in (None, "", [])]
    return missing + ([] if record.get("config") else ["config"])


def config_differences(
    record: Mapping[str, Any], expected: Mapping[str, Any]
) -> List[str]:
    """Each setting where the record's configuration differs from ``expected`` (``[]`` when equal)."""
    have = record.get("config", {})
    keys = sorted(set(have) | set(expected))
    return [
        f"{k}: record {have.get(k)!r}, code {expected.get(k)!r}"
        for k in keys
        if have.get(k) != expected.get(k)
    ]


def record_box(record: Mapping[str, Any], body_html: str) -> str:
    """HTML of a box labelled as a recorded run (hardware, date, commit, wall time) around ``body_html``."""
    p = record["provenance"]
    minutes = p["wall_seconds"] / 60
    title = (
        f"Recorded run, not this build: {html.escape(p['hardware'])}, {html.escape(p['date'])}, "
        f"commit {html.escape(p['commit'][:12])}, {minutes:.0f} min wall time"
    )
    footer = (
        f"Made by <code>{html.escape(p['command'])}</code> with torch {html.escape(p['torch'])}, "
        f"seeds {p['seeds']}; file <code>book/recorded/{html.escape(record['name'])}.json</code>."
    )
    return (
        f'<div class="admonition note recorded-run"><p class="admonition-title">{title}</p>'
        f"{body_html}<p>{footer}</p></div>"
    )


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


def html_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain HTML table (cells are escaped; numbers as given)."""
    pad = ' style="padding: 0.15em 0.7em"'
    head = "".join(f"<th{pad}>{html.escape(str(h))}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td{pad}>{html.escape(str(c))}</td>" for c in row) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def figure_html(fig: Any, dpi: int = 90) -> str:
    """A matplotlib figure as an inline PNG ``<img>`` (closes the figure)."""
    import base64
    import io

    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return (
        f'<img alt="figure of the recorded run" src="data:image/png;base64,{encoded}"/>'
    )
