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

Accuracy is measured on all points, the labeled ones included (64 of 1,088 for the circles).

    python bench/estimator.py                  # 10 seeds, one process
    python bench/estimator.py --jobs 8         # seeds in parallel processes, one thread each
    python bench/estimator.py --set n_init=8   # estimator parameters other than the defaults

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
from _common import load_string, table, verdict, write_json  # noqa: E402

TARGETS = {"two circles, 64 labels": 0.99, "digits 0-4": 0.94, "pinwheel": 0.98}


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
    """One seed of one data set: the estimator's and the Gaussian mixture's matched accuracy."""
    import torch

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
        "--only", action="append", choices=list(TARGETS), help="run only this data set"
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
    names = args.only or list(TARGETS)
    jobs = [(name, seed) for name in names for seed in range(args.seeds)]
    print(
        f"## MixtureOfFlows, {'defaults' if not params else params}: {args.seeds} seeds, {args.jobs} job(s), "
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
            print(
                f"  {r['data']} seed {r['seed']}: {r['acc']:.4f} (GaussianMixture {r['gmm_acc']:.4f}), "
                f"{r['seconds']:.0f} s",
                flush=True,
            )
    rows, targets = [], []
    for name in names:
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
    print(
        f"\n(total {time.perf_counter() - start:.0f} s; load average at the end {load_string()})"
    )
    write_json(args.json, {"params": params, "runs": runs, "targets": targets})
    return 1 if any(not t["pass"] for t in targets) else 0


if __name__ == "__main__":
    sys.exit(main())
