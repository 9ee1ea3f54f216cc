#!/usr/bin/env python3
"""GenePT-w settings sweep: which top-N / weights / gene subset / IDF brings text-only KNN closest
to scanpy's standard PCA-50 KNN baseline?

For each dataset it runs `celltext cells pca` (scanpy's standard PCA-50, the features of
`celltext classify --on counts`) then `celltext classify --embedding-file` (KNN k = 10) and, for each
GenePT-w setting, `celltext cells embed` (.npy) then `celltext classify --embedding-file` (cosine
KNN k = 10), seeds 0, 1, 2 (the same stratified 80/20 splits for every row). Results go to
OUT/results.jsonl (one line per dataset x setting, resumable: finished lines are skipped on a
re-run) and OUT/results.md (accuracy mean +- sd and the gap to PCA-50).

One factor at a time around the default (top 100, expr weights, all genes, no IDF), to keep the
CPU cost small:
  top-N    {50, 100, 200, 500, all} with expr weights
  weights  {expr, log1p, zscore, uniform} at top 100, and zscore of log1p-CP10k
           (`--normalize log1p --weights zscore`)
  genes    --hvg 2000, --idf, and both, at top 100 with expr weights

Gene stores: one MiniLM store per species from the NCBI summaries of the genes the datasets
have (`celltext genes embed -m minilm --summaries ...`); built once under OUT/stores when missing.

Usage:
  python3 scripts/genept_sweep.py DATA_DIR OUT_DIR [--celltext BIN] [--model minilm]
      [--summaries-dir DIR] [--datasets NAME,NAME]
DATA_DIR holds the dataset folders (pbmc3k_seurat, darmanis2015_human_brain, ...); the summaries
default to DATA_DIR/../genes.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

SEEDS = [0, 1, 2]
K = 10
# folder, species, label column, layer with raw counts (None: X)
DATASETS = [
    ("darmanis2015_human_brain", "human", "label", None),
    ("baron2016_mouse1_pancreas", "mouse", "label", None),
    ("cellbench_celseq2_5cl", "human", "cell_line", None),
    ("romanov2017_mouse_hypothalamus", "mouse", "label", None),
    ("pbmc3k_seurat", "human", "label", "counts"),
]
SUMMARIES = {
    "human": "human_refseq_gene_summaries.json",
    "mouse": "mouse_summaries_with_human_orthologs.json",
}

def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{r.stderr}")
    return r.stdout


def name(s):
    top, w, norm, hvg, idf = s
    n = f"top {top}, {w}" + (" (log1p-CP10k)" if norm == "log1p" else "")
    if hvg:
        n += f", HVG {hvg}"
    if idf:
        n += ", IDF"
    return n


def key(s):
    top, w, norm, hvg, idf = s
    return f"top{top}-{w}-{norm}-hvg{hvg or 0}-idf{int(idf)}"


def build_stores(a, out):
    stores = {}
    for sp in sorted({d[1] for d in DATASETS}):
        tag = os.path.basename(os.path.normpath(a.model)).lower()
        prefix = os.path.join(out, "stores", f"{'minilm' if 'minilm' in tag else tag}_{sp}")
        stores[sp] = prefix
        if os.path.exists(prefix + ".manifest.json"):
            continue
        os.makedirs(os.path.dirname(prefix), exist_ok=True)
        with open(os.path.join(a.summaries_dir, SUMMARIES[sp])) as f:
            summ = json.load(f)
        genes = set()
        for folder, species, _, _ in DATASETS:
            if species == sp:
                with open(os.path.join(a.data, folder, "genes.tsv")) as f:
                    genes |= {line.strip() for line in f}
        sub = {g: t for g, t in summ.items() if g in genes}
        path = os.path.join(out, "stores", f"summaries_{sp}.json")
        with open(path, "w") as f:
            json.dump(sub, f)
        print(f"{sp}: {len(sub)} of {len(genes)} dataset genes have a summary", flush=True)
        run([a.celltext, "genes", "embed", "-m", a.model, "--summaries", path, "--species", sp,
             "--out", prefix, "--quiet"])
    return stores


def knn_accuracy(a, h5ad, label, extra):
    accs = []
    for seed in SEEDS:
        out = run([a.celltext, "classify", "-i", h5ad, "--label", label, "--k", str(K),
                   "--seed", str(seed), "--quiet", "--json"] + extra)
        rep = json.loads(out)
        accs.append(next(r for r in rep["results"])["scores"]["accuracy"])
    return accs


def done_lines(path):
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return {(d["dataset"], d["setting"]): d for d in map(json.loads, f)}


def record(path, row):
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")


def sweep(a, out, stores, settings, done, results):
    for folder, species, label, layer in DATASETS:
        h5ad = os.path.join(a.data, folder, "data.h5ad")
        lay = ["--layer", layer] if layer else []
        if (folder, "pca") not in done:
            # scanpy's standard PCA-50 once (it takes no seed), then KNN per seed: the same
            # features and predictions as `celltext classify --on counts`
            pca = os.path.join(out, "cells", f"{folder}-pca50.npy")
            os.makedirs(os.path.dirname(pca), exist_ok=True)
            run([a.celltext, "cells", "pca", "-i", h5ad, "-o", pca, "--quiet"] + lay)
            accs = knn_accuracy(a, h5ad, label, ["--embedding-file", pca])
            done[(folder, "pca")] = {"dataset": folder, "setting": "pca", "name": "PCA-50",
                                     "acc": accs}
            record(results, done[(folder, "pca")])
        for s in settings:
            if (folder, key(s)) in done:
                continue
            top, w, norm, hvg, idf = s
            npy = os.path.join(out, "cells", f"{folder}-{key(s)}.npy")
            os.makedirs(os.path.dirname(npy), exist_ok=True)
            cmd = [a.celltext, "cells", "embed", "-i", h5ad, "--genes", stores[species],
                   "--species", species, "--top-n", top, "--weights", w, "--normalize", norm,
                   "-o", npy, "--quiet", "--json"] + lay
            if hvg:
                cmd += ["--hvg", str(hvg)]
            if idf:
                cmd.append("--idf")
            run(cmd)
            accs = knn_accuracy(a, h5ad, label, ["--embedding-file", npy])
            row = {"dataset": folder, "setting": key(s), "name": name(s), "acc": accs}
            done[(folder, key(s))] = row
            record(results, row)
            print(f"{folder:32s} {name(s):40s} {statistics.mean(accs):.3f}", flush=True)


def mean_gap(done, s):
    gaps = []
    for folder, *_ in DATASETS:
        r, p = done.get((folder, key(s))), done.get((folder, "pca"))
        if r is None or p is None:
            return None
        gaps.append(statistics.mean(r["acc"]) - statistics.mean(p["acc"]))
    return statistics.mean(gaps)


def table(done, settings):
    cols = [d[0] for d in DATASETS]
    short = {"pbmc3k_seurat": "pbmc3k", "darmanis2015_human_brain": "Darmanis",
             "baron2016_mouse1_pancreas": "Baron", "cellbench_celseq2_5cl": "CellBench",
             "romanov2017_mouse_hypothalamus": "Romanov"}
    s = "| setting | " + " | ".join(short[c] for c in cols) + " | mean gap to PCA-50 |\n"
    s += "|---" * (len(cols) + 2) + "|\n"

    def cell(r):
        m, sd = statistics.mean(r["acc"]), statistics.stdev(r["acc"])
        return f"{m:.3f} ± {sd:.3f}"

    s += "| **PCA-50 KNN** (scanpy standard) | " + " | ".join(
        cell(done[(c, "pca")]) if (c, "pca") in done else "-" for c in cols) + " | 0 |\n"
    for st in settings:
        g = mean_gap(done, st)
        s += f"| {name(st)} | " + " | ".join(
            cell(done[(c, key(st))]) if (c, key(st)) in done else "-" for c in cols
        ) + f" | {'-' if g is None else f'{g:+.3f}'} |\n"
    return s


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("data")
    p.add_argument("out")
    p.add_argument("--celltext", default="celltext")
    p.add_argument("--model", default="minilm")
    p.add_argument("--summaries-dir")
    p.add_argument("--datasets", help="comma-separated dataset folders (default: all five)")
    a = p.parse_args()
    if a.datasets:
        keep = a.datasets.split(",")
        DATASETS[:] = [d for d in DATASETS if d[0] in keep]
    a.summaries_dir = a.summaries_dir or os.path.join(a.data, "..", "genes")
    os.makedirs(a.out, exist_ok=True)
    stores = build_stores(a, a.out)
    results = os.path.join(a.out, "results.jsonl")
    done = done_lines(results)
    settings = [(t, "expr", "raw", None, False) for t in ["50", "100", "200", "500", "all"]]
    settings += [("100", w, "raw", None, False) for w in ["log1p", "zscore", "uniform"]]
    settings += [("100", "zscore", "log1p", None, False)]
    settings += [("100", "expr", "raw", 2000, False), ("100", "expr", "raw", None, True),
                 ("100", "expr", "raw", 2000, True)]
    sweep(a, a.out, stores, settings, done, results)
    md = table(done, settings)
    with open(os.path.join(a.out, "results.md"), "w") as f:
        f.write(md)
    print(md)
    ranked = sorted((s for s in settings if mean_gap(done, s) is not None),
                    key=lambda s: -mean_gap(done, s))
    print("closest to PCA-50 (mean gap over datasets):")
    for s in ranked[:5]:
        print(f"  {name(s)}: {mean_gap(done, s):+.3f}")


if __name__ == "__main__":
    main()
