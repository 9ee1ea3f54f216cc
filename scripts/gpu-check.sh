#!/usr/bin/env bash
# One-command GPU check: precision of the candle backend on the device in f32/f16/bf16 against the
# CPU f32 backend, throughput on every human gene summary (all-MiniLM-L6-v2, real weights) and on
# 512-token cell sentences (a seeded Ember-v1-shaped checkpoint this script writes itself), and,
# where python3 has torch + transformers, PyTorch (SDPA, fp16) on the same texts as a ratio.
# Needs no network. A CPU dry run (`--device cpu`, smaller sizes) prints the same report.
#
#   scripts/gpu-check.sh [--bin target/release/celltext] [--minilm models-local/all-MiniLM-L6-v2]
#                        [--device cuda] [--work celltext-device-check] [device-check options...]
#
# The binary must be built with `--features cuda` for --device cuda (see docs/gpus.md).
set -euo pipefail
BIN=target/release/celltext
MINILM=models-local/all-MiniLM-L6-v2
DEVICE=cuda
WORK=celltext-device-check
EXTRA=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --bin) BIN="$2"; shift 2 ;;
        --minilm) MINILM="$2"; shift 2 ;;
        --device) DEVICE="$2"; shift 2 ;;
        --work) WORK="$2"; shift 2 ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) EXTRA+=("$1"); shift ;;
    esac
done
[[ -x "$BIN" ]] || { echo "error: $BIN is not an executable celltext binary (pass --bin)" >&2; exit 2; }
[[ -f "$MINILM/model.safetensors" ]] || { echo "error: $MINILM has no model.safetensors (run scripts/fetch_minilm.sh or pass --minilm)" >&2; exit 2; }
HERE="$(cd "$(dirname "$0")" && pwd)"
echo "celltext device check, $(date -u +%Y-%m-%dT%H:%MZ), $(uname -m)"
if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | sed 's/^/GPU: /'
fi
"$BIN" device-check --device "$DEVICE" --minilm "$MINILM" --work "$WORK" "${EXTRA[@]}"
if python3 -c 'import torch, transformers' >/dev/null 2>&1; then
    python3 "$HERE/torch_speed.py" "$WORK/report.json"
else
    echo
    echo "PyTorch comparison skipped: python3 has no torch + transformers."
fi
echo
echo "report: $WORK/report.json"
