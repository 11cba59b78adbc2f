#!/usr/bin/env bash
# The prepared GPU check (issue 14), <= 8 minutes on one H100/H200: the test suite with the cuda-marked tests,
# the env on CUDA (bf16) vs the CPU, batched env speed (N = 256, 1024), a 200-step DDP training smoke and the
# wan1.3b frames/s at the paper's shape. Writes OUT/gpu_check.json and OUT/gpu_check.md.
#
#   scripts/gpu_check.sh [OUT] [--dry-run] [--only tests env speed ddp wan]
#
# --dry-run: tiny sizes on the CPU (about a minute), to know the script works before a GPU is lent.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-gpu-check}"
if [[ $# -gt 0 ]]; then shift; fi
exec python scripts/gpu_check.py --out "$out" "$@"
