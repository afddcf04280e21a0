#!/usr/bin/env bash
# hf vs vllm on a GPU machine: the same public model on 200 samples of a real task.
# Prints the agreement rate of the two backends' predictions, samples/s of each
# (generation only, model load excluded) and the hf -> vllm speed-up.
#
#   pip install vllm            # CUDA machines only
#   bash benchmarks/gpu_check.sh [MODEL] [TASK] [LIMIT]
#   (defaults: Qwen/Qwen2-VL-2B-Instruct okvqa 200; needs the hub, or a local folder for MODEL)
set -euo pipefail
MODEL=${1:-Qwen/Qwen2-VL-2B-Instruct}
TASK=${2:-okvqa}
LIMIT=${3:-200}
OUT=${OUT:-runs/gpu_check}
BATCH=${BATCH:-16}

nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || { echo "no GPU visible" >&2; exit 2; }
python -c "import vllm; print('vllm', vllm.__version__)"

python -m m3eval run --model hf --model-args "pretrained=$MODEL,dtype=bfloat16,device=cuda" \
  --tasks "$TASK" --limit "$LIMIT" --batch-size "$BATCH" --output "$OUT" --run-name hf --no-media
python -m m3eval run --model vllm --model-args "pretrained=$MODEL,dtype=bfloat16,max_model_len=8192" \
  --tasks "$TASK" --limit "$LIMIT" --batch-size "$BATCH" --output "$OUT" --run-name vllm --no-media

python - "$OUT" "$TASK" <<'PY'
import json, sys
from pathlib import Path
out, task = Path(sys.argv[1]), sys.argv[2]
def preds(run):
    return {r["id"]: r["prediction"] for r in map(json.loads, (out / run / "predictions" / f"{task}.jsonl").open())}
def speed(run):
    t = json.loads((out / run / "results.json").read_text())["timings"]
    return t["samples"] / max(t["generate_s"], 1e-9), t
hf, vl = preds("hf"), preds("vllm")
same = sum(hf[k].strip() == vl.get(k, "").strip() for k in hf)
(s_hf, t_hf), (s_vl, t_vl) = speed("hf"), speed("vllm")
print(f"task={task} samples={len(hf)}")
print(f"agreement (exact, stripped): {same}/{len(hf)} = {same / max(len(hf), 1):.1%}")
print(f"hf:   {s_hf:.2f} samples/s  (generate {t_hf['generate_s']:.1f} s, load {t_hf['load_s']:.1f} s)")
print(f"vllm: {s_vl:.2f} samples/s  (generate {t_vl['generate_s']:.1f} s, load {t_vl['load_s']:.1f} s)")
print(f"speed-up hf -> vllm: {s_vl / max(s_hf, 1e-9):.1f}x")
PY
