"""Seconds each chapter takes to execute, per budget.  (``make timings``)

Every ``book/NN_*.ipynb`` is executed with nbclient in a fresh ``python3`` kernel whose working
directory is ``book/`` (so relative paths resolve as in the build), with ``VMONF_BUDGET`` set to
the budget.  Nothing is written into ``book/``: the notebooks are executed in memory and, with
``--keep DIR``, the executed copies are saved in ``DIR``.

    python bench/chapter_times.py                          # smoke and default budgets
    python bench/chapter_times.py --budget smoke           # seconds
    python bench/chapter_times.py --budget default --only 06_pinwheel --only 07

Prints a Markdown table (seconds per chapter and the total); exits 1 when a chapter fails.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import load_string, table, write_json  # noqa: E402

BOOK = Path(__file__).resolve().parent.parent / "book"


def chapters(only: Optional[List[str]]) -> List[Path]:
    found = sorted(p for p in BOOK.glob("[0-9][0-9]_*.ipynb"))
    if only:
        found = [p for p in found if any(p.stem == o or p.stem.startswith(o) for o in only)]
        if not found:
            raise SystemExit(f"no chapter matches {only} in {BOOK}")
    return found


def execute(path: Path, budget: str, timeout: int, keep: Optional[Path]) -> Dict[str, object]:
    """Run one notebook; return seconds, status and, on failure, the error's last line."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    nb = nbformat.read(path, as_version=4)
    saved = {k: os.environ.get(k) for k in ("VMONF_BUDGET", "MPLBACKEND")}
    os.environ["VMONF_BUDGET"] = budget  # the kernel inherits the environment
    if budget == "smoke":  # as `make test` runs nbval; the other budgets draw inline figures, as the build does
        os.environ["MPLBACKEND"] = "Agg"
    else:
        os.environ.pop("MPLBACKEND", None)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(BOOK)}})
    start, status, error = time.perf_counter(), "ok", ""
    try:
        client.execute()
    except (CellExecutionError, CellTimeoutError, DeadKernelError, RuntimeError) as err:
        status = "FAILED"
        error = next((line for line in reversed(str(err).strip().splitlines()) if line.strip()), type(err).__name__)
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
    return {"seconds": seconds, "status": status, "error": error[:200]}


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", choices=["smoke", "default", "both"], default="both")
    parser.add_argument("--only", action="append", help="a chapter's name or prefix, e.g. 06_pinwheel or 06 (repeatable)")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds allowed per cell (default 3600)")
    parser.add_argument("--keep", type=Path, default=None, help="save the executed notebooks in this folder")
    parser.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    args = parser.parse_args(argv)
    budgets = ["smoke", "default"] if args.budget == "both" else [args.budget]
    paths = chapters(args.only)
    print(f"## Chapter execution times (load average {load_string()}, {os.cpu_count()} CPUs)\n", flush=True)
    results: Dict[str, Dict[str, Dict[str, object]]] = {}
    for budget in budgets:  # all chapters on the cheap budget first: failures show up early
        for path in paths:
            r = execute(path, budget, args.timeout, args.keep)
            results.setdefault(path.stem, {})[budget] = r
            note = f"  {r['error']}" if r["status"] != "ok" else ""
            print(f"  {budget:7s} {path.stem}: {r['seconds']:.1f} s {r['status']}{note}", flush=True)
    rows = []
    for name, by_budget in results.items():
        row: List[object] = [name]
        for b in budgets:
            r = by_budget[b]
            row.append(f"{r['seconds']:.1f}" + ("" if r["status"] == "ok" else " FAILED"))
        rows.append(row)
    rows.append(["**total**"] + [f"{sum(float(results[n][b]['seconds']) for n in results):.1f}" for b in budgets])
    print()
    print(table(["chapter"] + [f"{b} (s)" for b in budgets], rows))
    print(f"\n(load average at the end {load_string()})")
    write_json(args.json, results)
    failed = [(n, b) for n, rb in results.items() for b, r in rb.items() if r["status"] != "ok"]
    if failed:
        print("failed: " + ", ".join(f"{n} ({b})" for n, b in failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
