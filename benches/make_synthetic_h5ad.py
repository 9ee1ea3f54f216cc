"""Seeded synthetic h5ad for the scale bench of sharded `cells embed` (docs/sharding.md):
N cells × 20,000 genes, CSR float32 counts with 10x-like sparsity (a lognormal number of draws per cell, median 900, ~750 distinct non-zeros; Zipf-like gene popularity;
counts growing with popularity). The first --distinct cells are drawn; later rows repeat their
sparsity pattern with the values permuted by a seeded shuffle per block (drawing 10^9 gene
indices takes far longer than writing them), so every block holds different cells. Written
block by block (memory stays ~1 GB whatever N). Genes are the 15,136 human symbols of
the bundled summaries plus SYNTH_* names (unmapped), in a seeded order. With --store-pickle it
also writes a seeded gene store as a GenePT-style pickle {symbol: float32[384]} for
`celltext genes import`.

    python3 benches/make_synthetic_h5ad.py --cells 1000000 --out big.h5ad --store-pickle store.pkl
"""
import argparse
import csv
import gzip
import pickle

import h5py
import numpy as np


def strings(group, name, values):
    d = group.create_dataset(name, data=np.array(values, dtype=object), dtype=h5py.string_dtype())
    d.attrs["encoding-type"] = "string-array"
    d.attrs["encoding-version"] = "0.2.0"


def frame(f, name, index):
    g = f.create_group(name)
    g.attrs["encoding-type"] = "dataframe"
    g.attrs["encoding-version"] = "0.2.0"
    g.attrs["_index"] = "_index"
    g.attrs["column-order"] = np.array([], dtype=object).astype(h5py.string_dtype())
    strings(g, "_index", index)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cells", type=int, default=1_000_000)
    ap.add_argument("--genes", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--chunk", type=int, default=20_000)
    ap.add_argument("--distinct", type=int, default=40_000)
    ap.add_argument("--out", required=True)
    ap.add_argument("--store-pickle")
    ap.add_argument("--dim", type=int, default=384)
    a = ap.parse_args()
    if a.distinct % a.chunk:
        ap.error("--distinct must be a multiple of --chunk")
    rng = np.random.default_rng(a.seed)

    with gzip.open("assets/genes/human_summaries.tsv.gz", "rt") as f:
        real = sorted({r["symbol"] for r in csv.DictReader(f, delimiter="\t")})
    real = real[: a.genes]
    names = real + [f"SYNTH_{k}" for k in range(a.genes - len(real))]
    names = [names[k] for k in rng.permutation(len(names))]
    popularity = 1.0 / (np.arange(a.genes) + 10.0) ** 0.9
    popularity = popularity[rng.permutation(a.genes)]
    p = popularity / popularity.sum()
    scale = 1.0 + 30.0 * popularity / popularity.max()

    with h5py.File(a.out, "w") as f:
        f.attrs["encoding-type"] = "anndata"
        f.attrs["encoding-version"] = "0.1.0"
        x = f.create_group("X")
        x.attrs["encoding-type"] = "csr_matrix"
        x.attrs["encoding-version"] = "0.1.0"
        x.attrs["shape"] = np.array([a.cells, a.genes], dtype=np.int64)
        data = x.create_dataset("data", (0,), np.float32, maxshape=(None,), chunks=(1 << 20,))
        indices = x.create_dataset("indices", (0,), np.int32, maxshape=(None,), chunks=(1 << 20,))
        indptr = [np.zeros(1, np.int64)]
        nnz = 0
        blocks = []  # (data, indices, per-row counts) of the drawn cells

        def write(vals, cols, counts):
            nonlocal nnz
            data.resize((nnz + vals.size,))
            indices.resize((nnz + vals.size,))
            data[nnz:] = vals
            indices[nnz:] = cols
            indptr.append(nnz + np.cumsum(counts))
            nnz += vals.size

        for start in range(0, a.cells, a.chunk):
            n = min(a.chunk, a.cells - start)
            if start >= a.distinct:
                vals, cols, counts = blocks[(start // a.chunk) % len(blocks)]
                if counts.size > n:  # the last, shorter block
                    k = counts[:n].sum()
                    vals, cols, counts = vals[:k], cols[:k], counts[:n]
                write(vals[rng.permutation(vals.size)], cols, counts)
                continue
            per_cell = np.clip(np.round(rng.lognormal(np.log(900), 0.35, n)), 100, 3000)
            per_cell = per_cell.astype(np.int64)
            rows = np.repeat(np.arange(n, dtype=np.int64), per_cell)
            cols = rng.choice(a.genes, size=rows.size, p=p)
            keys = np.unique(rows * a.genes + cols)  # sorted: rows in order, genes ascending
            r, c = keys // a.genes, keys % a.genes
            vals = np.ceil(rng.exponential(scale[c])).astype(np.float32)
            counts = np.bincount(r, minlength=n)
            blocks.append((vals, c.astype(np.int32), counts))
            write(*blocks[-1])
        x.create_dataset("indptr", data=np.concatenate(indptr))
        frame(f, "obs", [f"cell{k:07d}" for k in range(a.cells)])
        frame(f, "var", names)
        for g in ("obsm", "varm", "obsp", "varp", "layers", "uns"):
            grp = f.create_group(g)
            grp.attrs["encoding-type"] = "dict"
            grp.attrs["encoding-version"] = "0.1.0"
    print(f"{a.out}: {a.cells} cells × {a.genes} genes, {nnz} non-zeros ({nnz / a.cells:.0f} per cell)")

    if a.store_pickle:
        vec = rng.standard_normal((len(real), a.dim)).astype(np.float32)
        with open(a.store_pickle, "wb") as f:
            pickle.dump({g: vec[k] for k, g in enumerate(real)}, f, protocol=4)
        print(f"{a.store_pickle}: {len(real)} genes × {a.dim}")


if __name__ == "__main__":
    main()
