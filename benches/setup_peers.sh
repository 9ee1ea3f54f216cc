#!/usr/bin/env bash
# The peers' Python for benches/table.py: a venv with CPU PyTorch + transformers (the PyTorch
# column) and ONNX Runtime + optimum (the ONNX Runtime columns: export, O2 fusions, dynamic int8).
#
#   bash benches/setup_peers.sh [VENV_DIR]     (default: .bench-venv, ignored by git)
#
# Prints the venv's python path last, for `python3 benches/table.py --python "$(…)"`.
set -euo pipefail
venv="${1:-.bench-venv}"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
py="$venv/bin/python"
"$py" -m pip install --quiet --upgrade pip
# CPU wheels of torch (no CUDA libraries) when PyTorch's index is reachable, else PyPI's wheel;
# a torch already importable in the venv is kept. optimum exports through torch.onnx.
if ! "$py" -c "import torch" 2>/dev/null; then
    "$py" -m pip install --quiet torch --index-url https://download.pytorch.org/whl/cpu \
        || "$py" -m pip install --quiet torch
fi
# the versions measured in docs/speed.md (optimum-onnx 0.1 caps transformers below 4.58)
"$py" -m pip install --quiet "optimum[onnxruntime]==2.1.0" optimum-onnx==0.1.0 transformers==4.57.6 \
    onnx==1.23.2 onnxruntime==1.32.0 numpy
"$py" - <<'PY' >&2
import importlib.metadata as m
for p in ("torch", "transformers", "onnxruntime", "onnx", "optimum"):
    try:
        print(p, m.version(p))
    except m.PackageNotFoundError:
        print(p, "missing")
PY
echo "$py"
