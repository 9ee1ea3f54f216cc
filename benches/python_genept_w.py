"""Wall time of `celltext.tl.genept_w` on pbmc3k against `celltext cells embed` minus file I/O.

    python benches/python_genept_w.py [--rounds 10] [--repeat 5] [--store STORE]

Both sides run the top-100 expression-weighted average over `layers['counts']` of the bundled
pbmc3k subset (601 cells × 13,714 genes) with a store of seeded random 384-d vectors for 80 % of
its genes (or --store). The Rust side is `cargo bench --bench genept_w -- --h5ad ...`, which
reads the files once and times the CLI's computation (gene totals, gene mapping, weighted
average); the Python side times the whole `tl.genept_w` call on an AnnData in memory (names,
matrix buffers, computation, writing obsm/obs/uns). Rounds alternate the two sides, each timing
--repeat runs; prints the medians and the median per-round ratio as JSON. Needs
`pip install ./python` and anndata.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anndata as ad
import numpy as np

import celltext

REPO = Path(__file__).resolve().parents[1]
PBMC = REPO / "assets" / "data" / "pbmc3k_demo.h5ad"


def random_store(prefix: Path, genes, dim: int = 384) -> None:
    """A store in the CLI's on-disk format, written with NumPy (safetensors layout)."""
    import struct

    rng = np.random.default_rng(7)
    keep = [g for g in genes if rng.random() < 0.8]
    v = rng.standard_normal((len(keep), dim)).astype("<f4")
    header = {"embeddings": {"dtype": "F32", "shape": list(v.shape), "data_offsets": [0, v.nbytes]}}
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    Path(f"{prefix}.safetensors").write_bytes(struct.pack("<Q", len(h)) + h + v.tobytes())
    Path(f"{prefix}.genes.tsv").write_text("".join(g + "\n" for g in keep))
    Path(f"{prefix}.manifest.json").write_text(json.dumps({"model": {"id": "random"}}))


def rust_bench_binary() -> str:
    """Build `benches/genept_w.rs` (bench profile) and return its executable."""
    out = subprocess.run(
        ["cargo", "bench", "--bench", "genept_w", "--no-run", "--message-format=json"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout
    for line in out.splitlines():
        msg = json.loads(line)
        if msg.get("reason") == "compiler-artifact" and msg.get("executable") and \
                msg["target"]["name"] == "genept_w":
            return msg["executable"]
    raise SystemExit("cargo did not report the genept_w bench executable")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--repeat", type=int, default=5, help="timed runs per side per round")
    p.add_argument("--store", default=None)
    a = p.parse_args()
    adata = ad.read_h5ad(PBMC)
    exe = rust_bench_binary()
    rust_s, py_s, ratios = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        store_path = a.store or str(Path(tmp) / "store")
        if a.store is None:
            random_store(Path(store_path), list(adata.var_names))
        store = celltext.GeneStore.load(store_path)
        celltext.tl.genept_w(adata, store, layer="counts")  # warm-up
        # rounds alternate the two sides, so both see the same machine load
        for _ in range(a.rounds):
            cmd = [exe, "--h5ad", str(PBMC), "--layer", "counts", "--store", store_path,
                   "--repeat", str(a.repeat)]
            out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=True).stdout
            rust = json.loads(out.strip().splitlines()[-1])
            secs = []
            for _ in range(a.repeat):
                t = time.perf_counter()
                celltext.tl.genept_w(adata, store, layer="counts")
                secs.append(time.perf_counter() - t)
            rust_s.append(rust["median_seconds"])
            py_s.append(statistics.median(secs))
            ratios.append(py_s[-1] / rust_s[-1])
    print(json.dumps({
        "command": " ".join(["python", "benches/python_genept_w.py", *sys.argv[1:]]),
        "cells": rust["cells"], "genes": rust["genes"], "dim": rust["dim"],
        "rounds": a.rounds, "repeat": a.repeat, "threads": rust["threads"],
        "cli_minus_io_median_s": statistics.median(rust_s),
        "python_tl_genept_w_median_s": statistics.median(py_s),
        "ratio_python_over_cli_median": statistics.median(ratios),
        "ratio_per_round": [round(r, 3) for r in ratios],
    }, indent=1))


if __name__ == "__main__":
    main()
