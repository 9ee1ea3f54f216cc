#!/usr/bin/env python3
"""NumPy / scanpy references for tests/cells_logic.rs.

Usage (from the repository root):

    # 1. (only to rebuild the fixture) cut ~50 real pbmc3k cells out of the full data set
    python3 tests/data/cells_logic/make_refs.py --source DATA/cells/pbmc3k_seurat
    # 2. recompute the references from the committed fixture (no --source needed)
    python3 tests/data/cells_logic/make_refs.py

Fixture (cells × genes MTX layout, rows = cells):
    matrix.mtx.gz   MatrixMarket coordinate integer, raw UMI counts, cells x genes
    genes.tsv       one symbol per line (only genes expressed in at least one fixture cell)
    cells.tsv       cell_id, label, seurat_cluster (header line)
    embeddings.json {"dim": 8, "symbols": [...], "data": [[...], ...]} - 200 fixture genes
                    (a seeded random choice among the 300 most-expressed, so some top genes of
                    every cell have NO embedding) with seeded N(0,1) float32 vectors.

Also committed (not made here):
    tokenizer.json.gz  tokenizer.json of sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0; BERT
                       uncased WordPiece) with "truncation" and "padding" set to null, gzipped;
                       used by the Rust tests as a real TokenCounter.
    golden_ablations.json  see below.

References written (all computed in float64 from the float32-exact inputs):
    norm_values.npy  float32 [3, nnz of the first 12 cells]: normalize_total(1e4)+log1p,
                     scale(raw counts), scale(log1p) at the stored entries (CSR order)
    gene_stats.npy   float32 [4, n_genes]: mean, std (ddof=1) of the raw counts, then of the
                     log1p data; std 0 = zero-variance gene (implicit z-value = -mean/std, else 0)
    refs.json        coverage/mapping counts, weighted-average references (20 configurations),
                     stable-tie sentences of the first 10 cells, hashlib SHA-256[:10] of genes
                     (floats rounded to 10 significant digits)
Computed in float64; every normalization is cross-checked against scanpy (dense output) first.

Ablation goldens (golden_ablations.json) are NOT produced here: the Rust implementation
defines the RNG (ChaCha8 streams), so that file is written once by the Rust test with
CELLTEXT_BLESS=1 and committed; the test additionally checks invariants against Python's
hashlib (hash_refs in refs.json).
"""
import argparse
import gzip
import hashlib
import json
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
PREFIX = "A cell with genes ranked by expression: "
CELLS_PER_LABEL = 6
EMB_DIM = 8
N_EMB = 200
SEED = 20240611
GOLDEN_CELLS = 10
NORM_CELLS = 12


def build_fixture(source):
    import scipy.io
    import scipy.sparse as sp

    x = scipy.io.mmread(os.path.join(source, "matrix.mtx.gz")).tocsr()  # cells x genes
    genes = [l.rstrip("\n") for l in open(os.path.join(source, "genes.tsv"))]
    lines = [l.rstrip("\n").split("\t") for l in open(os.path.join(source, "cells.tsv"))]
    header, rows = lines[0], lines[1:]
    assert x.shape == (len(rows), len(genes)), (x.shape, len(rows), len(genes))
    # first CELLS_PER_LABEL cells of every label, in file order
    seen, keep = {}, []
    for i, r in enumerate(rows):
        if seen.get(r[1], 0) < CELLS_PER_LABEL:
            seen[r[1]] = seen.get(r[1], 0) + 1
            keep.append(i)
    sub = x[keep, :]
    expressed = np.flatnonzero(np.asarray((sub != 0).sum(axis=0)).ravel() > 0)
    sub = sp.csr_matrix(sub[:, expressed])
    sub.sort_indices()
    kept_genes = [genes[j] for j in expressed]
    coo = sub.tocoo()
    order = np.lexsort((coo.col, coo.row))
    with open(os.path.join(HERE, "matrix.mtx.gz"), "wb") as raw:
        with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as f:
            f.write(b"%%MatrixMarket matrix coordinate integer general\n")
            f.write(f"{sub.shape[0]} {sub.shape[1]} {sub.nnz}\n".encode())
            for k in order:
                f.write(f"{coo.row[k] + 1} {coo.col[k] + 1} {int(round(coo.data[k]))}\n".encode())
    with open(os.path.join(HERE, "genes.tsv"), "w") as f:
        f.write("".join(g + "\n" for g in kept_genes))
    with open(os.path.join(HERE, "cells.tsv"), "w") as f:
        f.write("\t".join(header) + "\n")
        f.write("".join("\t".join(rows[i]) + "\n" for i in keep))
    # embeddings: 200 of the 300 most-expressed genes, seeded
    rng = np.random.default_rng(SEED)
    totals = np.asarray(sub.sum(axis=0)).ravel()
    top300 = np.argsort(-totals, kind="stable")[:300]
    chosen = rng.choice(top300, size=N_EMB, replace=False)  # random order: rows != column order
    vecs = rng.standard_normal((N_EMB, EMB_DIM)).astype(np.float32)
    emb = {
        "dim": EMB_DIM,
        "symbols": [kept_genes[j] for j in chosen],
        "data": [[float(v) for v in row] for row in vecs],
    }
    with open(os.path.join(HERE, "embeddings.json"), "w") as f:
        json.dump(emb, f, indent=None)
        f.write("\n")
    print(f"fixture: {sub.shape[0]} cells x {sub.shape[1]} genes, nnz {sub.nnz}")


