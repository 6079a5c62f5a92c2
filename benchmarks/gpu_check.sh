#!/usr/bin/env bash
# The GPU check: one script, run as it is on any CUDA machine, that downloads nothing and prints seconds and
# peak GPU memory for the paths only a GPU exercises. `--dry-run` prints what it would run.
#
#   benchmarks/gpu_check.sh [--dry-run]
#
# 1. the hf backend on a random LLaVA-1.5-7B-shaped checkpoint in bfloat16 at 1, 2 and 3 images;
# 2. the released MIRAGE-8.3B's layout on random weights (float16), 1 to 10,000 images, cold and warm store;
# 3. the coco MIRAGE's training (CLIP ViT-L/14-336 and a 0.5B LM, random) for 20 steps on 2,000 images;
# 4. `vhs eval` under torchrun, two ranks on the tiny hf model and synth-llava (on one GPU they share it),
#    and two-rank data-parallel training of a tiny coco MIRAGE.
# The synth models have no CUDA path yet (their trainers run on the CPU), so none of them is timed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
STEPS=(
    "$PY benchmarks/bench_hf.py --config llava-1.5-7b --dtype bfloat16 --repeats 2"
    "$PY benchmarks/bench_mirage.py --config mirage-official --sizes 1,100,1000,10000 --questions 2"
    "$PY benchmarks/bench_train_mirage.py --config coco --steps 20 --images 2000"
    "$PY -m pytest -q -p no:cacheprovider tests/test_distributed.py"
)
if [ "${1:-}" = "--dry-run" ]; then
    printf '%s\n' "${STEPS[@]}"
    exit 0
fi
if [ -n "${1:-}" ]; then
    echo "gpu_check.sh: unknown argument ${1}; use --dry-run or nothing" >&2
    exit 2
fi
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'gpu_check.sh: no CUDA device here')"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
for step in "${STEPS[@]}"; do
    echo "== $step"
    start=$(date +%s)
    $step
    echo "== $(( $(date +%s) - start )) s"
done
