"""celltext.tl.scilama against `celltext scilama train` on the bundled 60 pbmc3k cells × 400
genes with a seeded random 8-dim store: the same cell embeddings, split, gene embeddings and
losses for the same seed; the model file it writes is one `scilama embed` accepts; covariates
round trip; bad input is refused by name."""

from __future__ import annotations

import json
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

import celltext
from conftest import REPO, run_cli, write_store

DATA = REPO / "tests" / "data" / "pbmc3k_sub" / "dense.h5ad"
# tiny settings so that a run takes about a second; the same for the CLI and Python
SMALL = {"hvg": 200, "hidden": (32, 16), "latent": 8, "epochs": 2, "batch_size": 16}


def _cli_flags(mode: str, batch_key, covariate_key) -> list:
    flags = ["--hvg", "200", "--hidden", "32,16", "--latent", "8", "--epochs", "2",
             "--batch-size", "16", "--mode", mode]
    for k in [batch_key] if batch_key else []:
        flags += ["--batch-key", k]
    for k in [covariate_key] if covariate_key else []:
        flags += ["--covariate-key", k]
    return flags


@pytest.fixture()
def cells():
    import anndata as ad

    a = ad.read_h5ad(DATA)
    a.obs["platform"] = [f"p{i % 3 + 1}" for i in range(a.n_obs)]
    a.obs["depth"] = np.asarray(a.X.sum(axis=1)).ravel().astype(np.float64)
    return a


@pytest.fixture()
def store(tmp_path: Path, cells) -> Path:
    """Vectors for the first 300 of the dataset's genes plus 5 it lacks (seeded)."""
    genes = list(cells.var_names[:300]) + [f"NOTAGENE{i}" for i in range(5)]
    rng = np.random.default_rng(5)
    prefix = tmp_path / "store"
    write_store(prefix, genes, (rng.random((len(genes), 8)) - 0.5).astype(np.float32))
    return prefix


def _read_safetensors(path: Path) -> dict:
    """Tensors of a safetensors file (F32 only), read with NumPy, independent of celltext."""
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        out[name] = np.frombuffer(raw[8 + n + a : 8 + n + b], dtype="<f4").reshape(t["shape"])
    return out


def _losses(path: Path) -> dict:
    lines = path.read_text().splitlines()
    cols = lines[0].split("\t")
    rows = [line.split("\t") for line in lines[1:]]
    return {c: [r[i] for r in rows] for i, c in enumerate(cols)}


@pytest.mark.parametrize(
    "mode,batch_key,covariate_key",
    [("stepwise", "platform", "depth"), ("direct", None, None)],
)
def test_equals_the_cli(cli, tmp_path, cells, store, mode, batch_key, covariate_key):
    import anndata as ad

    inp = tmp_path / "cells.h5ad"
    cells.write_h5ad(inp)
    out = tmp_path / "cli.h5ad"
    run_cli(cli, "scilama", "train", "-i", str(inp), "--genes", str(store), "-o", str(out),
            *_cli_flags(mode, batch_key, covariate_key))
    want = ad.read_h5ad(out)

    model = tmp_path / "py_model.safetensors"
    genes = celltext.tl.scilama(cells, str(store), batch_key=batch_key,
                                covariate_key=covariate_key, mode=mode, seed=0,
                                model_path=model, progress=False, **SMALL)
    got = cells.obsm["X_scilama"]
    assert got.shape == (60, 8) and got.dtype == np.float32
    np.testing.assert_allclose(got, want.obsm["X_scilama"], rtol=0, atol=1e-6)
    assert list(cells.obs["scilama_split"].astype(str)) == list(
        want.obs["scilama_split"].astype(str)
    )
    assert (cells.obs["scilama_split"] == "val").sum() == 6  # 10% of 60 cells

    # contextual gene embeddings: the CLI's gene store, same genes in the same order
    cli_genes = (tmp_path / "cli.scilama_genes.genes.tsv").read_text().split()
    cli_mu = _read_safetensors(tmp_path / "cli.scilama_genes.safetensors")["embeddings"]
    assert list(genes.index) == cli_genes and len(cli_genes) == 200
    np.testing.assert_allclose(genes.to_numpy(), cli_mu, rtol=0, atol=1e-6)
    varm = cells.varm["X_scilama"]
    rows = [list(cells.var_names).index(g) for g in cli_genes]
    np.testing.assert_array_equal(varm[rows], genes.to_numpy())
    assert np.isnan(np.delete(varm, rows, axis=0)).all()

    # losses per epoch, as the CLI's table prints them
    uns = cells.uns["scilama"]
    table = _losses(tmp_path / "cli.scilama_losses.tsv")
    assert list(uns["losses"]["step"]) == table["step"]
    for col in ("kl_weight", "train_loss", "train_recon", "train_kl", "val_loss"):
        np.testing.assert_allclose(
            uns["losses"][col], np.array(table[col], dtype=np.float64), rtol=1e-6
        )
    assert list(uns["genes"]) == cli_genes

    # the model parameters equal the CLI's, and `scilama embed` projects the training cells
    # through the model file Python wrote onto the same embeddings
    mine = _read_safetensors(model)
    theirs = _read_safetensors(tmp_path / "cli.scilama_model.safetensors")
    assert sorted(mine) == sorted(theirs)
    for k in theirs:
        np.testing.assert_array_equal(mine[k], theirs[k], err_msg=k)
    emb = tmp_path / "embedded.h5ad"
    run_cli(cli, "scilama", "embed", "--model", str(model), "-i", str(inp), "-o", str(emb))
    np.testing.assert_allclose(ad.read_h5ad(emb).obsm["X_scilama"], got, rtol=0, atol=1e-5)


