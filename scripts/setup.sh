#!/usr/bin/env bash
# Installs m3eval (editable) with the extras named in $EXTRAS (default: test).
# torch: a machine without an NVIDIA GPU gets a CPU build first, so pip does not
# pull a multi-GB CUDA build for `torch>=2.4`; a GPU machine gets pip's default
# (CUDA) build. Override the CPU pin with M3EVAL_CPU_TORCH, and point
# M3EVAL_TORCH_INDEX at PyTorch's CPU wheel index where PyPI's build is CUDA-only.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! "$PY" -c "import torch" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    "$PY" -m pip install "torch>=2.4"
  else
    "$PY" -m pip install "torch==${M3EVAL_CPU_TORCH:-2.13.0}" ${M3EVAL_TORCH_INDEX:+--index-url "$M3EVAL_TORCH_INDEX"}
  fi
fi
extras=${EXTRAS:-test}
# the test set-up pins what the golden run's numerics depend on (torch is pinned above on CPU)
case ",$extras," in *,test,*) pin=(-c scripts/golden-constraints.txt) ;; *) pin=() ;; esac
"$PY" -m pip install -e ".[$extras]" "${pin[@]}"
