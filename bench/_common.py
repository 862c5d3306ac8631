"""Helpers shared by the benchmark scripts: machine header, timing, tables, normflows builders."""

from __future__ import annotations

import gc
import json
import os
import platform
import statistics
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch


def setup_threads(threads: Optional[int]) -> int:
    """Use ``threads`` intra-op threads (default: torch's own choice) and return the number in use."""
    if threads:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def load_string() -> str:
    """The 1, 5 and 15 minute load averages."""
    return (
        ", ".join(f"{v:.1f}" for v in os.getloadavg())
        if hasattr(os, "getloadavg")
        else "n/a"
    )


def machine_header(title: str, threads: int, extra: str = "") -> str:
    """Two lines that say where and under what load the numbers were taken."""
    load = load_string()
    return (
        f"## {title}\n"
        f"torch {torch.__version__}, {platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, {threads} torch thread(s), load average {load}{extra}\n"
    )


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def median_time(
    fn: Callable[[], Any], repeats: int, warmup: int = 2, clock: str = "wall"
) -> float:
    """Median seconds of ``fn()`` over ``repeats`` calls after ``warmup`` calls."""
    return interleaved({"fn": fn}, repeats, warmup, clock)["fn"]


def interleaved(
    fns: Dict[str, Callable[..., Any]],
    repeats: int,
    warmup: int = 2,
    clock: str = "wall",
    prepare: Optional[Dict[str, Callable[[], Any]]] = None,
) -> Dict[str, float]:
    """Median seconds of each ``fn()``, the functions called in turn (a, b, c, a, b, c, ...) so that
    a change of machine load during the run affects them alike.

    ``clock="wall"`` is ``time.perf_counter``; ``"cpu"`` is this process's CPU time
    (``time.process_time``), steadier on a loaded machine but only comparable with one thread.
    ``prepare``: for a name, what its function needs made afresh before each call (models to
    train, say), built outside the timing and passed to it: ``fn(prepare[name]())``.  Before
    each timing the garbage of the previous calls is collected, so that no call pays for
    another's collection.
    """
    now = CLOCKS[clock]
    prepare = prepare or {}

    def timed(name: str) -> float:
        fn = fns[name]
        args = (prepare[name](),) if name in prepare else ()
        gc.collect()
        start = now()
        fn(*args)
        return now() - start

    for _ in range(warmup):
        for name in fns:
            timed(name)
    times: Dict[str, List[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name in fns:
            times[name].append(timed(name))
    return {name: statistics.median(t) for name, t in times.items()}


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table (copy-pasteable into an issue or the README).

    Not :func:`vmonf_mini.presentation.markdown_table`, the chapters' table: this one pads every
    column to one width, so that it reads as a table on a terminal too, and formats numbers
    for reading (three significant figures, thousands separators, NaN as ``-``), where
    ``markdown_table`` writes ``str(value)``; ``book/timings.md`` holds its output.
    """
    cells = [[str(h) for h in headers]] + [[_fmt(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |"
        for row in cells
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if v != v:
            return "-"
        return (
            f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3g}" if abs(v) < 10 else f"{v:.1f}"
        )
    return str(v)


def verdict(name: str, ok: bool, detail: str) -> Dict[str, Any]:
    print(f"{'PASS' if ok else 'FAIL'}  {name}: {detail}")
    return {"target": name, "pass": bool(ok), "detail": detail}


def write_json(path: Optional[str], payload: Dict[str, Any]) -> None:
    if path:
        with open(path, "w") as f:
            json.dump(payload, f, indent=2, default=float)
        print(f"wrote {path}")


# ---------------------------------------------------------------- normflows equivalents
def normflows_realnvp(dim: int, blocks: int, hidden: int) -> torch.nn.Module:
    """The same RealNVP in normflows 1.7: masked affine couplings (s and t MLPs) and ActNorm.

    (normflows' BatchNorm has no inverse, and normflows evaluates densities through inverses.)
    """
    import normflows as nf

    flows: List[torch.nn.Module] = []
    for i in range(blocks):
        mask = torch.tensor([float((j + i) % 2 == 0) for j in range(dim)])
        s = nf.nets.MLP([dim, hidden, dim], init_zeros=True)
        t = nf.nets.MLP([dim, hidden, dim], init_zeros=True)
        flows += [nf.flows.MaskedAffineFlow(mask, t=t, s=s), nf.flows.ActNorm(dim)]
    return nf.NormalizingFlow(nf.distributions.DiagGaussian(dim), flows)


def normflows_maf(dim: int, blocks: int, hidden: int) -> torch.nn.Module:
    """The same MAF in normflows 1.7: MaskedAffineAutoregressive (MADE) layers with permutations.

    normflows computes densities with each layer's inverse, which for its autoregressive layer
    is sequential (one MADE pass per feature: 784 passes on MNIST).  ``nf.flows.Reverse`` swaps
    the directions so that the density takes one pass, as in the MAF paper and vmonf_mini.
    Its MADE with ``num_blocks=1`` has one more hidden layer (hidden x hidden) than ours.
    """
    import normflows as nf

    flows: List[torch.nn.Module] = []
    for _ in range(blocks):
        made = nf.flows.MaskedAffineAutoregressive(
            dim, hidden, num_blocks=1, use_residual_blocks=False
        )
        flows += [nf.flows.Reverse(made), nf.flows.Permute(dim, mode="swap")]
    return nf.NormalizingFlow(nf.distributions.DiagGaussian(dim), flows)
