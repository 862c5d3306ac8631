"""Seconds each chapter takes to execute, per budget.  (``make timings``)

Every ``book/NN_*.ipynb`` is executed with nbclient in a fresh ``python3`` kernel whose working
directory is ``book/`` (so relative paths resolve as in the build), with ``VMONF_BUDGET`` set to
the budget.  Nothing is written into ``book/``: the notebooks are executed in memory and, with
``--keep DIR``, the executed copies are saved in ``DIR``.

    python bench/chapter_times.py                          # smoke and default budgets
    python bench/chapter_times.py --budget smoke           # seconds
    python bench/chapter_times.py --budget default --only 06_pinwheel --only 07
    python bench/chapter_times.py --budget full --record gpu --hardware-name "NVIDIA H200"
    python bench/chapter_times.py --render                 # only rewrite the book's table

Prints a Markdown table (seconds per chapter and the total); exits 1 when a chapter fails.
With ``--record HARDWARE`` the measurements go into ``vmonf_mini/budget_times.json`` (chapter ->
budget -> hardware -> record: status, seconds, date, commit, torch, load), the file the chapters'
headers read, and the table of ``book/timings.md`` is rewritten from it. A chapter stopped by
``--timeout`` is recorded as ``"stopped"`` (not run to its end), one that failed as ``"failed"``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import load_string, table, write_json  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BOOK = ROOT / "book"
TIMES = ROOT / "vmonf_mini" / "budget_times.json"
PAGE = BOOK / "timings.md"
TABLE_START = "<!-- the table below is written by `python bench/chapter_times.py --render` from vmonf_mini/budget_times.json -->"
TABLE_END = "<!-- end of the table -->"
BUDGETS = ("smoke", "default", "full")


def chapters(only: Optional[List[str]]) -> List[Path]:
    found = sorted(p for p in BOOK.glob("[0-9][0-9]_*.ipynb"))
    if only:
        found = [
            p for p in found if any(p.stem == o or p.stem.startswith(o) for o in only)
        ]
        if not found:
            raise SystemExit(f"no chapter matches {only} in {BOOK}")
    return found


def execute(
    path: Path, budget: str, timeout: int, keep: Optional[Path]
) -> Dict[str, object]:
    """Run one notebook; return seconds, status and, on failure, the error's last line."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import (
        CellExecutionError,
        CellTimeoutError,
        DeadKernelError,
    )

    nb = nbformat.read(path, as_version=4)
    saved = {k: os.environ.get(k) for k in ("VMONF_BUDGET", "MPLBACKEND")}
    os.environ["VMONF_BUDGET"] = budget  # the kernel inherits the environment
    if (
        budget == "smoke"
    ):  # as `make test` runs nbval; the other budgets draw inline figures, as the build does
        os.environ["MPLBACKEND"] = "Agg"
    else:
        os.environ.pop("MPLBACKEND", None)
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(BOOK)}},
    )
    start, status, error = time.perf_counter(), "ok", ""
    try:
        client.execute()
    except (CellExecutionError, CellTimeoutError, DeadKernelError, RuntimeError) as err:
        status = "STOPPED" if isinstance(err, CellTimeoutError) else "FAILED"
        error = next(
            (line for line in reversed(str(err).strip().splitlines()) if line.strip()),
            type(err).__name__,
        )
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    seconds = time.perf_counter() - start
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, keep / f"{path.stem}.{budget}.ipynb")
    return {
        "seconds": seconds,
        "status": status,
        "error": error[:200],
        "load": load_string(),
    }


# ------------------------------------------------------------------ the times file and the book's table
def load_times() -> Dict[str, object]:
    return json.loads(TIMES.read_text(encoding="utf-8"))