def load_fixture():
    import scipy.io

    x = scipy.io.mmread(os.path.join(HERE, "matrix.mtx.gz")).tocsr().astype(np.float64)
    x.sort_indices()
    genes = [l.rstrip("\n") for l in open(os.path.join(HERE, "genes.tsv"))]
    cells = [l.rstrip("\n").split("\t")[0] for l in open(os.path.join(HERE, "cells.tsv"))][1:]
    emb = json.load(open(os.path.join(HERE, "embeddings.json")))
    return x, genes, cells, emb


# ---------------------------------------------------------------- normalizations (NumPy, f64)
def log1p_cp10k(x):
    d = x.toarray()
    tot = d.sum(axis=1, keepdims=True)
    fac = np.where(tot > 0, 1e4 / np.where(tot > 0, tot, 1), 1.0)
    return np.log1p(d * fac)


def gene_stats(d):
    """mean and std (ddof=1, scanpy) per gene; std 0 for genes whose values are all equal."""
    mean = d.mean(axis=0)
    std = d.std(axis=0, ddof=1)
    const = d.max(axis=0) == d.min(axis=0)
    std[const] = 0.0
    return mean, std


def zscore(d):
    mean, std = gene_stats(d)
    safe = np.where(std == 0, 1.0, std)
    return np.where(std == 0, 0.0, (d - mean) / safe)


def check_scanpy(x, d_log, z_raw, z_log):
    import anndata
    import scanpy as sc

    a = anndata.AnnData(x.copy())
    sc.pp.normalize_total(a, target_sum=1e4)
    sc.pp.log1p(a)
    s_log = a.X.toarray()
    assert np.allclose(s_log, d_log, rtol=1e-12, atol=1e-12), np.abs(s_log - d_log).max()
    s_zlog = sc.pp.scale(s_log.copy(), zero_center=True, max_value=None, copy=True)
    s_zraw = sc.pp.scale(x.toarray(), zero_center=True, max_value=None, copy=True)
    # scanpy's single-pass variance differs from the two-pass one in the last bits only
    assert np.allclose(s_zlog, z_log, rtol=1e-9, atol=1e-9), np.abs(s_zlog - z_log).max()
    assert np.allclose(s_zraw, z_raw, rtol=1e-9, atol=1e-9), np.abs(s_zraw - z_raw).max()
    print("scanpy agrees: normalize_total+log1p, scale(raw), scale(log1p)")


# ---------------------------------------------------------------- weighted averages (NumPy, f64)
def weighted(d, g2r, E, weights, top_n, stats=None):
    n, m = d.shape
    out = np.zeros((n, E.shape[1]))
    empty, n_used = [], []
    cols = np.arange(m)
    mapped = g2r >= 0
    for i in range(n):
        v = d[i]
        cand = np.flatnonzero((v > 0) & mapped)
        if top_n is not None and len(cand) > top_n:
            order = np.lexsort((cand, -v[cand]))  # value desc, then column asc
            cand = np.sort(cand[order[:top_n]])
        if len(cand) == 0:
            empty.append(True); n_used.append(0); continue
        x = v[cand]
        if weights == "expr":
            w = x
        elif weights == "log1p":
            w = np.log1p(x)
        elif weights == "zscore":
            mean, std = stats
            s = std[cand]
            w = np.where(s == 0, 0.0, (x - mean[cand]) / np.where(s == 0, 1.0, s))
        elif weights == "uniform":
            w = np.ones_like(x)
        wsum, wabs = w.sum(), np.abs(w).sum()
        if not (wabs > 0 and abs(wsum) > 1e-9 * wabs):
            empty.append(True); n_used.append(0); continue
        out[i] = w @ E[g2r[cand]] / wsum
        empty.append(False); n_used.append(int(len(cand)))
    return out, empty, n_used


def genept_mean(d, lookup):
    # GenePT notebook: np.dot(X, lookup_embed) / len(gene_names)
    return np.dot(d, lookup) / d.shape[1]


def scelmo_wa(d, lookup):
    # scELMo: X / np.sum(X, axis=1)[:, None] @ lookup_embed
    return d / np.sum(d, axis=1)[:, None] @ lookup


def sentence_cols(v):
    nz = np.flatnonzero(v > 0)
    return nz[np.lexsort((nz, -v[nz]))]


