"""Merging scripts/scilama_eval.py results run apart (docs/scilama.md): seeds joined per method,
a seed already present not counted twice, each run's provenance kept, epochs kept beside their
seconds, and the tables printed from the merge (mean ± sd by hand)."""

from __future__ import annotations

import json

import pytest
from conftest import load_script


@pytest.fixture(scope="module")
def ev():
    return load_script("scilama_eval")


def row(seeds, knn, secs, epochs):
    return {"scores": [{"KNN acc": k} for k in knn], "seeds": seeds, "train_seconds": secs, "epochs": epochs}


def test_merge_by_seed_keeps_runs_and_epochs(ev, tmp_path, capsys):
    a = {ev.RUNS: [{"command": "A"}], "baron": {"sciLaMA (store)": row([0], [0.90], [10.0], [[["joint", 100]]])}}
    # The second file repeats seed 0 (ignored) and was written before epochs were recorded.
    b = {"baron": {"sciLaMA (store)": {"scores": [{"KNN acc": 0.5}, {"KNN acc": 0.80}], "seeds": [0, 1],
                                       "train_seconds": [99.0, 30.0]}}}
    c = {ev.RUNS: [{"command": "A"}, {"command": "C"}], "baron": {"sciLaMA (store)": row([2], [0.85], [20.0], [[["joint", 200]]])}}
    files = []
    for i, r in enumerate((a, b, c)):
        files.append(str(tmp_path / f"results.{i}.json"))
        json.dump(r, open(files[-1], "w"))
    m = ev.merge_results(files)
    assert m[ev.RUNS] == [{"command": "A"}, {"command": "C"}]
    r = m["baron"]["sciLaMA (store)"]
    assert r["seeds"] == [0, 1, 2]
    assert [s["KNN acc"] for s in r["scores"]] == [0.90, 0.80, 0.85]
    assert r["train_seconds"] == [10.0, 30.0, 20.0]
    assert r["epochs"] == [[["joint", 100]], None, [["joint", 200]]]
    ev.print_tables(m)
    out = capsys.readouterr().out
    assert "_runs" not in out
    # KNN mean 0.85, sd (ddof 1) 0.05; seconds 20 ± 10; epochs of the two runs that recorded them.
    assert "| sciLaMA (store) | 3 | 0.850 ± 0.050 |" in out
    assert "training 20.000 ± 10.000 s, epochs 100, 200" in out


def test_tables_merged_writes_what_it_prints(ev, tmp_path, monkeypatch, capsys):
    a = {"cellbench": {"PCA-50": row([0], [1.0], [], [])}}
    b = {"cellbench": {"PCA-50": row([1], [0.5], [], [])}}
    files = []
    for i, r in enumerate((a, b)):
        files.append(str(tmp_path / f"results.{i}.json"))
        json.dump(r, open(files[-1], "w"))
    out = tmp_path / "merged.json"
    monkeypatch.setattr("sys.argv", ["scilama_eval.py", "--data", "-", "--human-store", "-", "--mouse-store", "-",
                                     "--tables", *files, "--merged", str(out)])
    ev.main()
    assert json.load(open(out)) == ev.merge_results(files)
    assert "| PCA-50 | 2 | 0.750 ± 0.354 |" in capsys.readouterr().out


def test_merged_never_over_an_input_and_missing_binary_named(ev, tmp_path, monkeypatch):
    f = tmp_path / "results.0.json"
    f.write_text(json.dumps({"cellbench": {"PCA-50": row([0], [1.0], [], [])}}))
    before = f.read_text()
    base = ["scilama_eval.py", "--data", "-", "--human-store", "-", "--mouse-store", "-"]
    monkeypatch.setattr("sys.argv", base + ["--tables", str(f), "--merged", str(f)])
    with pytest.raises(SystemExit, match="is one of the --tables inputs"):
        ev.main()
    assert f.read_text() == before
    monkeypatch.setattr("sys.argv", base + ["--bin", str(tmp_path / "nope"), "--work", str(tmp_path / "w")])
    with pytest.raises(SystemExit, match="no celltext binary there"):
        ev.main()
    assert not (tmp_path / "w").exists()

