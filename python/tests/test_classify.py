"""tl.knn_classify equals `celltext classify --method knn`; metrics equal scikit-learn's."""

from __future__ import annotations

import json

import numpy as np
import pytest

import celltext
from conftest import PBMC, run_cli


def test_knn_equals_cli(cli, tmp_path, pbmc):
    rng = np.random.default_rng(0)
    emb = rng.standard_normal((pbmc.n_obs, 16)).astype(np.float32)
    # make the labels learnable: a class offset in the first dimensions
    codes = pbmc.obs["label"].cat.codes.to_numpy()
    emb[np.arange(pbmc.n_obs), codes] += 2.0
    np.save(tmp_path / "emb.npy", emb)
    out = run_cli(cli, "--json", "classify", "-i", str(PBMC), "--embedding-file",
                  str(tmp_path / "emb.npy"), "--label", "label", "--k", "10")
    want = json.loads(out)
    pbmc.obsm["X_emb"] = emb
    got = celltext.tl.knn_classify(pbmc, "label", use_rep="X_emb", k=10)
    classes = got.pop("classes")
    assert got == want["results"][0]["test"]
    assert [classes[i] for i in range(len(classes))] == [
        sorted(set(pbmc.obs["label"]))[i] for i in got["labels"]
    ]
    test = np.flatnonzero(pbmc.obs["celltext_knn_split"].to_numpy() == "test").tolist()
    assert test == want["manifest"]["split"]["test"]
    assert got["accuracy"] > 0.5
    conf = pbmc.obs["celltext_knn_conf"].to_numpy()
    assert ((conf > 0) & (conf <= 1)).all()


def test_mlp_equals_cli(cli, tmp_path, pbmc):
    rng = np.random.default_rng(1)
    codes = pbmc.obs["label"].cat.codes.to_numpy()
    emb = rng.standard_normal((pbmc.n_obs, 8)).astype(np.float32)
    emb[np.arange(pbmc.n_obs), codes % 8] += 1.5
    np.save(tmp_path / "emb.npy", emb)
    out = run_cli(cli, "--json", "classify", "-i", str(PBMC), "--embedding-file",
                  str(tmp_path / "emb.npy"), "--label", "label", "--method", "mlp",
                  "--epochs", "15", "--hidden", "32")
    want = json.loads(out)
    pbmc.obsm["X_emb"] = emb
    got = celltext.tl.mlp_classify(pbmc, "label", use_rep="X_emb", epochs=15, hidden=[32])
    primary = [r for r in want["results"] if r["primary"]][0]
    got.pop("classes")
    assert got == primary["test"]
    assert pbmc.obs["celltext_mlp_pred"].notna().all()
    pbmc.obsm["X_emb2"] = emb[:, ::-1].copy()
    fused = celltext.tl.mlp_classify(pbmc, "label", use_rep=["X_emb", "X_emb2"], fusion="gated",
                                     epochs=3, copy=True)
    assert "celltext_mlp" in fused.uns


def test_metrics_equal_sklearn():
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(3)
    y_true = rng.choice(["a", "b", "c", "d"], 200).tolist()
    y_pred = [t if rng.random() < 0.6 else rng.choice(["a", "b", "c", "d"]) for t in y_true]
    r = celltext.metrics.classification_report(y_true, y_pred)
    assert r["accuracy"] == pytest.approx(sk.accuracy_score(y_true, y_pred), abs=1e-12)
    assert r["macro_f1"] == pytest.approx(sk.f1_score(y_true, y_pred, average="macro"), abs=1e-12)
    assert celltext.metrics.weighted_f1(y_true, y_pred) == pytest.approx(
        sk.f1_score(y_true, y_pred, average="weighted"), abs=1e-12
    )
    assert celltext.metrics.cohen_kappa(y_true, y_pred) == pytest.approx(
        sk.cohen_kappa_score(y_true, y_pred), abs=1e-12
    )
    cm = sk.confusion_matrix(y_true, y_pred, labels=["a", "b", "c", "d"])
    assert np.array_equal(np.array(r["confusion"]), cm)
    assert r["classes"] == ["a", "b", "c", "d"]
