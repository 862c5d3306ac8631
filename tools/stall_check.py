"""Execute every chapter several times in a row, as ``make book`` does, and report stalls.

Each round executes all chapters in parallel exactly as ``tools/execute_chapters.py`` does (the
same worker pool, order, kernels, clients and cell timeout), without reading or writing the
Jupyter cache. A cell's usual time is its median over the rounds; the check prints, per round,
the longest time a cell took beyond its usual time, and fails (exit 1) when a cell waited more
than ``--limit`` seconds beyond it, or a chapter failed.

    VMONF_BUDGET=default python tools/stall_check.py --rounds 3
    VMONF_BUDGET=smoke python tools/stall_check.py --rounds 20

Also printed: the replies that only a wait's end-of-slice check found ("late replies", see
``execute_chapters.py``) and the stall reports written to ``_build/stall-reports/``. All times
go to ``_build/stall-check-<budget>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent))
import execute_chapters as ec  # noqa: E402
import stall_watch  # noqa: E402


def one_round(budget: str, jobs: int, timeout: int) -> Dict[str, Any]:
    """All chapters once, in parallel; chapter -> {seconds, error, cells, late}."""
    results: Dict[str, Any] = {}
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        futures = {
            pool.submit(ec.run_one, str(p), timeout, budget): p.stem
            for p in ec.chapter_paths()
        }
        for future in as_completed(futures):
            name = futures[future]
            try:
                _, _, seconds, error, facts = future.result()
            except Exception as err:  # a broken worker counts as a failed chapter
                seconds, error, facts = 0.0, repr(err), {}
            results[name] = dict(
                seconds=seconds,
                error=error,
                late=facts.get("late", 0),
                **{
                    key: {str(k): v for k, v in facts.get(key, {}).items()}
                    for key in ("cells", "cpu", "idle")
                },
            )
            if error is None:
                stall_watch.save_times(budget, name, facts.get("cells", {}))
            print(
                f"    {name}: {seconds:.0f} s"
                + (f", FAILED: {error}" if error else "")
                + (f", late replies {facts['late']}" if facts.get("late") else ""),
                flush=True,
            )
    return results


def beyond_usual(
    rounds: List[Dict[str, Any]],
) -> List[Tuple[float, Optional[str], Optional[str]]]:
    """Per round: (longest time of a cell beyond its usual time, chapter, cell)."""
    times: Dict[Tuple[str, str], List[float]] = {}
    for r in rounds:
        for chapter, res in r["chapters"].items():
            for cell, seconds in res["cells"].items():
                times.setdefault((chapter, cell), []).append(seconds)
    usual = {key: statistics.median(v) for key, v in times.items()}
    worst = []
    for r in rounds:
        best: Tuple[float, Optional[str], Optional[str]] = (0.0, None, None)
        for chapter, res in r["chapters"].items():
            for cell, seconds in res["cells"].items():
                extra = seconds - usual[(chapter, cell)]
                if extra > best[0]:
                    best = (extra, chapter, cell)
        worst.append(best)
    return worst


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--limit", type=float, default=60.0, help="seconds beyond a cell's usual time"
    )
    args = parser.parse_args(argv)
    budget = os.environ.setdefault("VMONF_BUDGET", "default")
    timeout = min(ec.timeout_from_config(), ec.PRE_TIMEOUT)
    out = ec.ROOT / "_build" / f"stall-check-{budget}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    reports_before = set(stall_watch.REPORTS.glob("*-cell*.log"))
    rounds: List[Dict[str, Any]] = []
    for i in range(args.rounds):
        print(f"round {i + 1} of {args.rounds} ({budget!r} budget):", flush=True)
        start = time.perf_counter()
        chapters = one_round(budget, max(1, args.jobs), timeout)
        rounds.append(
            dict(
                wall=time.perf_counter() - start,
                date=time.strftime("%Y-%m-%d %H:%M:%S"),
                chapters=chapters,
            )
        )
        out.write_text(json.dumps(rounds, indent=1))
        print(f"  round {i + 1}: {rounds[-1]['wall']:.0f} s", flush=True)
    worst = beyond_usual(rounds)
    failed = sum(
        1 for r in rounds for res in r["chapters"].values() if res["error"] is not None
    )
    late = sum(res["late"] for r in rounds for res in r["chapters"].values())
    reports = sorted(set(stall_watch.REPORTS.glob("*-cell*.log")) - reports_before)
    print(
        f"\n{budget!r} budget, {len(rounds)} rounds; a cell's usual time is its median "
        "over the rounds"
    )
    print(
        "round  wall time  longest time beyond usual (chapter, cell: its time, kernel CPU)"
        "  longest kernel sleep in an unanswered cell"
    )
    for i, (r, (extra, chapter, cell)) in enumerate(zip(rounds, worst), 1):
        where = "-"
        if chapter:
            res = r["chapters"][chapter]
            cpu = res.get("cpu", {}).get(cell)
            where = f"{chapter}, cell {cell}: {res['cells'][cell]:.1f} s" + (
                f", CPU {cpu:.1f} s" if cpu is not None else ""
            )
        sleeps = [
            (v, ch, c)
            for ch, res in r["chapters"].items()
            for c, v in res.get("idle", {}).items()
        ]
        sleep, sch, sc = max(sleeps, default=(0.0, None, None))
        print(
            f"{i:5d}  {r['wall']:7.0f} s  {extra:6.1f} s ({where})"
            f"  {sleep:.0f} s" + (f" ({sch}, cell {sc})" if sch else "")
        )
    longest = max((w[0] for w in worst), default=0.0)
    print(
        f"longest time beyond usual: {longest:.1f} s (limit {args.limit:.0f} s); "
        f"failed chapters: {failed}; late replies: {late}; stall reports: {len(reports)}"
    )
    for path in reports:
        print(f"  {path.relative_to(ec.ROOT)}")
    print(f"times: {out.relative_to(ec.ROOT)}")
    return 1 if failed or longest > args.limit else 0


if __name__ == "__main__":
    sys.exit(main())
