"""Does training succeed for every seed?  (``make robustness``)

Four experiments of the book, each trained from scratch with ``--seeds`` different seeds (default
10; all seeds of an experiment in one ``vm.fit_many`` call, each run exactly as ``vm.fit`` with its
seed); a run counts as a success when its matched (Hungarian) accuracy reaches the
experiment's threshold:

* ``pinwheel``: the paper's 2-D pinwheel, K=5, RealNVP 8 blocks of hidden 8, encoder (32, 32),
  Adam lr 3e-3, batch 512, k-means initialisation, 100 epochs (threshold 0.98);
* ``pinwheel, paper settings``: the paper's own model and training (encoder of one hidden layer
  of 3, Adam 1e-3, batch 512, 400 epochs), initialised by k-means for 100 epochs at Adam 1e-2
  (threshold 0.98);
* ``two circles``: semi-supervised, 64 labels (32 per circle), K=2, RealNVP 10 blocks of
  hidden 8, encoder (16, 16), batch 128, 100 epochs pre-trained on the labeled points, then 5
  semi-supervised epochs (threshold 0.99);
* ``digits``: scikit-learn's 8x8 digits 0-4 (901 images), PCA to 10 dimensions (scaled, not
  whitened), K=5, RealNVP 4 blocks of hidden 16, k-means initialisation, 60 epochs (threshold 0.90).

Reported per experiment: runs, crashed or non-finite runs (target 0), accuracy min / median /
max, runs at or above the threshold (target: at least 9 in 10) and wall time.

    python bench/robustness.py                 # 10 seeds (about 10 minutes on 2 quiet cores)
    python bench/robustness.py --quick         # 2 seeds, shorter training, targets not enforced
    python bench/robustness.py --only digits --seeds 5 --jobs 2   # one fit per seed, 2 processes

Two more parts (``--part``), about reliability rather than accuracy:

* ``faults``: a child process saves an 18 MB checkpoint (MAF, D=784; ``--heavy``: 145 MB) over an
  older one in a loop and is killed with SIGKILL at a random moment, ``--kills`` times (default 20). After each kill
  the target must load as the old or the new checkpoint, and after the next ``save`` into that
  folder no temporary file may remain (targets);
* ``load``: time and peak memory (a fresh process per figure; on Linux the peak resident memory
  during the call, ``VmHWM`` reset through ``/proc/self/clear_refs``, against the memory before) of ``log_prob`` and ``predict`` of 10^6 points under
  ``torch.no_grad()`` (pinwheel model: RealNVP 8 blocks hidden 8, K=5, encoder (32, 32),
  untrained: the cost does not depend on the weights) and of saving the 145 MB checkpoint;
  with ``--heavy`` also 10^7 points and ``fit`` for one epoch on 10^6 points.

    python bench/robustness.py --part faults --part load           # about 3 minutes
    python bench/robustness.py --part load --heavy                 # + 10^7 points and fit (minutes)

Exits 1 when a target fails (full runs).
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import random
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import load_string, setup_threads, table, verdict, write_json  # noqa: E402


@dataclass
class Experiment:
    name: str
    threshold: float
    data: Callable[[], Tuple[torch.Tensor, torch.Tensor]]
    model: Dict[str, Any]  # VMoNF arguments
    training: Dict[str, Any]  # vm.fit's training settings
    labels_per_class: int = 0  # > 0: semi-supervised with this many labels per class
    quick_epochs: Dict[str, int] = field(
        default_factory=dict
    )  # fit arguments overridden by --quick


def _experiment(recipe: Any, threshold: float, quick: Dict[str, int]) -> Experiment:
    """An experiment whose settings and data are those of a :mod:`vmonf_mini.recipes` recipe."""
    from vmonf_mini import recipes

    return Experiment(
        recipe.name,
        threshold,
        lambda: tuple(recipes.data_for(recipe)),
        model=dict(recipe.model),
        training=dict(recipe.training),
        labels_per_class=recipe.labels_per_class,
        quick_epochs=quick,
    )


def _experiments() -> Dict[str, Experiment]:
    """The settings live in ``vmonf_mini.recipes`` (one home for each number, shared with the book)."""
    from vmonf_mini import recipes

    return {
        e.name: e
        for e in (
            _experiment(recipes.pinwheel(), 0.98, dict(epochs=30)),
            _experiment(
                recipes.pinwheel_paper(), 0.98, dict(epochs=30, init_epochs=30)
            ),
            _experiment(
                recipes.two_circles(), 0.99, dict(epochs=2, pretrain_epochs=30)
            ),
            _experiment(recipes.digits(), 0.90, dict(epochs=10)),
        )
    }


EXPERIMENTS = _experiments()


def run_one(name: str, seed: int, quick: bool, threads: int) -> Dict[str, Any]:
    """Train one seed; never raises: a crash is reported in the result."""
    torch.set_num_threads(threads)
    import vmonf_mini as vm
    from vmonf_mini.metrics import cluster_accuracy

    exp = EXPERIMENTS[name]
    start = time.perf_counter()
    try:
        x, y = exp.data()
        labels = _labels(y, exp.labels_per_class, seed)
        vm.seed_everything(seed)
        model = vm.VMoNF(**exp.model)
        settings = {**exp.training, **(exp.quick_epochs if quick else {})}
        history = vm.fit(model, x, labels, seed=seed, progress=False, **settings)
        with torch.no_grad():
            predicted = model.predict(x)
            finite = all(math.isfinite(v) for v in history.loss) and bool(
                torch.isfinite(model.log_prob(x)).all()
            )
        accuracy = float(cluster_accuracy(y, predicted)) if finite else float("nan")
        return {
            "seed": seed,
            "ok": finite,
            "accuracy": accuracy,
            "seconds": time.perf_counter() - start,
            "error": "" if finite else "non-finite loss or log p(x)",
        }
    except Exception as err:  # noqa: BLE001 - a crash is a result here
        return {
            "seed": seed,
            "ok": False,
            "accuracy": float("nan"),
            "seconds": time.perf_counter() - start,
            "error": f"{type(err).__name__}: {err}",
            "traceback": traceback.format_exc(limit=3),
        }


def _labels(y: torch.Tensor, per_class: int, seed: int) -> Optional[torch.Tensor]:
    """``per_class`` labels of each class chosen by ``seed`` (-1 elsewhere), or None."""
    from vmonf_mini import recipes

    return recipes.labeled_subset(y, per_class, seed) if per_class else None


def run_together(
    name: str, seeds: List[int], quick: bool, threads: int
) -> List[Dict[str, Any]]:
    """Train every seed with one ``vm.fit_many`` call (each run exactly as ``fit`` with its seed).

    A crash or a non-finite loss stops the whole pass; then every seed is trained alone
    (:func:`run_one`), so that the result still says which seeds fail.
    """
    torch.set_num_threads(threads)
    import vmonf_mini as vm
    from vmonf_mini.metrics import cluster_accuracy

    exp = EXPERIMENTS[name]
    start = time.perf_counter()
    x, y = exp.data()
    models = []
    for seed in seeds:
        vm.seed_everything(seed)
        models.append(vm.VMoNF(**exp.model))
    settings = {**exp.training, **(exp.quick_epochs if quick else {})}
    labels = (
        [_labels(y, exp.labels_per_class, seed) for seed in seeds]
        if exp.labels_per_class
        else None
    )
    try:
        histories = vm.fit_many(
            models, x, labels, seeds=seeds, progress=False, **settings
        )
    except Exception as err:  # noqa: BLE001 - fall back to one run per seed to find the failing ones
        print(
            f"  {name}: fit_many stopped ({type(err).__name__}: {err}); training the seeds one by one",
            flush=True,
        )
        return [run_one(name, seed, quick, threads) for seed in seeds]
    seconds = (time.perf_counter() - start) / len(seeds)  # the pass's time, shared
    runs = []
    for seed, model, history in zip(seeds, models, histories):
        with torch.no_grad():
            finite = all(math.isfinite(v) for v in history.loss) and bool(
                torch.isfinite(model.log_prob(x)).all()
            )
            accuracy = (
                float(cluster_accuracy(y, model.predict(x))) if finite else float("nan")
            )
        runs.append(
            {
                "seed": seed,
                "ok": finite,
                "accuracy": accuracy,
                "seconds": seconds,
                "error": "" if finite else "non-finite loss or log p(x)",
            }
        )
    return runs


def run_experiment(name: str, args: argparse.Namespace) -> Dict[str, Any]:
    exp = EXPERIMENTS[name]
    seeds = list(range(args.seeds))
    start = time.perf_counter()
    if args.jobs == 0:
        runs = run_together(name, seeds, args.quick, args.threads_per_job)
    elif args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            runs = list(
                pool.map(
                    run_one,
                    [name] * len(seeds),
                    seeds,
                    [args.quick] * len(seeds),
                    [args.threads_per_job] * len(seeds),
                )
            )
    else:
        runs = [run_one(name, s, args.quick, args.threads_per_job) for s in seeds]
    wall = time.perf_counter() - start
    for r in runs:
        note = f"  ({r['error']})" if r["error"] else ""
        print(
            f"  {name} seed {r['seed']}: accuracy {r['accuracy']:.4f}, {r['seconds']:.1f} s{note}",
            flush=True,
        )
    accs = [r["accuracy"] for r in runs if r["ok"]]
    return {
        "runs": len(runs),
        "failed": sum(not r["ok"] for r in runs),
        "min": min(accs) if accs else float("nan"),
        "median": statistics.median(accs) if accs else float("nan"),
        "max": max(accs) if accs else float("nan"),
        "above": sum(a >= exp.threshold for a in accs),
        "threshold": exp.threshold,
        "seconds": wall,
        "per_run": runs,
    }


# ---------------------------------------------------------------- faults and load
#: The pinwheel configuration of the load figures.
PINWHEEL_MODEL = dict(
    dim=2, k=5, flow="realnvp", blocks=8, hidden=8, encoder_hidden=(32, 32)
)
#: MAF on MNIST's 784 dimensions, sized to a 145 MB checkpoint (MADE's masks are saved as well).
BIG_MODEL = dict(dim=784, k=5, flow="maf", blocks=5, hidden=512, encoder_hidden=(512,))
#: The fault table's checkpoint: the same architecture at hidden 64, 18 MB (``--heavy``: BIG_MODEL).
FAULT_MODEL = dict(BIG_MODEL, hidden=64, encoder_hidden=(64,))
LIGHT_FIGURES = [("log_prob", 10**6), ("predict", 10**6), ("save", 0)]
HEAVY_FIGURES = [("log_prob", 10**7), ("predict", 10**7), ("fit", 10**6)]


def _memory_mb(field: str) -> float:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of this process from /proc, MB; NaN where there is none."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 2**10
    except OSError:
        pass
    return float("nan")


def _start_measuring() -> float:
    """Reset the peak (Linux: ``clear_refs`` 5) and return the resident memory now, MB."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass  # elsewhere the peak is the whole process's (``ru_maxrss``)
    return _memory_mb("VmRSS")


