#!/usr/bin/env bash
# The GPU variant of `make bench`, as one command on a machine with an NVIDIA GPU:
#   bash scripts/bench_gpu.sh [more python -m benchmarks options]
# Same parts and tables as on the CPU; models run on CUDA (TorchServe gives each worker a
# GPU). The engines part times TorchScript and AOTInductor at fp32, bf16 and fp16, each with
# the accuracy check, and e2e and load serve the fastest that passed (the build's
# `precision: auto` on a GPU). GPU utilisation and memory are sampled with nvidia-smi per
# part, and the load test uses wav2vec2-base. Sized for one run of under 10 minutes on an
# H100/H200 machine. Results go to results/bench-gpu/.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
[ -x "$VENV/bin/python" ] || bash scripts/setup.sh
command -v nvidia-smi >/dev/null || { echo "nvidia-smi not found: this needs an NVIDIA GPU" >&2; exit 2; }
"$VENV/bin/python" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 'CUDA is not available to torch')"
export PATH="$(cd "$VENV/bin" && pwd):$PATH"
exec "$VENV/bin/python" -m benchmarks --device cuda --size base --clips 64 --engine-size base --load-size base \
    --load-burst 256 --workers 2 --threads 4 --out results/bench-gpu "$@"
