"""scripts/scilama-gpu.sh as a CPU dry run (what it trains equals `scilama train` run by hand, its
parity lines, timings and archive) and scripts/npy_diff.py against NumPy (docs/scilama.md,
"On a GPU, in one command")."""

from __future__ import annotations

import subprocess
import tarfile
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, run_cli, write_store

DATA = REPO / "tests" / "data" / "pbmc3k_sub" / "dense.h5ad"
NPY_DIFF = REPO / "scripts" / "npy_diff.py"


def npy_diff(a, b, tmp_path: Path, tol: float = 1e-3):
    pa, pb = tmp_path / "a.npy", tmp_path / "b.npy"
    np.save(pa, a)
    np.save(pb, b)
    r = subprocess.run(["python3", str(NPY_DIFF), "--tol", str(tol), "--label", "t", str(pa), str(pb)],
                       capture_output=True, text=True, check=False)
    return r.returncode, r.stdout + r.stderr


def test_npy_diff_against_numpy(tmp_path):
    a = np.random.default_rng(0).normal(size=(7, 5)).astype(np.float32)
    rc, out = npy_diff(a, a.copy(), tmp_path)
    assert rc == 0 and "7x5, max |diff| 0 " in out and "within 0.001" in out, out
    b = a.copy()
    b[3, 2] += np.float32(0.25)
    rc, out = npy_diff(a, b, tmp_path)
    want = float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max())
    assert rc == 0 and f"max |diff| {want:.3g}" in out and "OVER 0.001" in out, out
    b = a.copy()
    b[0, 0] = np.nan
    rc, out = npy_diff(a, b, tmp_path)
    assert rc == 0 and "NaN" in out and "OVER" in out, out
    rc, out = npy_diff(a, a[:6], tmp_path)
    assert rc == 2 and "shapes differ" in out, out
    rc, out = npy_diff(a.astype(np.float64), a.astype(np.float64), tmp_path)
    assert rc != 0 and "float32 C order expected" in out, out


def test_dry_run_on_the_cpu(cli, tmp_path):
    import anndata as ad

    genes = list(ad.read_h5ad(DATA).var_names[:300])
    store = tmp_path / "store"
    write_store(store, genes, (np.random.default_rng(5).random((300, 8)) - 0.5).astype(np.float32))
    work, archive = tmp_path / "w", tmp_path / "out.tgz"
    r = subprocess.run(
        ["bash", str(REPO / "scripts" / "scilama-gpu.sh"), "--bin", str(cli), "--data", str(DATA),
         "--store", str(store), "--device", "cpu", "--work", str(work), "--name", "sub",
         "--parity-epochs", "1", "--seeds", "3", "--modes", "store,self", "--train-args", "--epochs 2",
         "--out", str(archive)],
        capture_output=True, text=True, cwd=REPO, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    report = (work / "report.txt").read_text()
    assert report.count(", within ") == 2 and "OVER" not in report, report
    rows = [l.split("\t") for l in (work / "timings.tsv").read_text().splitlines()]
    assert [x[0] for x in rows] == ["run", "sub.store.s3", "sub.self.s3"], rows
    assert all(x[1] == "cpu" and float(x[2]) > 0 and x[3] == "2" for x in rows[1:]), rows

    # the script trains what `scilama train` trains with the same options
    by_hand = tmp_path / "hand.npy"
    run_cli(cli, "scilama", "train", "-i", str(DATA), "--genes", str(store), "--gene-input", "self",
            "--seed", "3", "--epochs", "2", "-o", str(by_hand))
    assert (work / "sub.self.s3.npy").read_bytes() == by_hand.read_bytes()

    with tarfile.open(archive) as t:
        names = {Path(n).name for n in t.getnames()}
    assert {"report.txt", "timings.tsv", "sub.store.s3.npy", "sub.self.s3.npy",
            "sub.store.s3.scilama_genes.safetensors"} <= names, names
    assert not [n for n in names if n.endswith(".scilama_model.safetensors")], names


def test_bad_arguments_are_named(cli, tmp_path):
    run = lambda *a: subprocess.run(["bash", str(REPO / "scripts" / "scilama-gpu.sh"), *a],
                                    capture_output=True, text=True, cwd=tmp_path, check=False)
    r = run("--bin", str(cli), "--store", "s")
    assert r.returncode == 2 and "--data" in r.stderr
    r = run("--bin", str(tmp_path / "nothing"), "--data", str(DATA), "--store", "s")
    assert r.returncode == 2 and "does not exist" in r.stderr
    r = run("--bogus")
    assert r.returncode == 2 and "unknown option --bogus" in r.stderr


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-q"]))