def test_covariates_round_trip_and_sparse_equals_dense(tmp_path, cells, store):
    dense = cells.copy()
    out = celltext.tl.scilama(cells, str(store), batch_key="platform", covariate_key="depth",
                              seed=3, progress=False, copy=True, **SMALL)
    assert "X_scilama" not in cells.obsm  # copy=True leaves the input alone
    cov = out.uns["scilama"]["covariates"]
    assert list(cov["categorical"]["0"]["categories"]) == ["p1", "p2", "p3"]
    depth = cells.obs["depth"].to_numpy()
    assert cov["continuous"]["0"]["key"] == "depth"
    np.testing.assert_allclose(cov["continuous"]["0"]["mean"], depth.mean(), rtol=1e-12)
    np.testing.assert_allclose(cov["continuous"]["0"]["std"], depth.std(), rtol=1e-12)
    assert out.uns["scilama"]["params"]["batch_key"].tolist() == ["platform"]
    # everything it records is data that h5ad stores
    import anndata as ad

    out.write_h5ad(tmp_path / "back.h5ad")
    back = ad.read_h5ad(tmp_path / "back.h5ad")
    np.testing.assert_array_equal(back.obsm["X_scilama"], out.obsm["X_scilama"])
    assert list(back.uns["scilama"]["covariates"]["categorical"]["0"]["categories"]) == [
        "p1", "p2", "p3"
    ]
    assert list(back.obs["scilama_split"]) == list(out.obs["scilama_split"])

    dense.X = np.asarray(dense.X.toarray() if sp.issparse(dense.X) else dense.X)
    sparse = dense.copy()
    sparse.X = sp.csr_matrix(dense.X)
    for a in (dense, sparse):
        celltext.tl.scilama(a, str(store), batch_key="platform", covariate_key="depth",
                            seed=3, progress=False, **SMALL)
    np.testing.assert_array_equal(dense.obsm["X_scilama"], sparse.obsm["X_scilama"])
    np.testing.assert_array_equal(out.obsm["X_scilama"], dense.obsm["X_scilama"])
    # another seed, other numbers
    assert not np.array_equal(
        celltext.tl.scilama(dense, str(store), seed=4, progress=False, copy=True,
                            **SMALL).obsm["X_scilama"],
        celltext.tl.scilama(dense, str(store), seed=3, progress=False, copy=True,
                            **SMALL).obsm["X_scilama"],
    )


def test_a_genestore_object_and_two_stores(cells, store):
    st = celltext.genes.GeneStore.load(store)
    by_path = celltext.tl.scilama(cells, str(store), progress=False, copy=True, **SMALL)
    by_object = celltext.tl.scilama(cells, st, progress=False, copy=True, **SMALL)
    np.testing.assert_array_equal(by_path.obsm["X_scilama"], by_object.obsm["X_scilama"])
    rng = np.random.default_rng(9)
    other = celltext.genes.GeneStore.from_arrays(
        list(cells.var_names[100:400]), rng.standard_normal((300, 4)).astype(np.float32)
    )
    genes = celltext.tl.scilama(cells, [st, other], fusion="poe", key_added="X_two",
                                progress=False, **{**SMALL, "hvg": 0})
    # the genes in both stores: var 100..299
    assert list(genes.index) == list(cells.var_names[100:300])
    assert cells.obsm["X_two"].shape == (60, 8)
    assert cells.uns["two"]["params"]["fusion"] == "poe"


