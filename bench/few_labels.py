"""Semi-supervised with a handful of labels: is `MixtureOfFlows` as reliable as label propagation?

Issue 28's targets, remeasured per seed. Data: two moons (scikit-learn's ``make_moons``, 1,000
points, noise 0.05 and 0.1, ``random_state=0``; the test set ``random_state=1``) and the book's
two circles (``vm.data.two_circles()``, 1,024 points; the test set ``seed=1``). For every
seed, ``vm.recipes.labeled_subset(y, n, seed)`` labels ``n`` points per class (1 and 4, and 32
for the 64-label reference), and the runs use the package defaults:

* ``label graph``: ``MixtureOfFlows(2, random_state=seed).fit(x, labels)`` (its default with
  labels, ``label_graph=10``: labels propagated along a 10-nearest-neighbour graph, then kept
  as the encoder's targets through the ELBO phase);
* ``previous``: the same with ``label_graph=None`` (the earlier default: a ``LabelSpreading``
  head start, the paper's semi-supervised objective for 10 epochs);
* ``unsupervised``: ``MixtureOfFlows(2, random_state=seed).fit(x)`` (matched accuracy);
* ``LabelPropagation`` and ``LabelSpreading`` (scikit-learn, ``kernel="knn"``,
  ``n_neighbors=10``, their other defaults) on the same points and labels.

Accuracy is measured on all training points, the labeled ones included; the log-likelihood is
the mean exact ``log p(x)`` per point of the test set (``score``), in the data's units.

Targets (1 and 4 labels per class, every seed): accuracy >= 0.99; no seed below
LabelPropagation or LabelSpreading; test log-likelihood no worse than the same seed's 64-label
run (``label graph``, 32 per class) by more than 0.1 nats.

    python bench/few_labels.py                  # 5 seeds
    python bench/few_labels.py --jobs 2         # seeds in parallel processes
    python bench/few_labels.py --only "moons 0.1" --seeds 2

Exits 1 when a target fails.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import load_string, table, verdict, write_json  # noqa: E402

DATA = ["moons 0.05", "moons 0.1", "two circles"]
FEW = [1, 4]  # labels per class
REFERENCE = 32  # labels per class of the 64-label run
ACCURACY, LOG_LIK = 0.99, 0.1


def data(name: str) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Training points, their classes, and the test points."""
    import vmonf_mini as vm

    if name.startswith("moons"):
        from sklearn.datasets import make_moons

        noise = float(name.split()[1])
        x, y = make_moons(1000, noise=noise, random_state=0)
        x_test, _ = make_moons(1000, noise=noise, random_state=1)
        return x, y, x_test
    x, y = vm.data.two_circles()
    x_test, _ = vm.data.two_circles(seed=1)
    return x.numpy().astype(np.float64), y.numpy(), x_test.numpy().astype(np.float64)


def run_one(
    name: str, seed: int, device: str, params: Optional[Dict[str, Any]] = None
) -> List[Dict[str, Any]]:
    """Every method on one data set and seed; one row per (method, labels per class).

    ``params``: estimator parameters other than the defaults (``bench/estimator.py --set``),
    given to the unsupervised and ``label graph`` runs; ``previous`` overrides
    ``label_graph=None``."""
    params = dict(params or {})
    import torch

    torch.set_num_threads(1)
    from sklearn.semi_supervised import LabelPropagation, LabelSpreading

    import vmonf_mini as vm
    from vmonf_mini.metrics import cluster_accuracy

    x, y, x_test = data(name)
    rows = []

    def row(method: str, per_class: int, accuracy: float, **more: Any) -> None:
        rows.append(
            dict(
                data=name,
                seed=seed,
                method=method,
                per_class=per_class,
                acc=float(accuracy),
                **more,
            )
        )

    start = time.perf_counter()
    est = vm.MixtureOfFlows(2, random_state=seed, device=device, **params).fit(x)
    row(
        "unsupervised",
        0,
        cluster_accuracy(y, est.predict(x)),
        test_ll=est.score(x_test),
        seconds=time.perf_counter() - start,
    )
    for per_class in [*FEW, REFERENCE]:
        labels = vm.recipes.labeled_subset(y, per_class, seed=seed).numpy()
        for method, graph in [("label graph", True), ("previous", False)]:
            start = time.perf_counter()
            chosen = dict(params) if graph else dict(params, label_graph=None)
            est = vm.MixtureOfFlows(2, random_state=seed, device=device, **chosen)
            est.fit(x, labels)
            row(
                method,
                per_class,
                (est.predict(x) == y).mean(),
                test_ll=est.score(x_test),
                seconds=time.perf_counter() - start,
            )
        for method, cls in [
            ("LabelPropagation", LabelPropagation),
            ("LabelSpreading", LabelSpreading),
        ]:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fitted = cls(kernel="knn", n_neighbors=10).fit(x, labels)
            row(method, per_class, (fitted.transduction_ == y).mean())
    return rows


