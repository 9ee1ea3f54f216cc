"""Shared fixtures: the repository, the bundled pbmc3k subset, the CLI binary and MiniLM.

The CLI is found at ``$CELLTEXT_BIN`` or ``target/release/celltext`` (built by
``cargo test --release``); MiniLM at ``$CELLTEXT_MINILM`` or ``models-local/all-MiniLM-L6-v2``
(``scripts/setup.sh``). Tests that need one of them skip, saying why, when it is missing.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("MPLBACKEND", "Agg")  # celltext.pl draws without a display

REPO = Path(__file__).resolve().parents[2]
PBMC = REPO / "assets" / "data" / "pbmc3k_demo.h5ad"


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


def load_script(name: str):
    """A script of scripts/ (e.g. "knn_loo") imported as a module, for testing its functions."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture()
def pbmc():
    import anndata as ad

    return ad.read_h5ad(PBMC)


@pytest.fixture(scope="session")
def cli() -> Path:
    p = Path(os.environ.get("CELLTEXT_BIN", REPO / "target" / "release" / "celltext"))
    if not p.exists():
        pytest.skip(f"SKIPPED: no celltext binary at {p} (run `cargo build --release` or set CELLTEXT_BIN)")
    return p


@pytest.fixture(scope="session")
def minilm() -> Path:
    p = Path(os.environ.get("CELLTEXT_MINILM", REPO / "models-local" / "all-MiniLM-L6-v2"))
    if not (p / "config.json").exists():
        pytest.skip(f"SKIPPED: no MiniLM at {p} (run `bash scripts/setup.sh` or set CELLTEXT_MINILM)")
    return p


def run_cli(cli: Path, *args: str) -> str:
    r = subprocess.run(
        [str(cli), "--quiet", *args], capture_output=True, text=True, cwd=REPO, check=False
    )
    if r.returncode != 0:
        raise AssertionError(f"celltext {' '.join(args)} failed:\n{r.stderr}")
    return r.stdout


def write_store(prefix: Path, genes, vectors: np.ndarray) -> None:
    """A gene store on disk in the CLI's format (safetensors tensor `embeddings` + genes.tsv +
    manifest), written with NumPy and the safetensors layout, independent of celltext."""
    v = np.ascontiguousarray(vectors, dtype="<f4")
    header = {
        "embeddings": {"dtype": "F32", "shape": list(v.shape), "data_offsets": [0, v.nbytes]}
    }
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(f"{prefix}.safetensors", "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + v.tobytes())
    Path(f"{prefix}.genes.tsv").write_text("".join(g + "\n" for g in genes))
    Path(f"{prefix}.manifest.json").write_text(json.dumps({"model": {"id": "random-test-store"}}))
