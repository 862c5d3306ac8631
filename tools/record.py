"""Record what no CPU build affords: the paper's MNIST model at the paper's length (``make record``).

Runs chapter 8's own code (:func:`vmonf_mini.experiments.paper_mnist`) and writes, with the
run's provenance, into ``--out`` (default ``book/recorded/``):

* ``--variant NAME`` (``paper``, ``paper_floor``, ``raw``: see
  :data:`vmonf_mini.experiments.PAPER_MNIST_VARIANTS`): one record per seed,
  ``mnist_NAME_seedS.json`` and ``.npz`` (Figure 3's samples), each with its per-epoch log. The
  seeds given (default the variant's three) are trained together; each record's wall time is
  that of the whole run.
* without ``--variant``: the book's first configuration (pixels / 255, every training image),
  ``mnist_paper.json``, all seeds in one record.

On a GPU the ``full`` budget takes minutes; on 2 CPU cores about 40-60 minutes per seed.

    python tools/record.py --variant paper                    # full budget, three seeds
    python tools/record.py --variant paper --seeds 1 --progress
    python tools/record.py --variant raw --budget smoke --out /tmp/records   # seconds
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import torch

import vmonf_mini as vm
from vmonf_mini.experiments import (
    PAPER_MNIST,
    PAPER_MNIST_VARIANTS,
    PaperResult,
    paper_mnist,
    paper_variant,
)
from vmonf_mini.records import write_record

ROOT = Path(__file__).resolve().parent.parent
PROBE = 1000  # images on which the encoder's gradient is measured after every epoch


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", choices=list(PAPER_MNIST), default="full")
    parser.add_argument("--variant", choices=sorted(PAPER_MNIST_VARIANTS))
    parser.add_argument(
        "--seeds", type=int, nargs="+", help="default: the configuration's seeds"
    )
    parser.add_argument("--out", default=str(ROOT / "book" / "recorded"))
    parser.add_argument(
        "--device", default=None, help="default: the GPU when there is one"
    )
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args(argv)
    if args.variant is None:
        config = PAPER_MNIST[args.budget]
    else:
        config = paper_variant(args.variant, args.budget)
    if args.seeds:
        config = replace_seeds(config, args.seeds)
    device = torch.device(args.device) if args.device else vm.default_device()
    x_train, y_train = vm.data.mnist(digits=range(5), split="train")
    x_test, y_test = vm.data.mnist(digits=range(5), split="test")
    print(f"recording the paper's MNIST model on {device}: {config}", flush=True)
    tic = time.perf_counter()
    result = paper_mnist(
        config,
        x_train,
        y_train,
        x_test,
        y_test,
        device=device,
        progress=args.progress,
        probe=PROBE,
    )
    wall = time.perf_counter() - tic
    command = "python tools/record.py " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])
    )
    written = []
    if args.variant is None:
        written.append(
            _write(
                args,
                result,
                range(len(result.runs)),
                "mnist_paper",
                command,
                wall,
                device,
            )
        )
    else:
        for index, run in enumerate(result.runs):
            name = f"mnist_{args.variant}_seed{run['seed']}"
            written.append(_write(args, result, [index], name, command, wall, device))
    for run in result.runs:
        print(
            f"seed {run['seed']}: {run['steps']} steps, train acc {run['acc']:.3f} "
            f"nmi {run['nmi']:.3f} ari {run['ari']:.3f}, {run['clusters_in_use']} clusters "
            f"in use; test acc {run['test_acc']:.3f}; clusters per digit "
            f"{run['clusters_per_digit']}"
        )
    print(f"wrote {', '.join(str(p) for p in written)} in {wall:.0f} s")
    return 0


def replace_seeds(config: Any, seeds: List[int]) -> Any:
    """``config`` with the given seeds (each record then says which it holds)."""
    from dataclasses import replace

    return replace(config, seeds=tuple(seeds))


def _write(
    args: argparse.Namespace,
    result: PaperResult,
    indices: Any,
    name: str,
    command: str,
    wall: float,
    device: torch.device,
) -> Path:
    indices = list(indices)
    seeds = [result.runs[i]["seed"] for i in indices]
    config = replace_seeds(result.config, seeds).as_dict()
    results: Dict[str, Any] = {
        "runs": [result.runs[i] for i in indices],
        "budget": args.budget,
        "variant": args.variant,
        "probe": PROBE,
        "trained_together": list(result.config.seeds),
    }
    samples = np.round(result.samples[indices] * 255).astype(np.uint8)
    return write_record(
        args.out,
        name,
        results,
        config,
        {"samples": samples},
        command=command.strip(),
        seeds=seeds,
        wall_seconds=wall,
        device=device,
    )


if __name__ == "__main__":
    sys.exit(main())
