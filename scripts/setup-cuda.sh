#!/usr/bin/env bash
# Install a CUDA 13.0 compiler toolchain from PyPI (no GPU or driver needed) and print the
# environment that `cargo build --features cuda` needs. Use it as:
#
#   eval "$(bash scripts/setup-cuda.sh)"       # installs once into .cuda-toolchain/, exports env
#   cargo build --release --features cuda
#
# Every nvidia-* wheel is pinned to the 13.0 line: an unpinned nvidia-nvvm pulls 13.5, whose
# PTX (ISA 9.5) a CUDA 13.0 driver (580.x) cannot load. The -cu12 wheels ship no working nvcc.
# CUDA_COMPUTE_CAP picks the GPU generation the kernels are compiled for (default 80: Ampere and
# newer run it; set 90 for Hopper-only builds, 89 for Ada, 86 for RTX 30xx).
set -euo pipefail
cd "$(dirname "$0")/.."
DEST="${CELLTEXT_CUDA_DIR:-$PWD/.cuda-toolchain}"
PYTHON="${PYTHON:-python3}"
ROOT="$DEST/nvidia/cu13"
if [[ ! -x "$ROOT/bin/nvcc" ]]; then
    echo "installing the CUDA 13.0 toolchain wheels into $DEST ..." >&2
    "$PYTHON" -m pip install --quiet --disable-pip-version-check --no-deps --target "$DEST" \
        nvidia-cuda-nvcc==13.0.88 nvidia-nvvm==13.0.88 nvidia-cuda-crt==13.0.88 \
        nvidia-cuda-runtime==13.0.96 nvidia-cuda-cccl==13.0.85 >&2
fi
# The runtime wheel ships libcudart.so.13 only; the linker wants libcudart.so, and the build
# scripts look in lib64.
ln -sfn libcudart.so.13 "$ROOT/lib/libcudart.so"
[[ -e "$ROOT/lib64" ]] || ln -s lib "$ROOT/lib64"

# Link stubs. candle links cudarc against the driver (libcuda), NVRTC, cuBLAS, cuBLASLt and
# cuRAND; a build machine needs only their symbols, as NVIDIA's own lib/stubs provide, not the
# 600 MB of real libraries. The symbol names come from cudarc's bindings (the version in
# Cargo.lock); each stub carries the real library's soname, so the binary loads the user's CUDA
# libraries at run time.
STUBS="$ROOT/lib/stubs"
if [[ ! -f "$STUBS/.complete" ]]; then
    cargo fetch --locked --quiet >&2
    CUDARC="$(cargo metadata --locked --features cuda --format-version 1 2>/dev/null | "$PYTHON" -c '
import json, sys, os
m = json.load(sys.stdin)
print(next(os.path.dirname(p["manifest_path"]) for p in m["packages"] if p["name"] == "cudarc"))')"
    mkdir -p "$STUBS"
    "$PYTHON" - "$CUDARC/src" "$STUBS" <<'PY'
import re, subprocess, sys
from pathlib import Path
src, out = Path(sys.argv[1]), Path(sys.argv[2])
libs = [("driver", "cu", "libcuda.so", "libcuda.so.1"),
        ("nvrtc", "nvrtc", "libnvrtc.so", "libnvrtc.so.13"),
        ("cublas", "cublas", "libcublas.so", "libcublas.so.13"),
        ("cublaslt", "cublasLt", "libcublasLt.so", "libcublasLt.so.13"),
        ("curand", "curand", "libcurand.so", "libcurand.so.10")]
for mod, prefix, name, soname in libs:
    text = (src / mod / "sys" / "mod.rs").read_text()
    syms = sorted({s for s in re.findall(r"\bfn ([A-Za-z_]\w*)\s*\(", text)
                   if s.startswith(prefix) and (prefix != "cublas" or not s.startswith("cublasLt"))})
    c = out / f"{mod}.c"
    c.write_text("".join(f"void {s}(void) {{}}\n" for s in syms))
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(out / name), f"-Wl,-soname,{soname}", str(c)], check=True)
    print(f"stub {name} ({soname}): {len(syms)} symbols", file=sys.stderr)
PY
    touch "$STUBS/.complete"
fi
"$ROOT/bin/nvcc" --version | tail -n 2 >&2
cat <<ENV
export CUDA_HOME="$ROOT" CUDA_PATH="$ROOT" CUDA_ROOT="$ROOT"
export PATH="$ROOT/bin:\$PATH"
export LIBRARY_PATH="$ROOT/lib:$STUBS\${LIBRARY_PATH:+:\$LIBRARY_PATH}"
export CUDA_COMPUTE_CAP="\${CUDA_COMPUTE_CAP:-80}"
export CUDAFORGE_THREADS="\${CUDAFORGE_THREADS:-$(nproc)}"
ENV
