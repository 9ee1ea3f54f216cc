#!/usr/bin/env python
"""Build celltext's small real-data test fixtures and the demo asset from pbmc3k_seurat.

Usage (from the repository root):
    python3 tests/data/make_test_data.py --src DATA/cells/pbmc3k_seurat

Needs numpy, scipy, pandas, anndata (0.12), h5py. Deterministic: no random choices.
Writes:
  tests/data/pbmc3k_small/        ~300 cells (all 9 labels), genes expressed in them:
      matrix.mtx.gz genes.tsv cells.tsv   cells × genes MTX layout (cells x genes, raw UMI)
      data.h5ad                           layers['counts'] CSR (raw UMI), X = log1p(CP10k) CSR, obs label categorical
  tests/data/pbmc3k_sub/          the first 60 of those cells x the 400 most-detected genes:
      csc.h5ad                            X = counts as CSC
      dense.h5ad                          X = counts as a dense array
      tenx/                               10x layout: matrix.mtx.gz (genes x cells), features.tsv.gz, barcodes.tsv.gz
  tests/data/pbmc3k_dense.csv     20 cells x 50 genes of counts (cell_id column + gene header)
  tests/data/malformed/           broken copies of a 6 x 10 real block (see README.md)
  assets/data/pbmc3k_demo.h5ad    ~600 cells stratified by label, all genes
"""
import argparse
import gzip
import io
import os
import shutil
import sys

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import scipy.io
import scipy.sparse as sp

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(ROOT, "tests", "data")
ASSETS = os.path.join(ROOT, "assets", "data")


def load(src):
    m = scipy.io.mmread(os.path.join(src, "matrix.mtx.gz")).tocsr().astype(np.float32)
    genes = [l.rstrip("\n") for l in open(os.path.join(src, "genes.tsv"))]
    cells = pd.read_csv(os.path.join(src, "cells.tsv"), sep="\t", dtype=str, keep_default_na=False)
    assert m.shape == (len(cells), len(genes)), (m.shape, len(cells), len(genes))
    return m, genes, cells


def stratified_first(labels, total, minimum, keep_whole=()):
    """First-in-file-order cells per label: quota proportional to label size, at least `minimum`
    (or the whole label), whole labels for `keep_whole`. Returns sorted row indices."""
    labels = np.asarray(labels)
    counts = pd.Series(labels).value_counts()
    whole = {l for l in keep_whole if l in counts}
    rest_total = total - sum(counts[l] for l in whole)
    rest_n = sum(counts[l] for l in counts.index if l not in whole)
    picked = []
    for lab, n in counts.items():
        if lab in whole:
            q = n
        else:
            q = min(n, max(minimum, int(round(rest_total * n / rest_n))))
        picked.extend(np.flatnonzero(labels == lab)[:q].tolist())
    return np.array(sorted(picked))


def write_mtx_gz(path, m, field="integer"):
    """MatrixMarket coordinate, entries sorted by column then row (like the full data sets' cells × genes MTX files)."""
    coo = m.tocoo()
    order = np.lexsort((coo.row, coo.col))
    r, c, v = coo.row[order] + 1, coo.col[order] + 1, coo.data[order]
    buf = io.StringIO()
    buf.write(f"%%MatrixMarket matrix coordinate {field} general\n")
    buf.write(f"{m.shape[0]} {m.shape[1]} {len(v)}\n")
    if field == "integer":
        for a, b, x in zip(r, c, v):
            buf.write(f"{a} {b} {int(x)}\n")
    else:
        for a, b, x in zip(r, c, v):
            buf.write(f"{a} {b} {float(x)!r}\n")
    with gzip.GzipFile(path, "wb", mtime=0) as f:
        f.write(buf.getvalue().encode())


def write_lines(path, lines, gz=False):
    data = "".join(l + "\n" for l in lines).encode()
    if gz:
        with gzip.GzipFile(path, "wb", mtime=0) as f:
            f.write(data)
    else:
        with open(path, "wb") as f:
            f.write(data)


