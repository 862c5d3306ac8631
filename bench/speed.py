"""How fast is a mixture of K flows evaluated in one batched pass?  (``make bench``)

For each configuration of the book the same mixture is built three ways and timed in the same
run, the implementations taking turns (a, b, c, a, b, c, ...) so that a change of load hits all:

* ``batched``: vmonf_mini's VMoNF, the K components' parameters stacked along a leading axis
  and evaluated by batched matrix products;
* ``loop``: the same architecture as K separate vmonf_mini flows (``k=1``) passed as
  ``components=``, evaluated one after the other in a Python loop;
* ``normflows``: K normflows 1.7 flows of the same kind (see ``_common.py``), also looped.

A training step is what ``vmonf_mini.fit`` does per batch: the ELBO's forward pass, backward,
and Adam's update (the same optimizer ``fit`` builds).  Reported: the median over repeats,
after warm-up, on one torch thread unless --threads says otherwise.

    python bench/speed.py                   # everything (a few minutes on 2 quiet cores)
    python bench/speed.py --quick           # a smoke run, targets printed but not enforced
    python bench/speed.py --clock cpu --json speed.json   # steadier on a loaded machine
    python bench/speed.py --threads 0                     # torch's own thread count

Prints Markdown tables and PASS/FAIL per target; exits 1 when a target fails (full runs).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import vmonf_mini as vm  # noqa: E402
from vmonf_mini.training import _adam  # noqa: E402  (the optimizer fit() uses)
from _common import (  # noqa: E402
    interleaved,
    load_string,
    machine_header,
    normflows_maf,
    normflows_realnvp,
    setup_threads,
    table,
    verdict,
    write_json,
)


@dataclass
class Config:
    name: str
    flow: str
    k: int
    blocks: int
    hidden: int
    batch: int
    dim: int
    data: Callable[[], torch.Tensor]
    encoder: Tuple[int, ...]  # hidden widths of q(c|x): the paper's for this experiment
    steps: int  # training steps per timed repeat
    n_logp: int  # points per log p(x) call
    n_sample: int  # points per sampling call


def _mnist_x(n: int) -> torch.Tensor:
    try:
        return vm.data.mnist(download=False)[0][:n]
    except vm.mnist.MNISTUnavailable:  # the timings do not depend on the pixel values
        print("(MNIST files not found: timing on uniform noise of the same shape)")
        return torch.rand(n, 784)


def configs(quick: bool) -> Dict[str, Config]:
    q = quick
    return {
        "pinwheel": Config(
            "pinwheel",
            "realnvp",
            5,
            8,
            8,
            512,
            2,
            lambda: vm.data.pinwheel()[0],
            (3,),
            steps=5 if q else 20,
            n_logp=2560,
            n_sample=500 if q else 2000,
        ),
        "two circles": Config(
            "two circles",
            "realnvp",
            2,
            10,
            8,
            128,
            2,
            lambda: vm.data.two_circles()[0],
            (16, 16),
            steps=8 if q else 20,
            n_logp=1024,
            n_sample=500 if q else 2000,
        ),
        "MNIST": Config(
            "MNIST",
            "maf",
            5,
            5,
            200,
            100,
            784,
            lambda: _mnist_x(500),
            (512,),
            steps=1 if q else 2,
            n_logp=500,
            n_sample=5 if q else 20,
        ),
    }


def build(cfg: Config, variant: str, k: Optional[int] = None) -> vm.VMoNF:
    k = cfg.k if k is None else k
    shared = dict(
        flow=cfg.flow, blocks=cfg.blocks, hidden=cfg.hidden, encoder_hidden=cfg.encoder
    )
    if variant == "batched":
        return vm.VMoNF(cfg.dim, k, **shared)
    if variant == "loop":
        make = vm.flows.realnvp if cfg.flow == "realnvp" else vm.flows.maf
        comps = [
            make(cfg.dim, k=1, blocks=cfg.blocks, hidden=cfg.hidden) for _ in range(k)
        ]
    else:
        make = normflows_realnvp if cfg.flow == "realnvp" else normflows_maf
        comps = [make(cfg.dim, cfg.blocks, cfg.hidden) for _ in range(k)]
    return vm.VMoNF(cfg.dim, k, components=comps, **shared)


def trainer(model: vm.VMoNF, x: torch.Tensor, cfg: Config) -> Callable[[], None]:
    """``cfg.steps`` training steps as ``fit`` takes them (batches cycle through ``x``)."""
    # lr 1e-4: the step time does not depend on it, and normflows' unbounded scales (no tanh)
    # overflow after about 190 steps at 1e-3 on the pinwheel (ours stay finite: see bench/README.md)
    optimizer = _adam(list(model.parameters()), 1e-4, 0.0)
    batches = list(x.split(cfg.batch))
    batches = [b for b in batches if b.shape[0] == cfg.batch] or batches
    state = {"i": 0}

    def run() -> None:
        model.train()
        for _ in range(cfg.steps):
            xb = batches[state["i"] % len(batches)]
            state["i"] += 1
            loss = -model.elbo(xb, 0.5).mean()
            if not torch.isfinite(loss.detach()):
                raise FloatingPointError("non-finite loss in the benchmark")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    return run


def evaluator(model: vm.VMoNF, fn: Callable[[], Any]) -> Callable[[], None]:
    def run() -> None:
        model.eval()
        with torch.no_grad():
            fn()

    return run


def run_config(cfg: Config, args: argparse.Namespace) -> Dict[str, Any]:
    x = cfg.data()
    variants = ["batched", "loop"] + ([] if args.no_normflows else ["normflows"])
    print(
        f"\n### {cfg.name}: K={cfg.k}, {cfg.flow} {cfg.blocks} blocks, hidden {cfg.hidden}, D={cfg.dim}, "
        f"batch {cfg.batch}, encoder {cfg.encoder}",
        flush=True,
    )
    models = {}
    for v in variants:
        vm.seed_everything(0)
        models[v] = build(cfg, v)
    mnist = cfg.flow == "maf"
    repeats = max(3, args.repeats // 2) if mnist else args.repeats
    steps = interleaved(
        {v: trainer(m, x, cfg) for v, m in models.items()}, repeats, 1, args.clock
    )
    x_eval = x[: cfg.n_logp]
    logp = interleaved(
        {v: evaluator(m, lambda m=m: m.log_prob(x_eval)) for v, m in models.items()},
        repeats,
        1,
        args.clock,
    )
    # MAF samples one feature at a time (784 passes per layer): one call each, no warm-up
    sample = interleaved(
        {
            v: evaluator(m, lambda m=m: m.sample(cfg.n_sample))
            for v, m in models.items()
        },
        1 if mnist else max(1, repeats // 2),
        0 if mnist else 1,
        args.clock,
    )
    out: Dict[str, Dict[str, float]] = {}
    for v in variants:
        sec = steps[v] / cfg.steps
        out[v] = {
            "ms_per_step": 1000 * sec,
            "train_samples_per_s": cfg.batch / sec,
            "logp_per_s": x_eval.shape[0] / logp[v],
            "sample_per_s": cfg.n_sample / sample[v],
        }
    base = out["batched"]["ms_per_step"]
    rows = [
        [
            v,
            r["ms_per_step"],
            r["train_samples_per_s"],
            r["ms_per_step"] / base,
            r["logp_per_s"],
            r["sample_per_s"],
        ]
        for v, r in out.items()
    ]
    print(
        table(
            [
                "implementation",
                "ms / step",
                "train samples/s",
                "step time / batched",
                "log p(x) points/s",
                "samples/s",
            ],
            rows,
        )
    )
    return out


def run_sweep(
    cfg: Config, ks: List[int], args: argparse.Namespace
) -> Dict[int, Dict[str, float]]:
    x = cfg.data()
    print(
        f"\n### K sweep at the {cfg.name} configuration ({cfg.flow} {cfg.blocks} blocks, hidden {cfg.hidden}, "
        f"batch {cfg.batch}): ms per training step",
        flush=True,
    )
    fns = {}
    for k in ks:
        for v in ("batched", "loop"):
            vm.seed_everything(0)
            fns[(k, v)] = trainer(build(cfg, v, k), x, cfg)
    # all K take turns, so that the K=1 and K=5 numbers see the same load
    sec = interleaved(fns, args.repeats, 1, args.clock)  # type: ignore[arg-type]
    out = {
        k: {v: 1000 * sec[(k, v)] / cfg.steps for v in ("batched", "loop")} for k in ks
    }
    k1 = out[ks[0]]["batched"]
    rows = [
        [k, r["batched"], r["loop"], r["loop"] / r["batched"], r["batched"] / k1]
        for k, r in out.items()
    ]
    print(
        table(
            [
                "K",
                "batched ms/step",
                "loop ms/step",
                "loop / batched",
                f"batched / batched K={ks[0]}",
            ],
            rows,
        )
    )
    return out


@dataclass
class RunsConfig:
    """A training run that the book repeats over seeds or label budgets (the R table)."""

    name: str
    model: Dict[str, Any]  # VMoNF arguments
    fit: Dict[str, Any]  # fit arguments
    data: Callable[[], Tuple[torch.Tensor, torch.Tensor]]
    labels_per_class: int = 0


def runs_configs() -> List[RunsConfig]:
    return [
        RunsConfig(
            "pinwheel",
            dict(
                dim=2, k=5, flow="realnvp", blocks=8, hidden=8, encoder_hidden=(32, 32)
            ),
            dict(batch_size=512, lr=1e-3),
            lambda: vm.data.pinwheel(),
        ),
        RunsConfig(
            "two circles, semi-supervised (64 labels)",
            dict(
                dim=2, k=2, flow="realnvp", blocks=10, hidden=8, encoder_hidden=(16, 16)
            ),
            dict(batch_size=128, lr=1e-3),
            lambda: vm.data.two_circles(),
            labels_per_class=32,
        ),
    ]


def _run_labels(y: torch.Tensor, per_class: int, seed: int) -> Optional[torch.Tensor]:
    return vm.recipes.labeled_subset(y, per_class, seed) if per_class else None


def run_runs(
    rc: RunsConfig, rs: List[int], epochs: int, repeats: int, device: str
) -> Dict[int, Dict[str, float]]:
    """ms per epoch of ``fit_many`` of R runs against R sequential ``fit`` calls, taking turns."""
    x, y = rc.data()
    print(
        f"\n### R runs at the {rc.name} configuration ({rc.model['flow']} {rc.model['blocks']} blocks, hidden "
        f"{rc.model['hidden']}, K={rc.model['k']}, encoder {rc.model['encoder_hidden']}, batch "
        f"{rc.training['batch_size']}; device {_device_name(device)}): ms per epoch, {epochs} epochs per timing "
        f"(the models built before each timing, outside it), median of {repeats}",
        flush=True,
    )

    def setup(
        r: int,
    ) -> Callable[[], Tuple[List[vm.VMoNF], List[Optional[torch.Tensor]]]]:
        def build() -> Tuple[List[vm.VMoNF], List[Optional[torch.Tensor]]]:
            vm.seed_everything(0)
            models = [vm.VMoNF(**rc.model).to(device) for _ in range(r)]
            return models, [
                _run_labels(y, rc.labels_per_class, seed) for seed in range(r)
            ]

        return build

    def together(runs: Tuple[List[vm.VMoNF], List[Optional[torch.Tensor]]]) -> None:
        models, labels = runs
        vm.fit_many(
            models,
            x,
            labels if rc.labels_per_class else None,
            seeds=list(range(len(models))),
            epochs=epochs,
            progress=False,
            **rc.training,
        )

    def one_by_one(runs: Tuple[List[vm.VMoNF], List[Optional[torch.Tensor]]]) -> None:
        models, labels = runs
        for seed, (model, lab) in enumerate(zip(models, labels)):
            vm.fit(
                model, x, lab, seed=seed, epochs=epochs, progress=False, **rc.training
            )

    out: Dict[int, Dict[str, float]] = {}
    for r in (
        rs
    ):  # each R on its own: the two ways take turns, so that they see the same load
        # the R models (and label sets) are built before each timing, outside it: a timing
        # holds the fit_many call, or the R fit calls, and nothing else
        sec = interleaved(
            {"fit_many": together, "sequential": one_by_one},
            repeats,
            1,
            prepare={"fit_many": setup(r), "sequential": setup(r)},
        )
        out[r] = {v: 1000 * t / epochs for v, t in sec.items()}
    rows = [
        [
            r,
            o["fit_many"],
            o["sequential"],
            o["sequential"] / o["fit_many"],
            o["fit_many"] / out[rs[0]]["fit_many"],
        ]
        for r, o in out.items()
    ]
    print(
        table(
            [
                "R",
                "fit_many ms/epoch",
                "R fit calls ms/epoch",
                "sequential / fit_many",
                f"fit_many / fit_many R={rs[0]}",
            ],
            rows,
        )
    )
    return out


def _device_name(device: str) -> str:
    if torch.device(device).type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    return f"{device} ({os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads)"


def peak_memory(which: int, r: int, device: str) -> Tuple[float, float]:
    """Memory in MB of one epoch of ``fit_many`` with R runs of ``runs_configs()[which]``, in a fresh process.

    CPU: the peak resident memory during the training (``VmHWM`` after resetting it through
    ``/proc/self/clear_refs``) and its growth over the memory before it (after imports and data);
    CUDA: ``torch.cuda.max_memory_allocated`` and the same number (nothing is allocated before).
    """
    code = f"""
