"""Does training succeed for every seed?  (``make robustness``)

Four experiments of the book, each trained from scratch with ``--seeds`` different seeds
(default 10); a run counts as a success when its matched (Hungarian) accuracy reaches the
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
    python bench/robustness.py --only digits --seeds 5 --jobs 2

Exits 1 when a target fails (full runs).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
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
    fit: Dict[str, Any]  # fit arguments
    labels_per_class: int = 0  # > 0: semi-supervised with this many labels per class
    quick_epochs: Dict[str, int] = field(default_factory=dict)  # fit arguments overridden by --quick


def _pinwheel():
    import vmonf_mini as vm

    return tuple(vm.data.pinwheel())


def _circles():
    import vmonf_mini as vm

    return tuple(vm.data.two_circles())


def _digits():
    """Digits 0-4 on their top 10 principal directions, divided by one global standard deviation.

    Not whitened: whitening inflates the low-variance (noisy) directions, and k-means, which
    initialises the mixture, then finds 0.80-0.85 accuracy instead of 0.89.
    """
    import vmonf_mini as vm
    from sklearn.decomposition import PCA

    x, y = vm.data.digits()
    z = PCA(n_components=10, random_state=0).fit_transform(x.numpy())
    return torch.as_tensor(z / z.std(), dtype=torch.float32), y


EXPERIMENTS = {
    "pinwheel": Experiment(
        "pinwheel", 0.98, _pinwheel,
        model=dict(dim=2, k=5, flow="realnvp", blocks=8, hidden=8, encoder_hidden=(32, 32)),
        fit=dict(epochs=100, batch_size=512, lr=3e-3, init="kmeans"),
        quick_epochs=dict(epochs=30),
    ),
    # The paper's own settings (thesis: three-unit encoder, Adam 1e-3, batch 512, 400 epochs) with
    # one addition, a k-means initialisation whose 100 epochs run at 1e-2: at 1e-3 the three-unit
    # encoder learns the k-means partition too slowly (book chapter 6)
    "pinwheel, paper settings": Experiment(
        "pinwheel, paper settings", 0.98, _pinwheel,
        model=dict(dim=2, k=5, flow="realnvp", blocks=8, hidden=8, encoder_hidden=(3,)),
        fit=dict(epochs=400, batch_size=512, lr=1e-3, init="kmeans", init_epochs=100, init_lr=1e-2),
        quick_epochs=dict(epochs=30, init_epochs=30),
    ),
    "two circles": Experiment(
        "two circles", 0.99, _circles,
        model=dict(dim=2, k=2, flow="realnvp", blocks=10, hidden=8, encoder_hidden=(16, 16)),
        # 5 semi-supervised epochs: with 20, the ELBO on the unlabeled points lets the inner
        # circle's component spread onto the outer circle for some seeds (seed 8: 0.98)
        fit=dict(epochs=5, batch_size=128, lr=3e-3, pretrain_epochs=100),
        labels_per_class=32,
        quick_epochs=dict(epochs=2, pretrain_epochs=30),
    ),
    "digits": Experiment(
        "digits", 0.90, _digits,
        model=dict(dim=10, k=5, flow="realnvp", blocks=4, hidden=16, encoder_hidden=(32, 32)),
        fit=dict(epochs=60, batch_size=128, lr=1e-3, init="kmeans"),
        quick_epochs=dict(epochs=10),
    ),
}


def run_one(name: str, seed: int, quick: bool, threads: int) -> Dict[str, Any]:
    """Train one seed; never raises: a crash is reported in the result."""
    torch.set_num_threads(threads)
    import vmonf_mini as vm
    from vmonf_mini.metrics import cluster_accuracy

    exp = EXPERIMENTS[name]
    start = time.perf_counter()
    try:
        x, y = exp.data()
        labels = None
        if exp.labels_per_class:
            gen = torch.Generator().manual_seed(seed)
            labels = torch.full_like(y, -1)
            for c in torch.unique(y):
                where = (y == c).nonzero()[:, 0]
                chosen = where[torch.randperm(where.numel(), generator=gen)[: exp.labels_per_class]]
                labels[chosen] = y[chosen]
        vm.seed_everything(seed)
        model = vm.VMoNF(**exp.model)
        settings = {**exp.fit, **(exp.quick_epochs if quick else {})}
        history = vm.fit(model, x, labels, seed=seed, progress=False, **settings)
        with torch.no_grad():
            predicted = model.predict(x)
            finite = all(math.isfinite(v) for v in history.loss) and bool(torch.isfinite(model.log_prob(x)).all())
        accuracy = float(cluster_accuracy(y, predicted)) if finite else float("nan")
        return {"seed": seed, "ok": finite, "accuracy": accuracy, "seconds": time.perf_counter() - start,
                "error": "" if finite else "non-finite loss or log p(x)"}
    except Exception as err:  # noqa: BLE001 - a crash is a result here
        return {"seed": seed, "ok": False, "accuracy": float("nan"), "seconds": time.perf_counter() - start,
                "error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc(limit=3)}


def run_experiment(name: str, args: argparse.Namespace) -> Dict[str, Any]:
    exp = EXPERIMENTS[name]
    seeds = list(range(args.seeds))
    start = time.perf_counter()
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            runs = list(pool.map(run_one, [name] * len(seeds), seeds, [args.quick] * len(seeds),
                                 [args.threads_per_job] * len(seeds)))
    else:
        runs = [run_one(name, s, args.quick, args.threads_per_job) for s in seeds]
    wall = time.perf_counter() - start
    for r in runs:
        note = f"  ({r['error']})" if r["error"] else ""
        print(f"  {name} seed {r['seed']}: accuracy {r['accuracy']:.4f}, {r['seconds']:.1f} s{note}", flush=True)
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


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=None, help="seeds per experiment (default 10, quick 2)")
    parser.add_argument("--quick", action="store_true", help="2 seeds, shorter training, targets not enforced")
    parser.add_argument("--only", action="append", choices=list(EXPERIMENTS), help="run only this experiment")
    parser.add_argument("--jobs", type=int, default=1, help="seeds trained in parallel processes (default 1)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads per run (default: 1 with --jobs > 1, else torch's choice)")
    parser.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    args = parser.parse_args(argv)
    args.seeds = args.seeds or (2 if args.quick else 10)
    args.threads_per_job = args.threads or (1 if args.jobs > 1 else torch.get_num_threads())
    setup_threads(args.threads_per_job)
    print(f"## vmonf_mini robustness{' (quick)' if args.quick else ''}: {args.seeds} seeds per experiment, "
          f"{args.jobs} job(s) x {args.threads_per_job} thread(s), load average {load_string()}\n", flush=True)
    results: Dict[str, Any] = {}
    for name in args.only or list(EXPERIMENTS):
        results[name] = run_experiment(name, args)
    rows = [[name, r["runs"], r["failed"], r["min"], r["median"], r["max"], f">= {r['threshold']}",
             f"{r['above']} / {r['runs']}", r["seconds"]] for name, r in results.items()]
    print()
    print(table(["experiment", "runs", "crashed / non-finite", "acc min", "acc median", "acc max", "threshold",
                 "runs above", "wall s"], [[_acc(v) for v in row] for row in rows]))
    print(f"\n(total {sum(r['seconds'] for r in results.values()):.0f} s; load average at the end {load_string()})")
    print("\n### Targets")
    targets = []
    for name, r in results.items():
        targets.append(verdict(f"{name}: no crashed or non-finite run", r["failed"] == 0, f"{r['failed']} of {r['runs']}"))
        need = math.ceil(0.9 * r["runs"])
        targets.append(verdict(f"{name}: >= {need} of {r['runs']} runs reach {r['threshold']}", r["above"] >= need,
                               f"{r['above']} of {r['runs']}"))
    if args.quick:
        print("(--quick: targets not enforced)")
    write_json(args.json, {"results": results, "targets": targets, "quick": args.quick})
    return 1 if any(not t["pass"] for t in targets) and not args.quick else 0


def _acc(v: Any) -> Any:
    return f"{v:.4f}" if isinstance(v, float) and v <= 1.0 else v


if __name__ == "__main__":
    sys.exit(main())