def test_bad_input_is_refused_by_name(cells, store):
    with pytest.raises(KeyError, match=r"batch_key='batch': obs column 'batch' not found.*"
                                        r"available columns: label, seurat_cluster, platform"):
        celltext.tl.scilama(cells, str(store), batch_key="batch", progress=False, **SMALL)
    with pytest.raises(KeyError, match=r"covariate_key='Depth'.*did you mean 'depth'"):
        celltext.tl.scilama(cells, str(store), covariate_key="Depth", progress=False, **SMALL)
    with pytest.raises(KeyError, match=r"layer='counts': not found in adata.layers"):
        celltext.tl.scilama(cells, str(store), layer="counts", progress=False, **SMALL)
    with pytest.raises(ValueError, match=r"holds text; covariate_key= takes a numeric column "
                                         r"\(for categories such as a batch name use "
                                         r"batch_key='platform'\)"):
        celltext.tl.scilama(cells, str(store), covariate_key="platform", progress=False,
                            **SMALL)
    elsewhere = celltext.genes.GeneStore.from_arrays(
        ["NOTAGENE1", "NOTAGENE2"], np.ones((2, 8), dtype=np.float32)
    )
    with pytest.raises(ValueError, match=r"only 0 dataset gene\(s\) are in the gene store"):
        celltext.tl.scilama(cells, elsewhere, progress=False, **SMALL)
    with pytest.raises(ValueError, match=r"mode"):
        celltext.tl.scilama(cells, str(store), mode="joint", progress=False, **SMALL)
    with pytest.raises(ValueError, match=r"unknown val_latent 'median'; use sample or mean"):
        celltext.tl.scilama(cells, str(store), val_latent="median", progress=False, **SMALL)
    with pytest.raises(ValueError, match=r"val_latent= takes a string, got 1"):
        celltext.tl.scilama(cells, str(store), val_latent=1, progress=False, **SMALL)
    assert "X_scilama" not in cells.obsm


def test_progress_and_ctrl_c_between_epochs(cells, store, capsys):
    celltext.tl.scilama(cells, str(store), progress=True, **SMALL)
    assert "sciLaMA" in capsys.readouterr().err  # the tqdm bar
    # Ctrl-C (here: the progress callback raising KeyboardInterrupt) stops the fit at the next
    # epoch instead of at the end of training
    seen = []

    def interrupt(done, total):
        seen.append((done, total))
        if len(seen) == 2:
            raise KeyboardInterrupt

    from celltext import _adata, _celltext

    m = _adata.matrix(cells)
    with pytest.raises(KeyboardInterrupt):
        _celltext.scilama_train(
            m.indptr, m.indices, m.data, m.n_rows, _adata.cell_names(cells),
            _adata.gene_names(cells), [("store", celltext.genes.GeneStore.load(store)._inner)],
            [], json.dumps({"hidden": [32, 16], "latent": 8, "epochs": 50, "batch_size": 16}),
            [], [], progress=interrupt,
        )
    assert seen == [(1, 50), (2, 50)]


def test_categories_are_spelled_as_the_cli_reads_them(cli, tmp_path, cells, store):
    """Float, bool and integer-named batch columns: a model trained in Python embeds the same
    AnnData written to disk through `scilama embed` (the categories spelled as the CLI reads
    them from the h5ad: ``1.0`` -> ``1``, ``0.5`` stays)."""
    import anndata as ad
    import pandas as pd

    code = np.arange(cells.n_obs) % 3
    cells.obs["plate"] = pd.Categorical(np.array([1.0, 2.0, 0.5])[code])
    cells.obs[0] = pd.Categorical(code == 0)  # an integer column name, bool categories
    inp = tmp_path / "cells.h5ad"
    for key, want in (("plate", ["0.5", "1", "2"]), (0, ["False", "True"])):
        model = tmp_path / f"m{key}.safetensors"
        celltext.tl.scilama(cells, str(store), batch_key=key, seed=0, model_path=model,
                            progress=False, **SMALL)
        cats = cells.uns["scilama"]["covariates"]["categorical"]["0"]["categories"]
        assert list(cats) == want
        written = cells.copy()
        written.obs.columns = written.obs.columns.astype(str)
        written.write_h5ad(inp)
        out = tmp_path / f"e{key}.h5ad"
        run_cli(cli, "scilama", "embed", "--model", str(model), "-i", str(inp), "-o", str(out))
        np.testing.assert_allclose(ad.read_h5ad(out).obsm["X_scilama"],
                                   cells.obsm["X_scilama"], rtol=0, atol=1e-5)


def test_missing_batches_are_refused_and_non_counts_warned(cells, store, caplog):
    import pandas as pd

    cells.obs["plate"] = pd.Categorical(
        [None if i in (3, 8) else f"p{i % 2}" for i in range(cells.n_obs)]
    )
    with pytest.raises(ValueError, match=r"obs column `plate` \(batch_key=\) has no value "
                                         r"\(missing, empty or NaN\) for 2 of 60 cells"):
        celltext.tl.scilama(cells, str(store), batch_key="plate", progress=False, **SMALL)
    cells.obs["plate"] = np.nan
    with pytest.raises(ValueError, match=r"holds no value for any of its 60 cells"):
        celltext.tl.scilama(cells, str(store), batch_key="plate", progress=False, **SMALL)
    assert "X_scilama" not in cells.obsm
    cells.X = cells.X * 0.5
    with caplog.at_level("WARNING", logger="celltext"):
        celltext.tl.scilama(cells, str(store), progress=False, **SMALL)
    assert "non-integer values" in caplog.text and "layer='counts'" in caplog.text