def round_floats(o):
    """10 significant digits: ample for the 1e-5 relative tolerance, and a smaller file."""
    if isinstance(o, float):
        return float(f"{o:.10g}")
    if isinstance(o, dict):
        return {k: round_floats(v) for k, v in o.items()}
    if isinstance(o, list):
        return [round_floats(v) for v in o]
    return o


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--source", help="the pbmc3k_seurat data set directory to (re)build the fixture from")
    args = ap.parse_args()
    if args.source:
        build_fixture(args.source)
    x, genes, cells, emb = load_fixture()
    d_raw = x.toarray()
    d_log = log1p_cp10k(x)
    z_raw, z_log = zscore(d_raw), zscore(d_log)
    check_scanpy(x, d_log, z_raw, z_log)

    # normalized values at the stored entries of the first NORM_CELLS cells (CSR order), float32
    nnz_k = int(x.indptr[NORM_CELLS])
    rows = np.repeat(np.arange(NORM_CELLS), np.diff(x.indptr[: NORM_CELLS + 1]))
    cols = x.indices[:nnz_k]
    norm = np.stack([d_log[rows, cols], z_raw[rows, cols], z_log[rows, cols]]).astype(np.float32)
    np.save(os.path.join(HERE, "norm_values.npy"), norm)
    # per-gene statistics for ALL genes, float32: mean/std (ddof=1) of raw and log1p data;
    # the implicit (not stored) z-value of a gene is -mean/std (0 for zero-variance genes)
    stats_rows = []
    for d in (d_raw, d_log):
        mean, std = gene_stats(d)
        implicit = np.where(std == 0, 0.0, -mean / np.where(std == 0, 1, std))
        has_zero = d.min(axis=0) == 0  # the implicit value is the z-score of a zero entry
        z_at_zero = zscore(d)[d.argmin(axis=0), np.arange(d.shape[1])]
        assert np.allclose(implicit[has_zero], z_at_zero[has_zero], rtol=1e-12, atol=1e-12)
        stats_rows += [mean, std]
    np.save(os.path.join(HERE, "gene_stats.npy"), np.stack(stats_rows).astype(np.float32))

    E = np.array(emb["data"], dtype=np.float32).astype(np.float64)
    sym_row = {s: k for k, s in enumerate(emb["symbols"])}
    g2r = np.array([sym_row.get(g, -1) for g in genes])
    lookup = np.zeros((len(genes), E.shape[1]))
    lookup[g2r >= 0] = E[g2r[g2r >= 0]]

    refs = {"n_cells": x.shape[0], "n_genes": x.shape[1], "nnz": int(x.nnz), "norm_cells": NORM_CELLS}

    mapped = g2r >= 0
    totals = d_raw.sum(axis=1)
    refs["coverage"] = (d_raw[:, mapped].sum(axis=1) / totals).tolist()
    refs["n_mapped"] = ((d_raw > 0) & mapped).sum(axis=1).tolist()
    refs["n_unmapped"] = ((d_raw > 0) & ~mapped).sum(axis=1).tolist()

    wrefs = []
    for inp, d in (("raw", d_raw), ("log1p", d_log)):
        stats = gene_stats(d)
        for weights in ("expr", "log1p", "zscore", "uniform"):
            for top in (10, None):
                out, empty, n_used = weighted(d, g2r, E, weights, top, stats)
                wrefs.append({"input": inp, "agg": "weighted", "weights": weights,
                              "top_n": "all" if top is None else top,
                              "data": out.tolist(), "empty": empty, "n_used": n_used})
        wrefs.append({"input": inp, "agg": "genept", "data": genept_mean(d, lookup).tolist()})
        wrefs.append({"input": inp, "agg": "scelmo", "data": scelmo_wa(d, lookup).tolist()})
    refs["weighted"] = wrefs

    # sentences, stable ties (value desc, then column asc), GenePT-s prefix; first GOLDEN_CELLS cells
    refs["sentences_stable"] = [
        {"cell_id": cells[i], "text": PREFIX + " ".join(genes[j] for j in sentence_cols(d_raw[i]))}
        for i in range(GOLDEN_CELLS)
    ]
    # ranking of log-normalized data equals that of raw counts (monotone per cell), ties included
    for i in range(x.shape[0]):
        assert (sentence_cols(d_raw[i]) == sentence_cols(d_log[i])).all()
    refs["n_expressed"] = (d_raw > 0).sum(axis=1).tolist()
    # hashlib reference for the hash ablation
    hash_genes = sorted(set(genes[j] for i in range(GOLDEN_CELLS) for j in sentence_cols(d_raw[i])[:80]))
    refs["hash_refs"] = {g: hashlib.sha256(g.encode("utf-8")).hexdigest()[:10] for g in hash_genes}

    with open(os.path.join(HERE, "refs.json"), "w") as f:
        json.dump(round_floats(refs), f, separators=(",", ":"))
        f.write("\n")
    print("refs written:", x.shape, "nnz", x.nnz, "mapped genes", int(mapped.sum()))


if __name__ == "__main__":
    main()
