#!/usr/bin/env bash
# One GPU session (the `device` tool of this workplace): the paper's MNIST model at the paper's
# length in the three variants that decide Table 1 (`make record`'s command, one process per
# variant on the one GPU, three seeds each), then the R-runs speed table on the GPU. Not used by CI.
# Usage there: VMONF_RECORD_COMMIT=<commit> bash tools/device_check.sh "$OUT"
# The nine records come back as one archive ($OUT/records.tgz: the device returns at most 8
# files); unpack it into book/recorded/.
set -uo pipefail
out=${1:-/tmp/device_out}
mkdir -p "$out" "$out/rec"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
nvidia-smi -L
python3 -c "import torch; assert torch.cuda.is_available(); print('torch', torch.__version__, torch.cuda.get_device_name(0))" || exit 1
for variant in paper paper_floor raw; do
  timeout 500 python3 tools/record.py --variant "$variant" --out "$out/rec" --device cuda \
    > "$out/record_$variant.txt" 2>&1 &
done
wait
tail -n 5 "$out"/record_*.txt
tar czf "$out/records.tgz" -C "$out/rec" .
rm -r "$out/rec"
timeout 60 python3 bench/speed.py --only runs --device cuda 2>&1 | tee "$out/bench_runs_cuda.txt"
ls -la "$out"