def log1p_cp10k(counts):
    x = counts.astype(np.float64).tocsr(copy=True)
    lib = np.asarray(x.sum(axis=1)).ravel()
    lib[lib == 0] = 1
    x = sp.diags(1e4 / lib) @ x
    x.data = np.log1p(x.data)
    return sp.csr_matrix(x.astype(np.float32))


def make_adata(counts, genes, obs, x=None):
    a = ad.AnnData(
        X=log1p_cp10k(counts) if x is None else x,
        obs=obs,
        var=pd.DataFrame(index=pd.Index(genes, name=None)),
    )
    a.layers["counts"] = sp.csr_matrix(counts)
    return a


def obs_frame(cells):
    obs = cells.set_index("cell_id").copy()
    obs.index.name = None
    obs["label"] = pd.Categorical(obs["label"])
    if "seurat_cluster" in obs:
        obs["seurat_cluster"] = obs["seurat_cluster"].astype(int)
    return obs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", required=True, help="the pbmc3k_seurat data set directory (DATA/cells/pbmc3k_seurat)")
    args = ap.parse_args()
    m, genes, cells = load(args.src)
    labels = cells["label"].to_numpy()

    # ------------------------------------------------------------------ pbmc3k_small (~300 cells)
    rows = stratified_first(labels, 300, minimum=10)
    sub = m[rows]
    keep = np.flatnonzero(np.asarray((sub > 0).sum(axis=0)).ravel() > 0)
    sub = sub[:, keep].tocsr()
    sub.sort_indices()
    s_genes = [genes[j] for j in keep]
    s_cells = cells.iloc[rows].reset_index(drop=True)
    d = os.path.join(DATA, "pbmc3k_small")
    os.makedirs(d, exist_ok=True)
    write_mtx_gz(os.path.join(d, "matrix.mtx.gz"), sub)
    write_lines(os.path.join(d, "genes.tsv"), s_genes)
    s_cells.to_csv(os.path.join(d, "cells.tsv"), sep="\t", index=False)
    a = make_adata(sub, s_genes, obs_frame(s_cells))
    a.write_h5ad(os.path.join(d, "data.h5ad"), compression="gzip")
    repack_shuffle(os.path.join(d, "data.h5ad"))
    print("pbmc3k_small:", sub.shape, "nnz", sub.nnz, "labels", s_cells["label"].value_counts().to_dict())

    # ------------------------------------------------------------------ pbmc3k_sub (60 cells x 400 genes)
    sub_rows = np.arange(60)
    det = np.asarray((sub[sub_rows] > 0).sum(axis=0)).ravel()
    sub_cols = np.sort(np.argsort(-det, kind="stable")[:400])
    small = sub[sub_rows][:, sub_cols].tocsr()
    small.sort_indices()
    sm_genes = [s_genes[j] for j in sub_cols]
    sm_cells = s_cells.iloc[sub_rows].reset_index(drop=True)
    d2 = os.path.join(DATA, "pbmc3k_sub")
    os.makedirs(d2, exist_ok=True)
    obs = obs_frame(sm_cells)
    var = pd.DataFrame(index=pd.Index(sm_genes))
    ad.AnnData(X=sp.csc_matrix(small), obs=obs, var=var).write_h5ad(os.path.join(d2, "csc.h5ad"), compression="gzip")
    ad.AnnData(X=small.toarray(), obs=obs, var=var).write_h5ad(os.path.join(d2, "dense.h5ad"), compression="gzip")
    tenx = os.path.join(d2, "tenx")
    os.makedirs(tenx, exist_ok=True)
    write_mtx_gz(os.path.join(tenx, "matrix.mtx.gz"), small.T.tocsr())
    ens = ensembl_ids(sm_genes, args.src)
    write_lines(os.path.join(tenx, "features.tsv.gz"), [f"{ens[g]}\t{g}\tGene Expression" for g in sm_genes], gz=True)
    write_lines(os.path.join(tenx, "barcodes.tsv.gz"), [f"{c}-1" for c in sm_cells["cell_id"]], gz=True)

    # ------------------------------------------------------------------ dense CSV (20 x 50)
    d_rows = np.arange(20)
    det = np.asarray((sub[d_rows] > 0).sum(axis=0)).ravel()
    d_cols = np.sort(np.argsort(-det, kind="stable")[:50])
    dense = sub[d_rows][:, d_cols].toarray().astype(int)
    df = pd.DataFrame(dense, index=s_cells["cell_id"].iloc[d_rows], columns=[s_genes[j] for j in d_cols])
    df.index.name = "cell_id"
    df.to_csv(os.path.join(DATA, "pbmc3k_dense.csv"))

    # ------------------------------------------------------------------ malformed copies (6 cells x 10 genes)
    mal = os.path.join(DATA, "malformed")
    if os.path.isdir(mal):
        shutil.rmtree(mal)
    os.makedirs(mal)
    b_rows = np.arange(6)
    det = np.asarray((sub[b_rows] > 0).sum(axis=0)).ravel()
    b_cols = np.sort(np.argsort(-det, kind="stable")[:10])
    block = sub[b_rows][:, b_cols].tocsr()
    b_genes = [s_genes[j] for j in b_cols]
    b_cells = s_cells.iloc[b_rows].reset_index(drop=True)

    def shared(name, mat=None, genes_=None, cells_=None, field="integer"):
        dd = os.path.join(mal, name)
        os.makedirs(dd)
        write_mtx_gz(os.path.join(dd, "matrix.mtx.gz"), block if mat is None else mat, field)
        write_lines(os.path.join(dd, "genes.tsv"), b_genes if genes_ is None else genes_)
        (b_cells if cells_ is None else cells_).to_csv(os.path.join(dd, "cells.tsv"), sep="\t", index=False)
        return dd

    shared("ok")
    shared("dim_mismatch", genes_=b_genes[:-1])
    neg = block.astype(np.float32).tocsr(copy=True)
    neg.data[3] = -1
    shared("negative", neg, field="real")
    nan = block.astype(np.float32).tocsr(copy=True)
    nan.data[5] = np.nan
    shared("nan", nan, field="real")
    dup = list(b_genes)
    dup[4] = dup[1]
    shared("dup_genes", genes_=dup)
    dd = shared("empty")
    write_lines(os.path.join(dd, "genes.tsv"), b_genes)
    with gzip.GzipFile(os.path.join(dd, "matrix.mtx.gz"), "wb", mtime=0) as f:
        f.write(f"%%MatrixMarket matrix coordinate integer general\n{block.shape[0]} {block.shape[1]} 0\n".encode())
    # truncated gzip: the 60 x 400 block's stream cut in half
    dd = os.path.join(mal, "truncated_gz")
    os.makedirs(dd)
    full = os.path.join(dd, "full.tmp")
    write_mtx_gz(full, small)
    raw = open(full, "rb").read()
    os.remove(full)
    open(os.path.join(dd, "matrix.mtx.gz"), "wb").write(raw[: len(raw) // 2])
    write_lines(os.path.join(dd, "genes.tsv"), sm_genes)
    sm_cells.to_csv(os.path.join(dd, "cells.tsv"), sep="\t", index=False)
    # h5ad variants
    bobs = obs_frame(b_cells)
    x = block.astype(np.float32).tocsr(copy=True)
    x.data[2] = -3.5
    ad.AnnData(X=x, obs=bobs, var=pd.DataFrame(index=b_genes)).write_h5ad(os.path.join(mal, "negative.h5ad"))
    a = ad.AnnData(X=block.astype(np.float32), obs=bobs, var=pd.DataFrame(index=dup))
    a.var["feature_name"] = b_genes  # unique symbols in a column, as CELLxGENE does
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a.write_h5ad(os.path.join(mal, "dup_genes.h5ad"))
    # unsorted + out-of-range CSR indices (written with h5py directly)
    ok = os.path.join(mal, "ok.h5ad")
    ad.AnnData(X=block.astype(np.float32), obs=bobs, var=pd.DataFrame(index=b_genes)).write_h5ad(ok)
    oor = os.path.join(mal, "index_out_of_range.h5ad")
    shutil.copy(ok, oor)
    with h5py.File(oor, "r+") as f:
        idx = f["X/indices"][:]
        idx[-1] = 10  # == n_genes
        f["X/indices"][:] = idx
    dpl = os.path.join(mal, "duplicate_index.h5ad")
    shutil.copy(ok, dpl)
    with h5py.File(dpl, "r+") as f:
        ip = f["X/indptr"][:]
        idx = f["X/indices"][:]
        a0, a1 = ip[0], ip[1]
        assert a1 - a0 >= 2
        idx[a0 + 1] = idx[a0]
        f["X/indices"][:] = idx
    # a CSV with a negative value
    df2 = df.iloc[:4, :6].copy()
    df2.iloc[2, 3] = -2
    df2.to_csv(os.path.join(mal, "negative.csv"))

    # ------------------------------------------------------------------ demo asset (~600 cells)
    os.makedirs(ASSETS, exist_ok=True)
    drows = stratified_first(labels, 600, minimum=1, keep_whole=("Platelet", "DC"))
    dm = m[drows].tocsr()
    dm.sort_indices()
    dcells = cells.iloc[drows].reset_index(drop=True)
    a = make_adata(dm, genes, obs_frame(dcells))
    a.write_h5ad(os.path.join(ASSETS, "pbmc3k_demo.h5ad"), compression="gzip")
    repack_shuffle(os.path.join(ASSETS, "pbmc3k_demo.h5ad"))
    print("demo:", dm.shape, "nnz", dm.nnz, "labels", dcells["label"].value_counts().to_dict())


def repack_shuffle(path):
    """Rewrite every numeric dataset with the HDF5 shuffle filter + gzip 9 (same data, attributes
    and layout; only the storage filters change) to keep the committed files small."""
    tmp = path + ".repack"
    with h5py.File(path, "r") as src, h5py.File(tmp, "w") as dst:
        def copy_attrs(a, b):
            for k, v in a.attrs.items():
                b.attrs[k] = v

        def walk(g_src, g_dst):
            copy_attrs(g_src, g_dst)
            for name, obj in g_src.items():
                if isinstance(obj, h5py.Group):
                    walk(obj, g_dst.create_group(name))
                else:
                    kw = {}
                    if obj.shape and obj.size > 0:
                        kw = dict(chunks=True, compression="gzip", compression_opts=9)
                        if obj.dtype.kind in "iuf":
                            kw["shuffle"] = True
                    ds = g_dst.create_dataset(name, data=obj[()], dtype=obj.dtype, **kw)
                    copy_attrs(obj, ds)

        walk(src, dst)
    os.replace(tmp, path)


# the gene-info table beside the cells directory: DATA/genes/human_gene_info_orgHsEgDb.tsv
ENSEMBL_REL = os.path.join("..", "..", "genes", "human_gene_info_orgHsEgDb.tsv")


def ensembl_ids(symbols, src):
    """symbol -> first Ensembl id from the gene-info table (symbol itself if none)."""
    out = {s: s for s in symbols}
    table = os.path.join(src, ENSEMBL_REL)
    if os.path.exists(table):
        t = pd.read_csv(table, sep="\t", dtype=str, keep_default_na=False)
        scol = [c for c in t.columns if c.lower() == "symbol"]
        ecol = [c for c in t.columns if "ensembl" in c.lower()]
        if scol and ecol:
            for s, e in zip(t[scol[0]], t[ecol[0]]):
                if s in out and out[s] == s and e:
                    out[s] = e.split("|")[0]
    return out


if __name__ == "__main__":
    sys.exit(main())
