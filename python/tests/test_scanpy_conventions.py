"""Issue 29: what a scanpy user expects in a notebook. Each test fails on the code before it:
raw=/layer= errors (1), gene coverage (2), predictions in the label's categories and colours
(4) and dtype (5), keys that never collide (7), provenance as data that survives h5ad and zarr."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import celltext
from conftest import write_store


@pytest.fixture()
def store():
    return celltext.GeneStore.from_arrays(["A", "B", "C"], np.eye(3, dtype=np.float32))


def small(genes=("A", "B", "C")):
    a = ad.AnnData(sp.csr_matrix(np.array([[1, 0, 2], [0, 3, 1]], dtype=np.float32)))
    a.var_names = list(genes)
    return a


# 1 -------------------------------------------------------------------------------------------
def test_raw_without_adata_raw_names_the_argument(store):
    a = small()
    calls = {
        "genept_w": lambda: celltext.tl.genept_w(a, store, raw=True),
        "cell_sentences": lambda: celltext.tl.cell_sentences(a, raw=True),
        "top_genes": lambda: celltext.genes.top_genes(a, raw=True),
        "coverage": lambda: store.coverage(a, raw=True),
    }
    for name, call in calls.items():
        with pytest.raises(ValueError, match=r"raw=True but adata\.raw is None; drop raw=True"):
            call()
    assert a.raw is None and "X_celltext_genept_w" not in a.obsm


def test_raw_with_layer_names_both_arguments(store):
    a = small()
    a.layers["counts"] = a.X.copy()
    for with_raw in (False, True):
        if with_raw:
            a.raw = a.copy()
        with pytest.raises(
            ValueError, match=r"raw=True and layer='counts' are mutually exclusive"
        ):
            celltext.tl.genept_w(a, store, raw=True, layer="counts")


def test_missing_layer_names_the_argument(store):
    with pytest.raises(KeyError, match=r"layer='count': not found in adata.layers; available"):
        celltext.tl.genept_w(small(), store, layer="count")


# 2 -------------------------------------------------------------------------------------------
def test_no_gene_mapped_is_an_error():
    ensembl = celltext.GeneStore.from_arrays(
        ["ENSG0001", "ENSG0002"], np.eye(2, dtype=np.float32)
    )
    a = small()
    with pytest.raises(ValueError, match=r"none of the 3 genes of adata.var_names .* gene_symbols_key="):
        celltext.tl.genept_w(a, ensembl)
    assert "X_celltext_genept_w" not in a.obsm


def test_few_genes_mapped_warns_with_the_coverage():
    only_a = celltext.GeneStore.from_arrays(["A"], np.ones((1, 2), dtype=np.float32))
    a = small()
    x = a.X.toarray()
    frac = x[:, 0].sum() / x.sum()  # 1/7: the expression on the one mapped gene
    with pytest.warns(
        celltext.tl.CoverageWarning,
        match=rf"1 of 3 genes .*\(33\.3%\) map onto the store, carrying {frac:.1%} of the "
        r"expression; 1 of 2 cells have no mapped expressed gene",
    ):
        celltext.tl.genept_w(a, only_a)
    cov = a.uns["celltext_genept_w"]["gene_coverage"]
    assert cov["n_mapped"] == 1 and cov["n_genes"] == 3
    assert cov["expression_fraction"] == pytest.approx(frac, abs=1e-6)
    np.testing.assert_allclose(a.obs["celltext_genept_w_coverage"], [1 / 3, 0.0], atol=1e-6)


def test_full_coverage_does_not_warn(store, recwarn):
    celltext.tl.genept_w(small(), store)
    assert not [w for w in recwarn if issubclass(w.category, celltext.tl.CoverageWarning)]


# 4, 5 ----------------------------------------------------------------------------------------
def _clusters(n_per=(30, 30, 2), seed=0):
    """Two well separated classes and a third of 2 cells inside the first: KNN never
    predicts the third."""
    rng = np.random.default_rng(seed)
    centres = np.array([[5.0, 0, 0, 0], [0, 5.0, 0, 0], [5.0, 0, 0, 0]])
    y = np.repeat(np.arange(3), n_per)
    x = centres[y] + rng.standard_normal((len(y), 4)) * 0.3
    a = ad.AnnData(np.zeros((len(y), 1), dtype=np.float32))
    a.obsm["X_e"] = x.astype(np.float32)
    return a, y


def test_prediction_categories_follow_the_label(pbmc):
    a, y = _clusters()
    cats = ["T cell", "B cell", "rare"]  # not sorted: the label's order is kept
    a.obs["cell_type"] = pd.Categorical.from_codes(y, categories=cats)
    a.uns["cell_type_colors"] = np.array(["#ff0000", "#00ff00", "#0000ff"], dtype=object)
    celltext.tl.knn_classify(a, "cell_type", use_rep="X_e", k=5)
    pred = a.obs["celltext_knn_pred"]
    assert "rare" not in set(pred)  # never predicted ...
    assert list(pred.cat.categories) == cats  # ... yet a category, in the label's order
    assert list(a.uns["celltext_knn_pred_colors"]) == list(a.uns["cell_type_colors"])
    # scanpy colours a class by its category index: same index in both columns
    for c in ("T cell", "B cell"):
        assert list(pred.cat.categories).index(c) == cats.index(c)


def test_string_labels_give_sorted_categories_of_every_class():
    a, y = _clusters()
    a.obs["cell_type"] = np.array(["T", "B", "rare"], dtype=object)[y]
    celltext.tl.mlp_classify(a, "cell_type", use_rep="X_e", epochs=5, hidden=[8])
    assert list(a.obs["celltext_mlp_pred"].cat.categories) == ["B", "T", "rare"]


@pytest.mark.parametrize("dtype", [np.int64, np.int32, "Int64"])
def test_integer_labels_give_integer_predictions(dtype):
    a, y = _clusters()
    a.obs["seurat_cluster"] = pd.array(y + 10, dtype=dtype) if dtype == "Int64" else (y + 10).astype(dtype)
    m = celltext.tl.knn_classify(a, "seurat_cluster", use_rep="X_e", k=5)
    pred = a.obs["celltext_knn_pred"]
    assert pred.dtype == a.obs["seurat_cluster"].dtype
    agree = (a.obs["seurat_cluster"] == pred).mean()
    assert agree > 0.9
    test = (a.obs["celltext_knn_split"] == "test").to_numpy()
    assert (a.obs["seurat_cluster"][test] == pred[test]).mean() == pytest.approx(m["accuracy"])
    assert m["classes"] == ["10", "11", "12"][: len(m["classes"])]


# 7 -------------------------------------------------------------------------------------------
def test_knn_and_mlp_keep_their_own_keys():
    a, y = _clusters()
    a.obs["cell_type"] = pd.Categorical.from_codes(y, categories=["T", "B", "rare"])
    knn = celltext.tl.knn_classify(a, "cell_type", use_rep="X_e", k=5)
    knn_pred = a.obs["celltext_knn_pred"].copy()
    mlp = celltext.tl.mlp_classify(a, "cell_type", use_rep="X_e", epochs=5, hidden=[8])
    for key in ("celltext_knn", "celltext_mlp"):
        for col in ("_pred", "_conf", "_split"):
            assert key + col in a.obs
        assert a.uns[key]["method"] == key.split("_")[-1]
    pd.testing.assert_series_equal(a.obs["celltext_knn_pred"], knn_pred)
    assert a.uns["celltext_knn"]["metrics"]["accuracy"] == knn["accuracy"]
    assert a.uns["celltext_mlp"]["metrics"]["accuracy"] == mlp["accuracy"]


# provenance ----------------------------------------------------------------------------------
def _assert_same(a, b, path="uns"):
    if isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), path
        for k in a:
            _assert_same(a[k], b[k], f"{path}[{k!r}]")
    elif isinstance(a, np.ndarray):
        b = np.asarray(b)
        assert a.shape == b.shape, path
        if a.dtype.kind in "fc":
            np.testing.assert_array_equal(a, b, err_msg=path)
        else:
            assert [str(v) for v in a.ravel()] == [str(v) for v in b.ravel()], path
    else:
        assert a == b, path


def _no_json_strings(d, path="uns"):
    for k, v in d.items():
        if isinstance(v, dict):
            _no_json_strings(v, f"{path}[{k!r}]")
        elif isinstance(v, str):
            assert not v.lstrip().startswith(("{", "[")), f"{path}[{k!r}] is a JSON string"


def test_provenance_is_data_that_survives_h5ad_and_zarr(tmp_path, pbmc):
    rng = np.random.default_rng(7)
    genes = [g for g in pbmc.var_names if rng.random() < 0.5]
    write_store(tmp_path / "s", genes, rng.standard_normal((len(genes), 8)).astype(np.float32))
    with pytest.warns(celltext.tl.CoverageWarning):
        celltext.tl.genept_w(pbmc, tmp_path / "s", layer="counts")
    celltext.tl.knn_classify(pbmc, "label")
    celltext.tl.mlp_classify(pbmc, "label", epochs=3, hidden=[16])
    for key in ("celltext_genept_w", "celltext_knn", "celltext_mlp"):
        _no_json_strings(pbmc.uns[key], key)
    cov = pbmc.uns["celltext_genept_w"]["gene_coverage"]
    assert cov["unmatched"]["n"] == cov["n_genes"] - cov["n_mapped"] > 1000
    assert len(cov["unmatched"]["sample"]) == 10 and "all" not in cov["unmatched"]
    assert pbmc.uns["celltext_genept_w"]["params"]["top_n"] == 100
    assert pbmc.uns["celltext_genept_w"]["params"]["layer"] == "counts"
    pbmc.write_h5ad(tmp_path / "a.h5ad")
    back = ad.read_h5ad(tmp_path / "a.h5ad")
    for key in ("celltext_genept_w", "celltext_knn", "celltext_mlp"):
        _assert_same(pbmc.uns[key], back.uns[key], key)
    pytest.importorskip("zarr")
    pbmc.write_zarr(tmp_path / "a.zarr")
    back = ad.read_zarr(tmp_path / "a.zarr")
    for key in ("celltext_genept_w", "celltext_knn", "celltext_mlp"):
        _assert_same(pbmc.uns[key], back.uns[key], key)


def test_full_unmatched_list_on_request(tmp_path, pbmc):
    rng = np.random.default_rng(7)
    genes = [g for g in pbmc.var_names if rng.random() < 0.9]
    write_store(tmp_path / "s", genes, rng.standard_normal((len(genes), 8)).astype(np.float32))
    celltext.tl.genept_w(pbmc, tmp_path / "s", layer="counts", keep_unmatched=True)
    un = pbmc.uns["celltext_genept_w"]["gene_coverage"]["unmatched"]
    full = [str(g) for g in un["all"]]
    assert len(full) == un["n"] and full[:10] == [str(g) for g in un["sample"]]
    assert set(full) <= set(pbmc.var_names) - set(genes)  # independent of the resolver
    cov = celltext.GeneStore.load(tmp_path / "s").coverage(pbmc, layer="counts")
    assert cov["unmatched"] == full


def test_metrics_in_uns_are_arrays_that_match_sklearn():
    sk = pytest.importorskip("sklearn.metrics")
    a, y = _clusters()
    a.obs["cell_type"] = pd.Categorical.from_codes(y, categories=["T", "B", "rare"])
    m = celltext.tl.knn_classify(a, "cell_type", use_rep="X_e", k=5)
    u = a.uns["celltext_knn"]["metrics"]
    test = (a.obs["celltext_knn_split"] == "test").to_numpy()
    classes = [str(c) for c in u["classes"]]
    assert classes == m["classes"]
    want = sk.confusion_matrix(
        a.obs["cell_type"][test].astype(str), a.obs["celltext_knn_pred"][test].astype(str),
        labels=classes,
    )
    assert isinstance(u["confusion"], np.ndarray) and u["confusion"].ndim == 2
    np.testing.assert_array_equal(u["confusion"], want)
    assert [str(c) for c in u["per_class"]["name"]] == classes
