"""tl.genept_w: bit-identical to `celltext cells embed`, for every matrix layout."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import celltext
from conftest import PBMC, run_cli, write_store


@pytest.fixture()
def random_store(tmp_path, pbmc):
    """Random vectors for 80 % of pbmc3k's genes (seeded), as a store on disk."""
    rng = np.random.default_rng(7)
    genes = [g for g in pbmc.var_names if rng.random() < 0.8]
    prefix = tmp_path / "random_store"
    write_store(prefix, genes, rng.standard_normal((len(genes), 32)).astype(np.float32))
    return prefix


@pytest.mark.parametrize(
    "layer,weights,top_n",
    [("counts", "expr", 100), (None, "log1p", 50), ("counts", "zscore", "all")],
)
def test_equals_cli_bit_for_bit(cli, tmp_path, pbmc, random_store, layer, weights, top_n):
    out = tmp_path / "cells.npy"
    args = ["cells", "embed", "-i", str(PBMC), "--genes", str(random_store), "-o", str(out)]
    args += ["--weights", weights, "--top-n", str(top_n)]
    if layer:
        args += ["--layer", layer]
    run_cli(cli, *args)
    celltext.tl.genept_w(pbmc, random_store, layer=layer, weights=weights, top_n=top_n)
    got = pbmc.obsm["X_celltext_genept_w"]
    want = np.load(out)
    assert got.dtype == np.float32 and got.shape == want.shape == (601, 32)
    assert got.tobytes() == want.tobytes()
    assert pbmc.uns["celltext_genept_w"]["params"]["matrix_copied"] is False


def test_minilm_store_equals_cli(cli, minilm, tmp_path, pbmc):
    """Genes embedded with MiniLM by Python and by the CLI give the same store, and GenePT-w on
    it equals the CLI's."""
    genes = celltext.genes.top_genes(pbmc, 5, layer="counts")
    store = celltext.genes.embed(minilm, genes=genes, out=tmp_path / "py_store", progress=False)
    assert len(store) == len(set(genes) & set(celltext.genes.summaries()))
    summaries = tmp_path / "summaries.tsv"
    all_sum = celltext.genes.summaries()
    summaries.write_text(
        "symbol\ttext\n" + "".join(f"{g}\t{all_sum[g]}\n" for g in store.genes)
    )
    run_cli(cli, "genes", "embed", "-m", str(minilm), "--summaries", str(summaries),
            "--out", str(tmp_path / "cli_store"))
    cli_store = celltext.GeneStore.load(tmp_path / "cli_store")
    assert cli_store.genes == store.genes
    assert cli_store.vectors.tobytes() == store.vectors.tobytes()
    out = tmp_path / "cells.npy"
    run_cli(cli, "cells", "embed", "-i", str(PBMC), "--layer", "counts",
            "--genes", str(tmp_path / "cli_store"), "-o", str(out))
    celltext.tl.genept_w(pbmc, store, layer="counts")
    assert pbmc.obsm["X_celltext_genept_w"].tobytes() == np.load(out).tobytes()
    assert store.manifest["model"]["weights_sha256"]


def test_layouts_give_the_same_vectors(pbmc, random_store):
    """CSR float32 (in place), CSC, dense, float64 and int64 indices are all the same matrix."""
    celltext.tl.genept_w(pbmc, random_store, layer="counts")
    want = pbmc.obsm["X_celltext_genept_w"].copy()
    counts = pbmc.layers["counts"]
    variants = {
        "csc": counts.tocsc(),
        "dense": counts.toarray(),
        "f64": counts.astype(np.float64),
        "i64": sp.csr_matrix(
            (counts.data, counts.indices.astype(np.int64), counts.indptr.astype(np.int64)),
            shape=counts.shape,
        ),
    }
    for name, m in variants.items():
        pbmc.layers[name] = m
        res = celltext.tl.genept_w(pbmc, random_store, layer=name, copy=True)
        assert res.obsm["X_celltext_genept_w"].tobytes() == want.tobytes(), name
    assert "X_celltext_genept_w" in pbmc.obsm


def test_obs_and_uns(pbmc, random_store):
    ret = celltext.tl.genept_w(pbmc, random_store, layer="counts", key_added="X_gw")
    assert ret is None
    cov = pbmc.obs["gw_coverage"].to_numpy()
    assert ((cov >= 0) & (cov <= 1)).all() and cov.mean() > 0.5
    assert (pbmc.obs["gw_n_genes"] <= 100).all()
    assert not pbmc.obs["gw_empty"].any()
    assert pbmc.uns["gw"]["params"]["top_n"] == 100


def test_hand_computed():
    """Two cells, three genes: weighted means worked out by hand."""
    import anndata as ad

    x = sp.csr_matrix(np.array([[3.0, 0.0, 1.0], [0.0, 2.0, 2.0]], dtype=np.float32))
    a = ad.AnnData(x)
    a.var_names = ["A", "B", "C"]
    store = celltext.GeneStore.from_arrays(["A", "B", "C"], np.array([[1, 0], [0, 1], [1, 1]]))
    celltext.tl.genept_w(a, store, top_n=1)
    np.testing.assert_array_equal(a.obsm["X_celltext_genept_w"], [[1, 0], [0, 1]])
    celltext.tl.genept_w(a, store)
    np.testing.assert_allclose(a.obsm["X_celltext_genept_w"], [[1.0, 0.25], [0.5, 1.0]])