def save_times(times: Dict[str, object]) -> None:
    TIMES.write_text(
        json.dumps(times, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
    )


def record(
    times: Dict[str, object],
    results: Dict[str, Dict[str, Dict[str, object]]],
    hardware: str,
    name: Optional[str],
) -> None:
    """Put this run's results into ``times`` under ``hardware`` (named ``name`` when given)."""
    import torch

    entry = times.setdefault("hardware", {}).setdefault(hardware, {})
    if name:
        entry["name"] = name
    entry.setdefault("name", hardware)
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    today = datetime.datetime.now(datetime.timezone.utc).date().isoformat()
    for chapter, by_budget in results.items():
        for budget, r in by_budget.items():
            times.setdefault("chapters", {}).setdefault(chapter, {}).setdefault(
                budget, {}
            )[hardware] = {
                "status": {"ok": "ok", "FAILED": "failed", "STOPPED": "stopped"}[
                    str(r["status"])
                ],
                "seconds": round(float(r["seconds"]), 1),
                "date": today,
                "commit": commit,
                "torch": torch.__version__,
                "threads": os.environ.get("OMP_NUM_THREADS", "torch's default"),
                "load": r.get("load", load_string()),
                "how": "bench/chapter_times.py",
            }


def render_table(times: Dict[str, object]) -> str:
    """The book's table: one row per chapter, one column per budget and hardware."""
    sys.path.insert(0, str(ROOT))
    from vmonf_mini.runtime import describe_time

    hardware = times["hardware"]
    columns = [(b, h) for b in BUDGETS for h in hardware]
    rows = []
    for chapter, by_budget in times["chapters"].items():
        rows.append(
            [chapter] + [describe_time(by_budget.get(b, {}).get(h)) for b, h in columns]
        )
    lines = [
        table(["chapter"] + [f"{b}, {hardware[h]['name']}" for b, h in columns], rows),
        "",
    ]
    for key, info in hardware.items():
        records = [
            r
            for c in times["chapters"].values()
            for b in c.values()
            for k, r in b.items()
            if k == key and r
        ]
        when = sorted(
            {
                f"{r.get('date')} (commit {r.get('commit')}, torch {r.get('torch')})"
                for r in records
            }
        )
        lines.append(
            f"- **{info['name']}**: {info.get('detail', '')}"
            + (f". Measured {'; '.join(when)}." if when else ". Nothing measured yet.")
        )
    return "\n".join(lines)


def render_page(times: Dict[str, object]) -> None:
    page = PAGE.read_text(encoding="utf-8")
    head, rest = page.split(TABLE_START, 1)
    _, tail = rest.split(TABLE_END, 1)
    PAGE.write_text(
        f"{head}{TABLE_START}\n\n{render_table(times)}\n\n{TABLE_END}{tail}",
        encoding="utf-8",
    )


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--budget",
        choices=["smoke", "default", "full", "both"],
        default="both",
        help="both: smoke then default (default); full: the paper's settings",
    )
    parser.add_argument(
        "--only",
        action="append",
        help="a chapter's name or prefix, e.g. 06_pinwheel or 06 (repeatable)",
    )
    parser.add_argument(
        "--timeout",
        type=int,
        default=3600,
        help="seconds allowed per cell (default 3600)",
    )
    parser.add_argument(
        "--keep",
        type=Path,
        default=None,
        help="save the executed notebooks in this folder",
    )
    parser.add_argument(
        "--json", default=None, help="also write the numbers to this JSON file"
    )
    parser.add_argument(
        "--record",
        metavar="HARDWARE",
        default=None,
        help="record the times in vmonf_mini/budget_times.json under this hardware key (cpu-2, gpu, ...)",
    )
    parser.add_argument(
        "--hardware-name",
        default=None,
        help='with --record: how the table names it ("NVIDIA H200")',
    )
    parser.add_argument(
        "--render",
        action="store_true",
        help="only rewrite book/timings.md's table from the times file",
    )
    args = parser.parse_args(argv)
    if args.render:
        render_page(load_times())
        print(f"wrote the table of {PAGE.relative_to(ROOT)}")
        return 0
    budgets = ["smoke", "default"] if args.budget == "both" else [args.budget]
    paths = chapters(args.only)
    print(
        f"## Chapter execution times (load average {load_string()}, {os.cpu_count()} CPUs)\n",
        flush=True,
    )
    results: Dict[str, Dict[str, Dict[str, object]]] = {}
    for (
        budget
    ) in budgets:  # all chapters on the cheap budget first: failures show up early
        for path in paths:
            r = execute(path, budget, args.timeout, args.keep)
            results.setdefault(path.stem, {})[budget] = r
            note = f"  {r['error']}" if r["status"] != "ok" else ""
            print(
                f"  {budget:7s} {path.stem}: {r['seconds']:.1f} s {r['status']}{note}",
                flush=True,
            )
    rows = []
    for name, by_budget in results.items():
        row: List[object] = [name]
        for b in budgets:
            r = by_budget[b]
            row.append(
                f"{r['seconds']:.1f}"
                + ("" if r["status"] == "ok" else f" {r['status']}")
            )
        rows.append(row)
    rows.append(
        ["**total**"]
        + [
            f"{sum(float(results[n][b]['seconds']) for n in results):.1f}"
            for b in budgets
        ]
    )
    print()
    print(table(["chapter"] + [f"{b} (s)" for b in budgets], rows))
    print(f"\n(load average at the end {load_string()})")
    write_json(args.json, results)
    if args.record:
        times = load_times()
        record(times, results, args.record, args.hardware_name)
        save_times(times)
        render_page(times)
        print(
            f"recorded under {args.record!r} in {TIMES.relative_to(ROOT)}; rewrote {PAGE.relative_to(ROOT)}"
        )
    failed = [
        (n, b)
        for n, rb in results.items()
        for b, r in rb.items()
        if r["status"] != "ok"
    ]
    if failed:
        print("failed: " + ", ".join(f"{n} ({b})" for n, b in failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