def _peak_mb() -> float:
    """The peak resident memory since :func:`_start_measuring` (else since the process started), MB."""
    peak = _memory_mb("VmHWM")
    if peak == peak:
        return peak
    maxrss = resource.getrusage(
        resource.RUSAGE_SELF
    ).ru_maxrss  # KB on Linux, bytes on macOS
    return maxrss / 2**20 if sys.platform == "darwin" else maxrss / 2**10


def _child_env() -> Dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _figure(name: str, n: int) -> Dict[str, float]:
    """One load figure, measured in this (fresh) process."""
    torch.set_num_threads(1)
    import vmonf_mini as vm

    torch.manual_seed(0)
    if name == "save":
        model = vm.VMoNF(**BIG_MODEL).eval()
        folder = Path(tempfile.mkdtemp(prefix="vmonf-bench-"))
        try:
            before, start = _start_measuring(), time.perf_counter()
            model.save(folder / "big.pt")
            seconds, size = (
                time.perf_counter() - start,
                (folder / "big.pt").stat().st_size,
            )
        finally:
            shutil.rmtree(folder)
        return {
            "seconds": seconds,
            "before_mb": before,
            "peak_mb": _peak_mb(),
            "file_mb": size / 1e6,
        }
    model = vm.VMoNF(**PINWHEEL_MODEL).eval()
    x = torch.randn(n, 2)  # the cost does not depend on where the points lie
    before, start = _start_measuring(), time.perf_counter()
    if name == "fit":
        vm.fit(model, x, epochs=1, batch_size=512, lr=3e-3, seed=0, progress=False)
    else:
        with torch.no_grad():
            getattr(model, name)(x)
    return {
        "seconds": time.perf_counter() - start,
        "before_mb": before,
        "peak_mb": _peak_mb(),
    }


