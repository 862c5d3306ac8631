"""Does `vmonf_mini.MixtureOfFlows` hold on the book's data sets with its default settings?

Over ``--seeds`` random states (default 10), the matched (Hungarian) accuracy of the estimator
with its defaults, beside scikit-learn's ``GaussianMixture`` (full covariances, ``n_init=10``)
on the same input:

* ``pinwheel``: ``vm.data.pinwheel()`` (2,560 points), ``MixtureOfFlows(5)`` (target 0.98 on every seed);
* ``two circles, 64 labels``: ``vm.data.two_circles()``, 32 labels per circle chosen by the seed
  (``vm.recipes.labeled_subset``), ``MixtureOfFlows(2).fit(x, labels)`` (target 0.99); the
  Gaussian mixture cannot use the labels;
* ``digits 0-4``: scikit-learn's 8x8 digits 0-4 (901 images),
  ``make_pipeline(PCA(10, whiten=True), MixtureOfFlows(5))`` (target 0.94); the Gaussian mixture
  on the same PCA.

Accuracy is measured on all points, the labeled ones included (64 of 1,024 for the circles).

With a handful of labels (issue 28; ``--few-seeds`` random states, default 5, labels drawn per
random state), rows from ``bench/few_labels.py``: two moons (``make_moons``, 1,000 points,
noise 0.05 and 0.1) and the two circles with 1 and 4 labels per class,
``MixtureOfFlows(2).fit(x, labels)`` on its defaults beside scikit-learn's
``LabelPropagation`` (``kernel="knn"``, ``n_neighbors=10``) on the same points and labels, the
estimator with ``label_graph=None`` (the earlier default), unsupervised, and with 32 labels
per class. Targets on every random state: accuracy at least 0.99 and at least
``LabelPropagation``'s (and ``LabelSpreading``'s); test log-likelihood per point no worse than
the 64-label run's by more than 0.1 nats.

    python bench/estimator.py                  # 10 seeds (5 with few labels), one process
    python bench/estimator.py --jobs 8         # seeds in parallel processes, one thread each
    python bench/estimator.py --set n_init=8   # estimator parameters other than the defaults
    python bench/estimator.py --only "moons 0.1, few labels"

Exits 1 when a target fails.
"""

from __future__ import annotations

import argparse
import ast
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import few_labels  # noqa: E402
from _common import load_string, table, verdict, write_json  # noqa: E402

TARGETS = {"two circles, 64 labels": 0.99, "digits 0-4": 0.94, "pinwheel": 0.98}
#: the rows with 1 and 4 labels per class: row name -> few_labels' data set
FEW_LABELS = {f"{name}, few labels": name for name in few_labels.DATA}


def _data(name: str, seed: int) -> Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
    import vmonf_mini as vm

    if name == "pinwheel":
        x, y = vm.data.pinwheel()
        return x.numpy(), y.numpy(), None
    if name == "two circles, 64 labels":
        x, y = vm.data.two_circles()
        return x.numpy(), y.numpy(), vm.recipes.labeled_subset(y, 32, seed=seed).numpy()
    x, y = vm.data.digits(range(5))
    return x.numpy(), y.numpy(), None


def run_one(
    name: str, seed: int, params: Dict[str, Any], device: str
) -> Dict[str, Any]:
    """One seed of one data set: the estimator's and the Gaussian mixture's matched accuracy
    (with few labels: every method and label count of ``few_labels.run_one``, in ``rows``)."""
    import torch

    if name in FEW_LABELS:
        start = time.perf_counter()
        rows = few_labels.run_one(FEW_LABELS[name], seed, device, params)
        seconds = time.perf_counter() - start
        return {"data": name, "seed": seed, "rows": rows, "seconds": seconds}

    torch.set_num_threads(1)
    from sklearn.decomposition import PCA
    from sklearn.mixture import GaussianMixture
    from sklearn.pipeline import make_pipeline

    from vmonf_mini import MixtureOfFlows
    from vmonf_mini.metrics import cluster_accuracy

    x, y, labels = _data(name, seed)
    k = len(np.unique(y))
    start = time.perf_counter()
    estimator = MixtureOfFlows(k, random_state=seed, device=device, **params)
    gmm = GaussianMixture(k, covariance_type="full", n_init=10, random_state=seed)
    if name == "digits 0-4":
        estimator = make_pipeline(PCA(10, whiten=True, random_state=0), estimator)
        gmm = make_pipeline(PCA(10, whiten=True, random_state=0), gmm)
    estimator.fit(x, labels)
    seconds = time.perf_counter() - start
    ours = cluster_accuracy(y, estimator.predict(x))
    theirs = cluster_accuracy(y, gmm.fit(x).predict(x))
    return {
        "data": name,
        "seed": seed,
        "acc": ours,
        "gmm_acc": theirs,
        "seconds": seconds,
    }


