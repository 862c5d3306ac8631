"""Record what no CPU build affords: the paper's MNIST model at the ``full`` budget (``make record``).

Runs chapter 8's own code (:func:`vmonf_mini.experiments.paper_mnist`) on the budget's
configuration, one run per seed trained together, and writes ``mnist_paper.json`` and
``mnist_paper.npz`` (Figure 3's samples) into ``--out`` with the run's provenance.  On a GPU the
full budget takes minutes; on 2 CPU cores about an hour per seed.

    python tools/record.py                          # full budget, into book/recorded/
    python tools/record.py --budget smoke --out /tmp/records   # seconds: what the tests run
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path
from typing import List, Optional

import numpy as np
import torch

import vmonf_mini as vm
from vmonf_mini.experiments import PAPER_MNIST, paper_mnist
from vmonf_mini.records import write_record

ROOT = Path(__file__).resolve().parent.parent


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", choices=list(PAPER_MNIST), default="full")
    parser.add_argument("--out", default=str(ROOT / "book" / "recorded"))
    parser.add_argument(
        "--device", default=None, help="default: the GPU when there is one"
    )
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args(argv)
    config = PAPER_MNIST[args.budget]
    device = torch.device(args.device) if args.device else vm.default_device()
    x_train, y_train = vm.data.mnist(digits=range(5), split="train")
    x_test, y_test = vm.data.mnist(digits=range(5), split="test")
    print(
        f"recording the paper's MNIST model, budget {args.budget}, on {device}: {config}",
        flush=True,
    )
    tic = time.perf_counter()
    result = paper_mnist(
        config, x_train, y_train, x_test, y_test, device=device, progress=args.progress
    )
    wall = time.perf_counter() - tic
    command = "python tools/record.py " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])
    )
    path = write_record(
        args.out,
        "mnist_paper",
        {"runs": result.runs, "budget": args.budget},
        config.as_dict(),
        {"samples": np.round(result.samples * 255).astype(np.uint8)},
        command=command.strip(),
        seeds=config.seeds,
        wall_seconds=wall,
        device=device,
    )
    for run in result.runs:
        print(
            f"seed {run['seed']}: {run['steps']} steps, train acc {run['acc']:.3f} nmi {run['nmi']:.3f} "
            f"ari {run['ari']:.3f}; test acc {run['test_acc']:.3f}; clusters per digit {run['clusters_per_digit']}"
        )
    print(f"wrote {path} and its .npz in {wall:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
