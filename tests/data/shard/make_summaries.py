"""Bundled RefSeq summaries of the genes in some cell's top 10 (counts layer, ties by column)
of the 601-cell pbmc3k demo subset: a small gene store for the sharded-workflow check in CI.

Run from the repository root: python3 tests/data/shard/make_summaries.py
"""
import csv
import gzip

import anndata as ad
import numpy as np

a = ad.read_h5ad("assets/data/pbmc3k_demo.h5ad")
x = a.layers["counts"].tocsr()
top = set()
for i in range(x.shape[0]):
    s, e = x.indptr[i], x.indptr[i + 1]
    idx, v = x.indices[s:e], x.data[s:e]
    top.update(a.var_names[idx[np.lexsort((idx, -v))[:10]]])
with gzip.open("assets/genes/human_summaries.tsv.gz", "rt") as f:
    rows = [r for r in csv.DictReader(f, delimiter="\t") if r["symbol"] in top]
with open("tests/data/shard/pbmc3k_top10_summaries.tsv", "w", newline="") as f:
    w = csv.writer(f, delimiter="\t", lineterminator="\n")
    w.writerow(["symbol", "text"])
    for r in sorted(rows, key=lambda r: r["symbol"]):
        w.writerow([r["symbol"], r["text"]])
print(len(top), "genes in some top 10,", len(rows), "with a summary")
