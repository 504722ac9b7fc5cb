#!/usr/bin/env bash
# GPT-2 small on a CUDA machine, beside nanoGPT: the same config (12 layers, 12 heads, n_embd 768, block 1024,
# vocab 50304, bfloat16, torch.compile, flash attention, batch 16, no gradient accumulation) trained by
# nanoGPT's own train.py from a scratch folder and by scripts/profile_run.py, on the same random tokens; then
# scripts/tune.py from a deliberately poor start (batch 4, float32, no compile, num_workers 0). Results go
# into OUT as they come (a log per run, our report, tune.json / tune.md, one profiler cycle of ours); the
# comparison is printed.
#
#     bash scripts/gpu_gpt2.sh NANOGPT_DIR OUT [TUNE_BUDGET]
#
# NANOGPT_DIR holds nanoGPT's model.py, train.py and configurator.py (a copy of karpathy/nanoGPT; never part
# of this project). TUNE_BUDGET is tune.py's --budget (default 4m).
set -uo pipefail
nanogpt=$(realpath "${1:?usage: bash scripts/gpu_gpt2.sh NANOGPT_DIR OUT [TUNE_BUDGET]}")
out=$(realpath -m "${2:?usage: bash scripts/gpu_gpt2.sh NANOGPT_DIR OUT [TUNE_BUDGET]}")
budget=${3:-4m}
cd "$(dirname "$0")/.."
mkdir -p "$out"
work=$(mktemp -d)
export MFU_CACHE_DIR=$work/cache PYTHONUNBUFFERED=1
nvidia-smi -L
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())"

# random tokens below GPT-2's vocabulary, in nanoGPT's data/<dataset>/{train,val}.bin layout
mkdir -p "$work/nanogpt/data/openwebtext"
cp "$nanogpt"/{model.py,train.py,configurator.py} "$work/nanogpt/"
python3 - "$work/nanogpt/data/openwebtext" <<'EOF'
import sys
import numpy as np
rng = np.random.default_rng(0)
for split, n in (("train", 50_000_000), ("val", 1_000_000)):
    rng.integers(0, 50257, n, dtype=np.uint16).tofile(f"{sys.argv[1]}/{split}.bin")
EOF

gpt2="--n_layer=12 --n_head=12 --n_embd=768 --block_size=1024 --batch_size=16 --dropout=0.0 --bias=False"
start=$SECONDS
(cd "$work/nanogpt" && python3 train.py --gradient_accumulation_steps=1 --batch_size=16 --max_iters=40 \
    --eval_interval=1000000 --eval_iters=1 --log_interval=1 --compile=True --dtype=bfloat16 \
    --out_dir="$work/nanogpt/out" > "$out/nanogpt.log" 2>&1)
echo "== nanoGPT: exit $?, $((SECONDS - start)) s"
start=$SECONDS
python3 scripts/profile_run.py --device=cuda $gpt2 --vocab_size=50304 --dtype=bfloat16 --compile=True \
    --attention=sdpa --dataset="$work/nanogpt/data/openwebtext" --max_iters=40 --log_interval=1 \
    --checkpoint=False --num_workers=2 --pin_memory=True --skip_first=10 --wait=2 --warmup=2 --active=3 --repeat=1 \
    --out="$work/ours" > "$out/ours.log" 2>&1
echo "== ours: exit $?, $((SECONDS - start)) s"
cp "$work/ours/report.json" "$out/ours_report.json" 2>/dev/null
gzip -c "$(ls "$work"/ours/*.pt.trace.json | head -1)" > "$out/gpt2_small_compiled.pt.trace.json.gz" 2>/dev/null
python3 - "$out" <<'EOF'
import json, re, statistics, sys
from pathlib import Path
out = Path(sys.argv[1])
tokens = 16 * 1024
line = re.compile(r"^iter (\d+): loss [\d.]+, time ([\d.]+)ms", re.M)
nano, ours = ([float(ms) for it, ms in line.findall((out / f).read_text()) if int(it) >= 10]
              for f in ("nanogpt.log", "ours.log"))
peak = 989e12
flops = json.loads((out / "ours_report.json").read_text())["mfu"]["flops_per_step"]["analytic"]
for name, times in (("nanoGPT", nano), ("ours", ours)):
    if times:
        ms = statistics.median(times)
        print(f"{name:<8} median {ms:.2f} ms/iter over iters 10+ ({len(times)}), {tokens / ms * 1000:,.0f} tokens/s, "
              f"MFU {100 * flops / (ms / 1000) / peak:.2f}% of 989 TFLOP/s")
EOF
start=$SECONDS
python3 scripts/tune.py --device=cuda $gpt2 --vocab_size=50304 --dataset="$work/nanogpt/data/openwebtext" \
    --batch_size=4 --dtype=float32 --compile=False --num_workers=0 --max_iters=30 --skip_first=10 --wait=2 \
    --warmup=2 --active=3 --repeat=1 --repeats=2 --budget="$budget" --tune_out="$work/tune" > "$out/tune.log" 2>&1
echo "== tune: exit $?, $((SECONDS - start)) s"
cp "$work"/tune/tune.json "$work"/tune/tune.md "$out/" 2>/dev/null
grep -E "^(try|  kept|  rejected|stop)" "$out/tune.log"
ls -la "$out"