def few_summary(runs: List[Dict[str, Any]], names: List[str]) -> str:
    """One line per data set and label count: median and worst accuracy of the estimator, of
    LabelPropagation and of the earlier default; the estimator's test log-likelihood (mean over
    the random states) beside the unsupervised and the 64-label runs'."""
    rows = []
    for name in names:
        mine = [row for r in runs if r["data"] == name for row in r["rows"]]

        def of(method: str, per_class: int, key: str) -> List[float]:
            return [
                r[key]
                for r in mine
                if r["method"] == method and r["per_class"] == per_class
            ]

        for per_class in few_labels.FEW:
            acc = of("label graph", per_class, "acc")
            lp = of("LabelPropagation", per_class, "acc")
            old = of("previous", per_class, "acc")
            rows.append(
                [
                    FEW_LABELS[name],
                    2 * per_class,
                    f"{statistics.median(acc):.3f} ({min(acc):.3f})",
                    f"{statistics.median(lp):.3f} ({min(lp):.3f})",
                    f"{statistics.median(old):.3f} ({min(old):.3f})",
                    f"{np.mean(of('label graph', per_class, 'test_ll')):.3f}",
                    f"{np.mean(of('label graph', few_labels.REFERENCE, 'test_ll')):.3f}",
                    f"{np.mean(of('unsupervised', 0, 'test_ll')):.3f}",
                ]
            )
    return "\n" + table(
        [
            "data set",
            "labels",
            "MixtureOfFlows acc (worst)",
            "LabelPropagation",
            "label_graph=None",
            "test ll",
            "test ll, 64 labels",
            "test ll, unsupervised",
        ],
        rows,
    )


def _value(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--seeds", type=int, default=10, help="random states per data set (default 10)"
    )
    parser.add_argument(
        "--few-seeds",
        type=int,
        default=5,
        help="random states per data set with few labels (default 5)",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=[*TARGETS, *FEW_LABELS],
        help="run only this data set",
    )
    parser.add_argument(
        "--jobs", type=int, default=1, help="runs in parallel processes (default 1)"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an estimator parameter other than its default (repeatable)",
    )
    parser.add_argument(
        "--device", default="cpu", help="torch device of the estimator (default cpu)"
    )
    parser.add_argument(
        "--json", default=None, help="also write the numbers to this JSON file"
    )
    args = parser.parse_args(argv)
    params = dict(item.split("=", 1) for item in args.set)
    params = {key: _value(value) for key, value in params.items()}
    names = args.only or [*TARGETS, *FEW_LABELS]
    seeds = {
        name: args.few_seeds if name in FEW_LABELS else args.seeds for name in names
    }
    jobs = [(name, seed) for name in names for seed in range(seeds[name])]
    print(
        f"## MixtureOfFlows, {'defaults' if not params else params}: {args.seeds} seeds "
        f"({args.few_seeds} with few labels), {args.jobs} job(s), "
        f"load average {load_string()}\n",
        flush=True,
    )
    start = time.perf_counter()
    runs = []
    with ProcessPoolExecutor(max(1, args.jobs)) as pool:
        futures = [
            pool.submit(run_one, name, seed, params, args.device) for name, seed in jobs
        ]
        for future in as_completed(futures):
            r = future.result()
            runs.append(r)
            if "rows" in r:
                print(
                    f"  {r['data']} seed {r['seed']}: {r['seconds']:.0f} s", flush=True
                )
                continue
            print(
                f"  {r['data']} seed {r['seed']}: {r['acc']:.4f} (GaussianMixture {r['gmm_acc']:.4f}), "
                f"{r['seconds']:.0f} s",
                flush=True,
            )
    rows, targets = [], []
    for name in (n for n in names if n in TARGETS):
        mine = sorted((r for r in runs if r["data"] == name), key=lambda r: r["seed"])
        acc, gmm = [r["acc"] for r in mine], [r["gmm_acc"] for r in mine]
        rows.append(
            [
                name,
                f"{statistics.median(acc):.3f}",
                f"{min(acc):.3f}",
                f"{statistics.median(gmm):.3f}",
                f"{min(gmm):.3f}",
                f">= {TARGETS[name]}",
                f"{sum(a >= TARGETS[name] for a in acc)} / {len(acc)}",
                f"{statistics.median(r['seconds'] for r in mine):.0f}",
            ]
        )
        targets.append(
            verdict(
                f"{name}: every seed >= {TARGETS[name]}",
                min(acc) >= TARGETS[name],
                f"worst {min(acc):.4f}",
            )
        )
    print()
    if rows:
        print(
            table(
                [
                    "data set",
                    "MixtureOfFlows median",
                    "worst",
                    "GaussianMixture median",
                    "worst",
                    "target",
                    "seeds at target",
                    "s per fit",
                ],
                rows,
            )
        )
    few = [n for n in names if n in FEW_LABELS]
    if few:
        print("\n## With 1 and 4 labels per class (per random state)")
        targets += few_labels.report(
            [row for r in runs if "rows" in r for row in r["rows"]],
            [FEW_LABELS[n] for n in few],
            args.few_seeds,
        )
        print(few_summary(runs, few))
    print(
        f"\n(total {time.perf_counter() - start:.0f} s; load average at the end {load_string()})"
    )
    write_json(args.json, {"params": params, "runs": runs, "targets": targets})
    return 1 if any(not t["pass"] for t in targets) else 0


if __name__ == "__main__":
    sys.exit(main())