def load_figures(heavy: bool) -> List[Dict[str, Any]]:
    """Every figure in a fresh process, one after the other."""
    rows = []
    for name, n in LIGHT_FIGURES + (HEAVY_FIGURES if heavy else []):
        out = subprocess.run(
            [sys.executable, __file__, "--child", "figure", name, str(n)],
            env=_child_env(),
            capture_output=True,
            text=True,
            check=True,
        )
        rows.append(
            {"figure": name, "n": n, **json.loads(out.stdout.strip().splitlines()[-1])}
        )
        print(f"  {name} n={n:,}: {rows[-1]}", flush=True)
    return rows


def _save_forever(model: torch.nn.Module, path: Path) -> None:
    """The fault child (forked, so it starts at once): save ``model`` over ``path`` until killed."""
    while True:
        model.save(path)


def _temporaries(folder: Path) -> List[Path]:
    return [p for p in folder.iterdir() if ".vmonf-tmp-" in p.name]


def fault_table(
    kills: int, config: Dict[str, Any], seed: int = 0
) -> List[Dict[str, Any]]:
    """SIGKILL a process saving over an existing checkpoint ``kills`` times.

    Each kill comes ``U(0, 2 t)`` seconds after the child started, ``t`` the time of one save
    measured here: about half the kills land in its first save (the target must still be the
    old checkpoint), the others in a later one (by then the new checkpoint).
    """
    import vmonf_mini as vm

    folder = Path(tempfile.mkdtemp(prefix="vmonf-faults-"))
    path, rng, rows = folder / "big.pt", random.Random(seed), []
    try:
        torch.manual_seed(0)
        old = vm.VMoNF(**config).eval()
        torch.manual_seed(1)
        new = vm.VMoNF(**config).eval()
        fingerprints = {
            name: m.state_dict()["encoder.0.weight"][0, :16].clone()
            for name, m in (("old", old), ("new", new))
        }
        fork = multiprocessing.get_context(
            "fork"
        )  # POSIX: the child inherits the model, no start-up
        start = time.perf_counter()
        old.save(path)
        one_save = time.perf_counter() - start
        for kill in range(1, kills + 1):
            child = fork.Process(target=_save_forever, args=(new, path), daemon=True)
            child.start()
            delay = rng.uniform(0.0, 2 * one_save)
            time.sleep(delay)
            os.kill(child.pid, signal.SIGKILL)
            child.join()
            left = _temporaries(folder)
            left_mb = sum(p.stat().st_size for p in left) / 1e6
            try:
                found = vm.VMoNF.load(path).state_dict()["encoder.0.weight"][0, :16]
                target = next(
                    (k for k, v in fingerprints.items() if torch.equal(found, v)),
                    "other",
                )
            except Exception as err:  # noqa: BLE001 - an unreadable target is a result here
                target = f"unreadable ({type(err).__name__})"
            old.save(path)  # the next save: removes what the killed one left
            rows.append(
                {
                    "kill": kill,
                    "after_s": delay,
                    "target": target,
                    "temp_files_after_kill": len(left),
                    "temp_mb_after_kill": left_mb,
                    "checkpoint_mb": path.stat().st_size / 1e6,
                    "temp_files_after_next_save": len(_temporaries(folder)),
                }
            )
            print(f"  kill {kill}: {rows[-1]}", flush=True)
    finally:
        shutil.rmtree(folder)
    return rows


