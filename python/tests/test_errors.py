"""Bad inputs are Python exceptions with the CLI's messages, never a crash."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp

import celltext
from celltext import _celltext


@pytest.fixture()
def store():
    return celltext.GeneStore.from_arrays(["A", "B", "C"], np.eye(3, dtype=np.float32))


def small(x=None, genes=("A", "B", "C")):
    x = sp.csr_matrix(np.array([[1, 0, 2], [0, 3, 1]], dtype=np.float32)) if x is None else x
    a = ad.AnnData(x)
    a.var_names = list(genes)
    return a


def test_missing_layer(store):
    a = small()
    a.layers["counts"] = a.X.copy()
    with pytest.raises(KeyError, match=r"layer='count': not found in adata.layers; available layers: counts"):
        celltext.tl.genept_w(a, store, layer="count")


def test_missing_obs_key(pbmc):
    pbmc.obsm["X_e"] = np.ones((pbmc.n_obs, 2), dtype=np.float32)
    with pytest.raises(KeyError, match=r"obs column 'Label' not found \(did you mean 'label'"):
        celltext.tl.knn_classify(pbmc, "Label", use_rep="X_e")
    with pytest.raises(KeyError, match=r"obsm\['X_nope'\] not found"):
        celltext.tl.knn_classify(pbmc, "label", use_rep="X_nope")


def test_non_utf8_var_names(store):
    a = small(genes=("A", "B\udcff", "C"))
    with pytest.raises(ValueError, match="var_names: name 1 .* is not valid UTF-8"):
        celltext.tl.genept_w(a, store)


def test_empty_anndata(store):
    a = ad.AnnData(sp.csr_matrix((0, 3), dtype=np.float32))
    a.var_names = ["A", "B", "C"]
    with pytest.raises(ValueError, match=r"empty matrix \(0 cells × 3 genes\)"):
        celltext.tl.genept_w(a, store)
    with pytest.raises(ValueError, match="empty"):
        celltext.tl.cell_sentences(a)


def test_wrong_shapes(store):
    with pytest.raises(ValueError, match="3 gene symbols but vectors has 2 rows"):
        celltext.GeneStore.from_arrays(["A", "B", "C"], np.ones((2, 4)))
    with pytest.raises(ValueError, match="must be 2-D"):
        celltext.GeneStore.from_arrays(["A"], np.ones(4))
    x = small().X
    with pytest.raises(ValueError, match="indptr has 3 entries but the matrix has 5 rows"):
        _celltext.genept_w(x.indptr, x.indices, x.data, 5, [], ["A", "B", "C"], store._inner)
    with pytest.raises(ValueError, match="X is 2 × 3 but there are 1 obs names and 3 var names"):
        _celltext.genept_w(x.indptr, x.indices, x.data, 2, ["a"], ["A", "B", "C"], store._inner)
    with pytest.raises(ValueError, match=r"column index 2 out of range \(n_cols = 2\)"):
        _celltext.genept_w(x.indptr, x.indices, x.data, 2, ["a", "b"], ["A", "B"], store._inner)
    a = small()
    a.obsm["X_e"] = np.ones((2, 2), dtype=np.float32)
    a.obs["l"] = ["x", "x"]
    with pytest.raises(ValueError, match="at least 2"):
        celltext.tl.knn_classify(a, "l", use_rep="X_e")


def test_bad_values(store):
    a = small(sp.csr_matrix(np.array([[1, 0, -2], [0, 3, 1]], dtype=np.float32)))
    with pytest.raises(ValueError, match=r"AnnData: X: negative value -2 at cell 0 \('0'\) gene 2 \('C'\)\. celltext needs non-negative"):
        celltext.tl.genept_w(a, store)
    a = small(sp.csr_matrix(np.array([[1, np.nan, 2], [0, 3, 1]], dtype=np.float32)))
    with pytest.raises(ValueError, match="non-finite value NaN|NaN value"):
        celltext.tl.genept_w(a, store)


def test_duplicate_genes(store):
    with pytest.raises(ValueError, match=r"1 duplicate gene names: 'A' ×2"):
        celltext.tl.genept_w(small(genes=("A", "A", "C")), store)


def test_bad_options(store):
    with pytest.raises(ValueError, match="unknown weights 'exp'"):
        celltext.tl.genept_w(small(), store, weights="exp")
    with pytest.raises(ValueError, match="invalid top-N '0'"):
        celltext.tl.genept_w(small(), store, top_n=0)
    with pytest.raises(ValueError, match="unknown species"):
        celltext.tl.genept_w(small(), store, species="fish")
    with pytest.raises(TypeError, match="store= must be a GeneStore or a store path"):
        celltext.tl.genept_w(small(), 42)


def test_missing_store(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing; a gene store is"):
        celltext.GeneStore.load(tmp_path / "nope")


def test_missing_summaries_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        celltext.genes.embed("minilm", summaries=tmp_path / "nope.tsv")