def report(
    runs: List[Dict[str, Any]], names: List[str], seeds: int
) -> List[Dict[str, Any]]:
    """Print the per-seed table of each data set (``runs``: the rows of :func:`run_one`) and
    the verdict of every target; returns the verdicts."""

    def pick(name: str, seed: int, method: str, per_class: int) -> Dict[str, Any]:
        (hit,) = [
            r
            for r in runs
            if (r["data"], r["seed"], r["method"], r["per_class"])
            == (name, seed, method, per_class)
        ]
        return hit

    targets = []
    for name in names:
        rows = []
        for per_class in [*FEW, REFERENCE]:
            for seed in range(seeds):
                ours = pick(name, seed, "label graph", per_class)
                old = pick(name, seed, "previous", per_class)
                lp = pick(name, seed, "LabelPropagation", per_class)["acc"]
                ls = pick(name, seed, "LabelSpreading", per_class)["acc"]
                unsup = pick(name, seed, "unsupervised", 0)
                ref = pick(name, seed, "label graph", REFERENCE)["test_ll"]
                rows.append(
                    [
                        2 * per_class,
                        seed,
                        f"{ours['acc']:.3f}",
                        f"{old['acc']:.3f}",
                        f"{lp:.3f}",
                        f"{ls:.3f}",
                        f"{unsup['acc']:.3f}",
                        f"{ours['test_ll']:.3f}",
                        f"{old['test_ll']:.3f}",
                        f"{unsup['test_ll']:.3f}",
                        f"{ours['seconds']:.0f}",
                    ]
                )
                if per_class in FEW:
                    where = f"{name}, {2 * per_class} labels, seed {seed}"
                    targets.append(
                        verdict(
                            f"{where}: accuracy >= {ACCURACY} and >= LP, LS",
                            ours["acc"] >= max(ACCURACY, lp, ls),
                            f"{ours['acc']:.4f} (LP {lp:.4f}, LS {ls:.4f})",
                        )
                    )
                    targets.append(
                        verdict(
                            f"{where}: test log-lik. >= 64-label run - {LOG_LIK}",
                            ours["test_ll"] >= ref - LOG_LIK,
                            f"{ours['test_ll']:.3f} (64 labels {ref:.3f})",
                        )
                    )
        print(f"\n### {name}\n")
        print(
            table(
                [
                    "labels",
                    "seed",
                    "acc, label graph",
                    "acc, previous",
                    "LabelPropagation",
                    "LabelSpreading",
                    "acc, unsupervised",
                    "test ll, label graph",
                    "test ll, previous",
                    "test ll, unsupervised",
                    "s per fit",
                ],
                rows,
            )
        )
    return targets


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5, help="seeds (default 5)")
    parser.add_argument("--only", action="append", choices=DATA, help="one data set")
    parser.add_argument("--jobs", type=int, default=1, help="parallel processes")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--json", default=None, help="also write the numbers here")
    args = parser.parse_args(argv)
    names = args.only or DATA
    print(
        f"## Few labels: {args.seeds} seeds, {args.jobs} job(s), load average "
        f"{load_string()}\n",
        flush=True,
    )
    start = time.perf_counter()
    runs: List[Dict[str, Any]] = []
    with ProcessPoolExecutor(max(1, args.jobs)) as pool:
        futures = [
            pool.submit(run_one, name, seed, args.device)
            for name in names
            for seed in range(args.seeds)
        ]
        for future in as_completed(futures):
            rows = future.result()
            runs += rows
            r = rows[0]
            print(f"  {r['data']} seed {r['seed']} done", flush=True)

    targets = report(runs, names, args.seeds)
    failed = [t for t in targets if not t["pass"]]
    print(
        f"\n{len(targets) - len(failed)} of {len(targets)} targets pass "
        f"(total {time.perf_counter() - start:.0f} s; load average {load_string()})"
    )
    write_json(args.json, {"runs": runs, "targets": targets})
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