def run_faults_and_load(args: argparse.Namespace) -> List[Dict[str, Any]]:
    """The ``faults`` and ``load`` parts: print their tables, return their targets."""
    targets: List[Dict[str, Any]] = []
    if "faults" in args.part:
        config = BIG_MODEL if args.heavy else FAULT_MODEL
        print(
            f"### Faults: SIGKILL during save, {args.kills} times (VMoNF({config}))\n",
            flush=True,
        )
        rows = fault_table(args.kills, config)
        print(
            table(
                [
                    "kill",
                    "killed after s",
                    "target loads as",
                    "temp files after kill",
                    "their MB",
                    "temp files after next save",
                ],
                [
                    [
                        r["kill"],
                        r["after_s"],
                        r["target"],
                        r["temp_files_after_kill"],
                        r["temp_mb_after_kill"],
                        r["temp_files_after_next_save"],
                    ]
                    for r in rows
                ],
            )
        )
        whole = sum(r["target"] in ("old", "new") for r in rows)
        print(
            f"\n(old {sum(r['target'] == 'old' for r in rows)}, new {sum(r['target'] == 'new' for r in rows)}, "
            f"killed mid-save with a temporary file left {sum(r['temp_files_after_kill'] > 0 for r in rows)}; "
            f"checkpoint {rows[-1]['checkpoint_mb']:.0f} MB)"
        )
        targets.append(
            verdict(
                "faults: the target is the old or the new checkpoint",
                whole == len(rows),
                f"{whole} of {len(rows)}",
            )
        )
        left = sum(r["temp_files_after_next_save"] for r in rows)
        targets.append(
            verdict(
                "faults: no temporary file after the next save",
                left == 0,
                f"{left} left",
            )
        )
    if "load" in args.part:
        print(
            f"\n### Load: one fresh process per figure, 1 thread, load average {load_string()}\n",
            flush=True,
        )
        rows = load_figures(args.heavy)
        print(
            table(
                [
                    "figure",
                    "points",
                    "seconds",
                    "RSS before MB",
                    "peak during MB",
                    "growth MB",
                    "file MB",
                ],
                [
                    [
                        r["figure"],
                        f"{r['n']:,}" if r["n"] else "-",
                        r["seconds"],
                        r["before_mb"],
                        r["peak_mb"],
                        r["peak_mb"] - r["before_mb"],
                        r.get("file_mb", float("nan")),
                    ]
                    for r in rows
                ],
            )
        )
    return targets


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--seeds",
        type=int,
        default=None,
        help="seeds per experiment (default 10, quick 2)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="2 seeds, shorter training, targets not enforced",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=list(EXPERIMENTS),
        help="run only this experiment",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=0,
        help="0 (default): all seeds of an experiment trained together by vm.fit_many; "
        "N >= 1: one vm.fit per seed, in N parallel processes",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads per run (default: 1 with --jobs > 1, else torch's choice)",
    )
    parser.add_argument(
        "--json", default=None, help="also write the numbers to this JSON file"
    )
    parser.add_argument(
        "--part",
        action="append",
        choices=["seeds", "faults", "load"],
        help="what to run (repeatable; default: seeds, the training experiments)",
    )
    parser.add_argument(
        "--kills",
        type=int,
        default=20,
        help="faults: SIGKILLs during save (default 20)",
    )
    parser.add_argument(
        "--heavy",
        action="store_true",
        help="load: add 10^7 points and fit on 10^6 (minutes)",
    )
    parser.add_argument(
        "--child", nargs=3, help=argparse.SUPPRESS
    )  # internal: "figure NAME N", one load figure
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_figure(args.child[1], int(args.child[2]))))
        return 0
    args.part = args.part or ["seeds"]
    if "seeds" not in args.part:
        setup_threads(1)
        print(
            f"## vmonf_mini robustness: {', '.join(args.part)}, torch {torch.__version__}, {os.cpu_count()} CPUs, "
            f"load average {load_string()}\n",
            flush=True,
        )
        targets = run_faults_and_load(args)
        write_json(args.json, {"targets": targets})
        return 1 if any(not t["pass"] for t in targets) else 0
    args.seeds = args.seeds or (2 if args.quick else 10)
    args.threads_per_job = args.threads or (
        1 if args.jobs > 1 else torch.get_num_threads()
    )
    setup_threads(args.threads_per_job)
    print(
        f"## vmonf_mini robustness{' (quick)' if args.quick else ''}: {args.seeds} seeds per experiment, "
        f"{args.jobs} job(s) x {args.threads_per_job} thread(s), load average {load_string()}\n",
        flush=True,
    )
    results: Dict[str, Any] = {}
    for name in args.only or list(EXPERIMENTS):
        results[name] = run_experiment(name, args)
    rows = [
        [
            name,
            r["runs"],
            r["failed"],
            r["min"],
            r["median"],
            r["max"],
            f">= {r['threshold']}",
            f"{r['above']} / {r['runs']}",
            r["seconds"],
        ]
        for name, r in results.items()
    ]
    print()
    print(
        table(
            [
                "experiment",
                "runs",
                "crashed / non-finite",
                "acc min",
                "acc median",
                "acc max",
                "threshold",
                "runs above",
                "wall s",
            ],
            [[_acc(v) for v in row] for row in rows],
        )
    )
    print(
        f"\n(total {sum(r['seconds'] for r in results.values()):.0f} s; load average at the end {load_string()})"
    )
    print("\n### Targets")
    targets = []
    for name, r in results.items():
        targets.append(
            verdict(
                f"{name}: no crashed or non-finite run",
                r["failed"] == 0,
                f"{r['failed']} of {r['runs']}",
            )
        )
        need = math.ceil(0.9 * r["runs"])
        targets.append(
            verdict(
                f"{name}: >= {need} of {r['runs']} runs reach {r['threshold']}",
                r["above"] >= need,
                f"{r['above']} of {r['runs']}",
            )
        )
    if args.quick:
        print("(--quick: targets not enforced)")
    seeds_failed = any(not t["pass"] for t in targets) and not args.quick
    more = run_faults_and_load(args)  # --part faults / load next to the seeds
    write_json(
        args.json, {"results": results, "targets": targets + more, "quick": args.quick}
    )
    return 1 if seeds_failed or any(not t["pass"] for t in more) else 0


def _acc(v: Any) -> Any:
    return f"{v:.4f}" if isinstance(v, float) and v <= 1.0 else v


if __name__ == "__main__":
    sys.exit(main())
