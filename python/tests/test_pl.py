"""Issue 29: celltext.pl draws with matplotlib and returns the axes, like scanpy's pl; the
pictures hold the numbers (checked against scikit-learn and the tl functions)."""

from __future__ import annotations

import numpy as np
import pytest

import celltext

mpl = pytest.importorskip("matplotlib")


@pytest.fixture()
def classified(pbmc):
    rng = np.random.default_rng(0)
    codes = pbmc.obs["label"].cat.codes.to_numpy()
    emb = rng.standard_normal((pbmc.n_obs, 16)).astype(np.float32)
    emb[np.arange(pbmc.n_obs), codes] += 1.5
    pbmc.obsm["X_emb"] = emb
    pbmc.obsm["X_noise"] = rng.standard_normal((pbmc.n_obs, 16)).astype(np.float32)
    celltext.tl.knn_classify(pbmc, "label", use_rep="X_emb", k=10)
    celltext.tl.knn_classify(pbmc, "label", use_rep="X_noise", k=10, key_added="knn_noise")
    return pbmc


def test_confusion_matches_sklearn(classified):
    sk = pytest.importorskip("sklearn.metrics")
    from matplotlib.axes import Axes

    a = classified
    ax = celltext.pl.confusion(a, "label", "celltext_knn_pred", normalize=False)
    assert isinstance(ax, Axes)
    test = (a.obs["celltext_knn_split"] == "test").to_numpy()
    cats = list(a.obs["label"].cat.categories)
    want = sk.confusion_matrix(a.obs["label"][test], a.obs["celltext_knn_pred"][test],
                               labels=cats)
    np.testing.assert_array_equal(np.asarray(ax.images[0].get_array()), want)
    assert [t.get_text() for t in ax.get_yticklabels()] == cats
    ax = celltext.pl.confusion(a, "label", "celltext_knn_pred")
    rows = np.asarray(ax.images[0].get_array())
    np.testing.assert_allclose(rows, want / want.sum(axis=1, keepdims=True), atol=1e-12)
    ax = celltext.pl.confusion(a, "label", "celltext_knn_pred", split=None)
    assert np.asarray(ax.images[0].get_array()).shape == (len(cats), len(cats))
    mpl.pyplot.close("all")


def test_k_sweep_lines_are_the_knn_scores(classified):
    ks = [1, 5, 20]
    ax = celltext.pl.k_sweep(classified, "label", use_rep="X_emb", ks=ks,
                             metrics=("accuracy", "macro_f1"))
    acc, f1 = (np.asarray(line.get_ydata()) for line in ax.get_lines())
    for i, k in enumerate(ks):
        m = celltext.tl.knn_classify(classified, "label", use_rep="X_emb", k=k, copy=True)
        m = m.uns["celltext_knn"]["metrics"]
        assert acc[i] == m["accuracy"] and f1[i] == m["macro_f1"]
    assert ax.get_xscale() == "log"
    with pytest.raises(ValueError, match="ks="):
        celltext.pl.k_sweep(classified, "label", use_rep="X_emb", ks=[0, 3])
    mpl.pyplot.close("all")


def test_sources_bars_are_the_stored_metrics(classified):
    ax = celltext.pl.sources(classified, metric="macro_f1")
    heights = [b.get_height() for b in ax.patches]
    assert heights == [
        classified.uns["celltext_knn"]["metrics"]["macro_f1"],
        classified.uns["knn_noise"]["metrics"]["macro_f1"],
    ]
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert "X_emb" in labels[0] and "X_noise" in labels[1]
    fig, axes = mpl.pyplot.subplots(1, 2)
    assert celltext.pl.sources(classified, keys=["knn_noise"], ax=axes[1]) is axes[1]
    with pytest.raises(KeyError, match="keys="):
        celltext.pl.sources(classified, keys=["nope"])
    mpl.pyplot.close("all")


def test_confusion_errors_name_the_argument(classified):
    with pytest.raises(KeyError, match="pred='nope'"):
        celltext.pl.confusion(classified, "label", "nope")
    classified.obs["mine"] = classified.obs["label"]
    with pytest.raises(KeyError, match="split='test'.*split=None"):
        celltext.pl.confusion(classified, "label", "mine")
    ax = celltext.pl.confusion(classified, "label", "mine", split=None)
    m = np.asarray(ax.images[0].get_array())
    np.testing.assert_allclose(np.diag(m)[m.sum(axis=1) > 0], 1.0)
    mpl.pyplot.close("all")
