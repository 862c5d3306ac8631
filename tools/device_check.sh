#!/usr/bin/env bash
# One GPU session (the `device` tool of this workplace): a CUDA check of fit_many, the MNIST
# record (`make record`'s command on the GPU), then the R-runs speed table on the GPU. Not used by CI.
# Usage there: VMONF_RECORD_COMMIT=<commit> bash tools/device_check.sh "$OUT"
set -uo pipefail
out=${1:-/tmp/device_out}
mkdir -p "$out"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
nvidia-smi -L
python3 - <<'PY' || exit 1
import copy, torch, vmonf_mini as vm
assert torch.cuda.is_available()
print("torch", torch.__version__, torch.cuda.get_device_name(0))
x, _ = vm.data.pinwheel(n_per_class=64, seed=0)
x = x.double()
torch.manual_seed(0)
models = [vm.VMoNF(2, 5, blocks=2, encoder_hidden=(8, 8)).double() for _ in range(3)]
alone, together = [copy.deepcopy(m) for m in models], [copy.deepcopy(m) for m in models]
kw = dict(epochs=2, batch_size=64, init="kmeans", init_epochs=2, clip_grad_norm=1.0, device="cuda", progress=False)
for m, s in zip(alone, range(3)):
    vm.fit(m, x, seed=s, **kw)
vm.fit_many(together, x, seeds=[0, 1, 2], **kw)
worst = max((a - b).abs().max().item() for ma, mb in zip(alone, together)
            for a, b in zip(ma.state_dict().values(), mb.state_dict().values()) if a.is_floating_point())
print("CUDA fit_many vs fit, largest difference:", worst)
assert worst < 1e-6
PY
timeout 400 python3 tools/record.py --budget full --out "$out" --device cuda 2>&1 | tee "$out/record_log.txt"
timeout 170 python3 bench/speed.py --only runs --device cuda 2>&1 | tee "$out/bench_runs_cuda.txt"
ls -la "$out"