import sys, torch
from pathlib import Path
sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})
import speed, vmonf_mini as vm
def mb(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
rc = speed.runs_configs()[{which}]
x, y = rc.data()
vm.seed_everything(0)
models = [vm.VMoNF(**rc.model).to({device!r}) for _ in range({r})]
labels = [speed._run_labels(y, rc.labels_per_class, s) for s in range({r})] if rc.labels_per_class else None
cuda = torch.device({device!r}).type == "cuda"
if not cuda:
    Path("/proc/self/clear_refs").write_text("5")
before = 0.0 if cuda else mb("VmRSS")
vm.fit_many(models, x, labels, seeds=list(range({r})), epochs=1, progress=False, **rc.training)
peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else mb("VmHWM")
print(peak, peak - before)
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    peak, growth = (float(v) for v in done.stdout.strip().splitlines()[-1].split())
    return peak, growth


def matmul_flops(cfg: Config) -> float:
    """Floating-point operations of the matrix products in one training step of the MAF mixture.

    Forward: every MADE (D -> hidden -> 2D) of every block and component, and the encoder
    (D -> encoder widths -> K); the backward pass costs twice the forward (two products per product).
    """
    made = cfg.dim * cfg.hidden + cfg.hidden * 2 * cfg.dim
    widths = [cfg.dim, *cfg.encoder, cfg.k]
    encoder = sum(a * b for a, b in zip(widths[:-1], widths[1:]))
    return 3.0 * 2 * cfg.batch * (cfg.k * cfg.blocks * made + encoder)


def flop_rate(
    cfg: Config, result: Dict[str, Any], args: argparse.Namespace
) -> Dict[str, float]:
    """Achieved rate of the training step vs one plain square torch.matmul of the same FLOPs."""
    flops = matmul_flops(cfg)
    n = round((flops / 2) ** (1 / 3))
    a, b = torch.randn(n, n), torch.randn(n, n)
    ref = (
        interleaved({"mm": lambda: torch.matmul(a, b)}, args.repeats, 2, args.clock)[
            "mm"
        ]
        * flops
        / (2.0 * n**3)
    )
    print(
        f"\n### Floating-point rate at the {cfg.name} configuration: {flops / 1e9:.2f} GFLOP of matrix "
        f"products per training step (forward + backward ~ 3x forward); reference: one {n}x{n} torch.matmul"
    )
    rows = [["torch.matmul, same FLOPs", 1000 * ref, flops / ref / 1e9, 1.0]]
    out = {"gflop_per_step": flops / 1e9, "matmul_gflops": flops / ref / 1e9}
    for v in ("batched", "loop"):
        sec = result[v]["ms_per_step"] / 1000
        rows.append([v, 1000 * sec, flops / sec / 1e9, ref / sec])
        out[f"{v}_gflops"], out[f"{v}_fraction"] = flops / sec / 1e9, ref / sec
    print(table(["", "ms / step", "GFLOP/s", "fraction of matmul rate"], rows))
    return out


def check_targets(results: Dict[str, Any]) -> List[Dict[str, Any]]:
    print("\n### Targets")
    targets = []
    if "pinwheel" in results:
        r = results["pinwheel"]
        speedup = r["loop"]["ms_per_step"] / r["batched"]["ms_per_step"]
        targets.append(
            verdict(
                "pinwheel: batched >= 4x faster than the loop of K vmonf_mini flows",
                speedup >= 4.0,
                f"{speedup:.2f}x",
            )
        )
        if (
            "normflows" in r
        ):  # reported, not a target: normflows' flows are not the same architecture
            nf_speedup = r["normflows"]["ms_per_step"] / r["batched"]["ms_per_step"]
            print(
                f"info  pinwheel: batched vs the loop of K normflows flows (ActNorm, not batch norm): "
                f"{nf_speedup:.2f}x"
            )
    if "sweep" in results:
        s = results["sweep"]
        growth = s[5]["batched"] / s[1]["batched"]
        targets.append(
            verdict(
                "pinwheel: batched step at K=5 <= 1.5x the step at K=1",
                growth <= 1.5,
                f"{growth:.2f}x",
            )
        )
    for name, minimum in (
        ("runs: pinwheel", {10: 4.0, 20: 5.0}),
        ("runs: two circles", {10: 4.0, 20: 5.0}),
    ):
        if name in results:
            for r, need in minimum.items():
                if r in results[name]:
                    o = results[name][r]
                    ratio = o["sequential"] / o["fit_many"]
                    targets.append(
                        verdict(
                            f"{name[6:]}: fit_many of R={r} >= {need:g}x faster than R fit calls",
                            ratio >= need,
                            f"{ratio:.2f}x",
                        )
                    )
    if "MNIST" in results:
        r = results["MNIST"]
        ratio = r["loop"]["ms_per_step"] / r["batched"]["ms_per_step"]
        targets.append(
            verdict(
                "MNIST: batched at least as fast as the loop",
                ratio >= 1.0,
                f"loop / batched step time = {ratio:.2f}",
            )
        )
    return targets


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: fewer repeats, targets not enforced",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch threads (default 0: torch's own choice, one per core, as the targets "
        "are stated for the machine's 2 cores; 1 for a single core)",
    )
    parser.add_argument(
        "--clock",
        choices=["wall", "cpu"],
        default="wall",
        help="wall: time.perf_counter (default); cpu: process CPU time (use with --threads 1)",
    )
    parser.add_argument(
        "--repeats", type=int, default=None, help="timed repeats (default 9, quick 3)"
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=["pinwheel", "two circles", "MNIST", "sweep", "runs"],
        help="run only this part (repeatable)",
    )
    parser.add_argument(
        "--no-normflows", action="store_true", help="skip the normflows implementation"
    )
    parser.add_argument(
        "--device",
        default="cpu",
        help="device of the R-runs table (e.g. cuda); the others run on the CPU",
    )
    parser.add_argument(
        "--json", default=None, help="also write the numbers to this JSON file"
    )
    args = parser.parse_args(argv)
    args.repeats = args.repeats or (3 if args.quick else 9)
    threads = setup_threads(args.threads)
    if args.clock == "cpu" and threads > 1:
        print(
            "note: --clock cpu adds up the CPU time of all threads; use it with --threads 1"
        )
    print(
        machine_header(
            "vmonf_mini speed benchmark" + (" (quick)" if args.quick else ""),
            threads,
            f", clock {args.clock}, median of {args.repeats} repeats",
        )
    )
    started = time.perf_counter()
    wanted = args.only or ["pinwheel", "two circles", "MNIST", "sweep", "runs"]
    cfgs = configs(args.quick)
    results: Dict[str, Any] = {
        "threads": threads,
        "quick": args.quick,
        "clock": args.clock,
    }
    for name in ("pinwheel", "two circles", "MNIST"):
        if name in wanted:
            results[name] = run_config(cfgs[name], args)
    if "MNIST" in results:
        results["MNIST flops"] = flop_rate(cfgs["MNIST"], results["MNIST"], args)
    if "sweep" in wanted:
        results["sweep"] = run_sweep(
            cfgs["pinwheel"], [1, 5] if args.quick else [1, 2, 5, 10, 20], args
        )
    if "runs" in wanted:
        rs = [1, 5] if args.quick else [1, 2, 5, 10, 20]
        for which, (rc, key) in enumerate(
            zip(runs_configs(), ("runs: pinwheel", "runs: two circles"))
        ):
            results[key] = run_runs(
                rc,
                rs,
                epochs=2 if args.quick else 3,
                repeats=1 if args.quick else 5,
                device=args.device,
            )
        peak = {r: peak_memory(0, r, args.device) for r in (1, rs[-1])}
        results["runs: peak MB"] = peak
        print(
            f"\nmemory of one epoch of fit_many at the pinwheel configuration ({_device_name(args.device)}): "
            + "; ".join(
                f"R={r}: peak {p:.0f} MB, {g:.0f} MB above the process before training"
                for r, (p, g) in peak.items()
            )
        )
    results["targets"] = check_targets(results)
    if args.quick:
        print("(--quick: targets not enforced)")
    results["seconds"] = time.perf_counter() - started
    print(
        f"\n(total {results['seconds']:.0f} s; load average at the end {load_string()})"
    )
    write_json(args.json, results)
    failed = [t for t in results["targets"] if not t["pass"]]
    return 1 if failed and not args.quick else 0


if __name__ == "__main__":
    sys.exit(main())
