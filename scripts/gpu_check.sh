#!/usr/bin/env bash
# The end-to-end check on a CUDA machine: profile_run in bfloat16 with sdpa, eager and torch.compile'd, on
# nanoGPT's shakespeare_char "baby GPT" shape, and eager on the default (tiny) shape; then the fixes the
# eager run's diagnosis recommends, one on top of the other (num_workers=4, batch_size=256, compile). Each
# run is analysed as it trains and at its end. Prints the lines that matter and a table of MFU, the recorded
# steps against the unrecorded ones before and after the profiler's own cost is taken out (issue 17, item 3:
# the host-bound eager run is the one to check), and what-if MFU per run, and leaves one archive per run
# (traces, reports, summary, TensorBoard events, log) in OUT.
#
#     bash scripts/gpu_check.sh OUT
set -uo pipefail
out=${1:?usage: bash scripts/gpu_check.sh OUT}
cd "$(dirname "$0")/.."
work=$(mktemp -d)
export MFU_CACHE_DIR=$work/cache PYTHONUNBUFFERED=1
nvidia-smi -L
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())"
baby="--n_layer=6 --n_head=6 --n_embd=384 --block_size=256 --batch_size=64 --dropout=0.2 --max_iters=60"

run() {  # name, then profile_run's arguments
    local name=$1
    shift
    local start=$SECONDS
    python3 scripts/profile_run.py --device=cuda --checkpoint=False --log_interval=10 --out="$work/$name" "$@" \
        > "$work/$name.log" 2>&1
    echo "== $name: exit $?, $((SECONDS - start)) s"
    grep -E "^(run folder|peak|done|recorded|without the profiler|device|steps|MFU|profiler cycle|kernel time|error|stopped)" \
        "$work/$name.log"
    sed -n '/^breakdown/,/^Diagnosis/p' "$work/$name.log"
    grep -E "^[0-9]\. " "$work/$name.log"
    tail -n 3 "$work/$name.log"
    tar czf "$out/$name.tgz" -C "$work" "$name" "$name.log"
}

run eager --dtype=bfloat16 $baby
run compiled --dtype=bfloat16 --compile=True $baby
run tiny --dtype=bfloat16
fixed="--dtype=bfloat16 $baby --num_workers=4 --pin_memory=True"
run workers4 $fixed
run batch256 $fixed --batch_size=256
run batch256_compiled $fixed --batch_size=256 --compile=True
python3 - "$work" <<'EOF'
import json, sys
from pathlib import Path
print(f"{'run':<18}{'tokens/s':>11}{'MFU':>8}   recorded / corrected / unrecorded ms   what-if MFU: io, small_batch, "
      "non_fused")
for name in ("eager", "compiled", "tiny", "workers4", "batch256", "batch256_compiled"):
    folder = Path(sys.argv[1]) / name
    report, summary = (json.loads((folder / f).read_text()) for f in ("report.json", "summary.json"))
    what_if = {e["cause"]: e["what_if_mfu"] for e in report["ledger"]}
    steps = " / ".join(f"{summary.get(k, float('nan')):.2f}" for k in (
        "recorded_step_ms", "recorded_step_ms_without_profiler", "unrecorded_step_ms"))
    print(f"{name:<18}{summary['tokens_per_s']:>11,.0f}{100 * report['mfu']['analytic']:>7.2f}%   {steps:<33}  "
          + ", ".join(f"{100 * what_if[c]:.2f}%" for c in ("io", "small_batch", "non_fused")))
EOF
ls -la "$out"
