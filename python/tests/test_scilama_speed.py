"""benches/scilama_speed.py's arithmetic and flow, with stand-ins for both tools (no torch here):
the per-epoch time is the difference of two runs over their epoch difference, the reference's
comes from its summary's seconds, the genes of celltext's first run go to the reference, and the
recorded command holds no absolute path."""

from __future__ import annotations

import importlib.util
import json
import os
import stat
import sys

import pytest
from conftest import REPO


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("scilama_speed", REPO / "benches" / "scilama_speed.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def executable(path, text):
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_per_epoch_and_command_line(bench):
    assert bench.per_epoch({2: 10.0, 8: 40.0}, 2, 8) == 5.0
    line = bench.command_line(["--h5ad", "/x/y/cells/pbmc3k_seurat/data.h5ad", "--store", "/s/store",
                               "--ref-python=/v/bin/python", "--work", "/scratch/w", "--out", "benches/results/r.json",
                               "--epochs", "2,8"])
    assert line == ("python3 benches/scilama_speed.py --h5ad DATA/cells/pbmc3k_seurat/data.h5ad --store STORE "
                    "--ref-python=venv-ref/bin/python --work WORK --out benches/results/r.json --epochs 2,8")


def test_flow_with_stand_ins(bench, tmp_path, monkeypatch):
    calls = tmp_path / "calls.txt"
    # celltext: `scilama train ... -o X.npy` writes X.scilama_genes.genes.tsv; `genes export` writes --out
    fake_bin = executable(tmp_path / "celltext", f"""#!{sys.executable}
import sys
a = sys.argv[1:]
open({str(calls)!r}, "a").write(" ".join(a) + "\\n")
if a == ["--version"]:
    print("celltext 9.9.9")
elif "train" in a:
    import time
    time.sleep(0.02 * int(a[a.index("--epochs") + 1]))  # a longer run takes longer
    out = a[a.index("-o") + 1]
    open(out[:-len(".npy")] + ".scilama_genes.genes.tsv", "w").write("CD3E\\nMS4A1\\nLYZ\\n")
else:
    open(a[a.index("--out") + 1], "w").write("parquet")
""")
    # the reference: 10 s a training epoch plus 7 s of setup, reported in its summary line
    fake_py = executable(tmp_path / "python", f"""#!{sys.executable}
import json, sys
a = sys.argv[1:]
open({str(calls)!r}, "a").write(" ".join(a) + "\\n")
assert open(a[a.index("--genes") + 1]).read().split() == ["CD3E", "MS4A1", "LYZ"]
e = int(a[a.index("--max-epochs") + 1])
print("log line")
print(json.dumps({{"seconds": 7.0 + 10.0 * e, "genes_used": 3, "epochs_run": e, "torch": "t", "threads": 2}}))
""")
    out = tmp_path / "r.json"
    argv = ["scilama_speed.py", "--h5ad", str(tmp_path / "d" / "data.h5ad"), "--store", str(tmp_path / "s"),
            "--bin", fake_bin, "--ref-python", fake_py, "--work", str(tmp_path / "w"), "--out", str(out)]
    monkeypatch.setattr("sys.argv", argv)
    bench.main()
    r = json.load(open(out))
    assert r["reference_per_epoch"] == 10.0
    assert r["celltext"] == "celltext 9.9.9"
    assert r["reference_epochs_run"] == {"2": 2, "8": 8}
    assert r["celltext_genes"] == 3 and r["reference_genes"] == 3
    assert r["celltext_per_epoch"] > 0 and r["speedup"] > 0
    assert not any(w.startswith("/") for w in r["command"].split()[2:] if "=" not in w)
    lines = calls.read_text().splitlines()
    assert sum("train" in l and "--epochs 2 " in l for l in lines) == 1
    assert sum("train" in l and "--epochs 8 " in l for l in lines) == 1
    assert sum("--max-epochs" in l for l in lines) == 2


def test_refusals(bench, tmp_path, monkeypatch):
    base = ["scilama_speed.py", "--h5ad", "h", "--store", "s", "--ref-python", "p", "--work", str(tmp_path / "w")]
    for extra in (["--epochs", "8,2", "--out", "o.json"], ["--epochs", "x", "--out", "o.json"],
                  ["--out", str(tmp_path / "w" / "o.json")], ["--out", "h"]):
        monkeypatch.setattr("sys.argv", base + extra)
        with pytest.raises(SystemExit):
            bench.main()
    assert not os.path.exists(tmp_path / "w")
