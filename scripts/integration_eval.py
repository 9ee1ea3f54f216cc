#!/usr/bin/env python3
"""Batch-integration evaluation on real batched data (docs/scilama.md, "Integration").

Three batched sets from DATA/cells (DATA = the folder holding `cells/<set>/data.h5ad`):
  cellbench_pair  CellBench CEL-seq2 3 lines + Drop-seq 3 lines concatenated (anndata
                  `concat(join="inner")` on the var names, which each set's data.h5ad already made
                  unique with `var_names_make_unique`); batch = platform, label = cell_line
  cellbench_5cl   CellBench CEL-seq2 5 lines; batch = plate (cells.tsv column `batch`), label = cell_line
  baron_mouse     Baron 2016 mouse pancreas (donor mouse1); batch = library, label = label
  cellbench_pair_sng, cellbench_5cl_sng
                  the two CellBench sets with demuxlet's doublets removed (obs `demuxlet_cls` ==
                  "SNG"), the QC a user runs first: a doublet holds two lines' RNA, so its
                  `cell_line` (demuxlet's best single guess) is no cell type to score against
The other sets keep every cell (demuxlet doublets too, as in docs/scilama.md's tables).

Embeddings, each of the raw counts:
  PCA-50            scanpy: normalize_total(1e4) → log1p → highly_variable_genes(n_top_genes=2000,
                    flavor="seurat") → scale(max_value=10) → pca(50) (arpack, random_state=0: fixed)
  PCA-50 + Harmony  harmonypy.run_harmony on that PCA with the batch column, random_state = seed
                    (what sc.external.pp.harmony_integrate calls)
  PCA-50, HVGs within batches (+ Harmony)   the same with highly_variable_genes(batch_key=BATCH),
                    the genes `scilama train --batch-key` uses: what gene choice alone does
  sciLaMA           `celltext scilama train` at its defaults (--seed = seed)
  sciLaMA --batch-key   the same with `--batch-key BATCH`; run only when the binary's
                    `scilama train --help` lists the flag (else skipped with a note)
  sciLaMA --mode beta-vae (± --batch-key)   the reference's cell-VAE-only scheme (no gene side,
                    so no text prior): what the joint decoder through the gene latents costs
Scores: `celltext classify --embedding-file E --label L --batch-key B --seed S` (KNN accuracy,
k-means ARI/NMI, cosine ASW, batch ASW, iLISI, cLISI) plus the other-batch neighbour fraction
computed here: for each cell, the fraction of its 15 nearest neighbours (cosine distance, the
cell itself excluded) whose batch differs from its own, averaged over cells. The table also gives
that fraction under random mixing (neighbours drawn uniformly from the other cells), what a
well-mixed embedding shows (above it, neighbours favour other batches). Seeds 0,1,2: they set Harmony's and sciLaMA's
randomness and classify's KNN split and k-means; PCA-50 is one embedding scored three times.

Not a dependency of celltext; users install the reference tools:
  python3 -m venv venv && venv/bin/pip install scanpy harmonypy

The gene stores (MiniLM, docs/scilama.md): the whole-genome stores the README makes (every
bundled summary; the 2026-12-06 whole-store results):
  celltext genes embed -m minilm --species human --out STORE_H
  celltext genes embed -m minilm --species mouse --out STORE_M
or, as the earlier tables did, each species' selected summaries (a set's 1,000 most variable genes):
  venv/bin/python scripts/integration_eval.py --data DATA --write-summaries sel
  celltext genes embed -m minilm --summaries sel/human.json --out STORE_H
  celltext genes embed -m minilm --summaries sel/mouse.json --out STORE_M
The evaluation (results JSON + Markdown tables; the JSON is rewritten after every row, so a run
cut short keeps what it finished):
  venv/bin/python scripts/integration_eval.py --data DATA --human-store STORE_H --mouse-store STORE_M \
      --bin target/release/celltext --work integration-eval --out benches/results/integration-2026-12-06.json
The sciLaMA rows again, with the --batch-key rows, into the same results file (one line):
  venv/bin/python scripts/integration_eval.py --data DATA --human-store STORE_H --mouse-store STORE_M --methods scilama,scilama-batch --out benches/results/integration-2026-12-06.json
"""
import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np

DATASETS = {
    # name: (title, folders, label column, batch column, species); a name ending in "_sng" keeps
    # only demuxlet's singlets
    "cellbench_pair": ("CellBench CEL-seq2 + Drop-seq (3 lines, batch = platform)",
                       ["cellbench_celseq2_3cl", "cellbench_dropseq_3cl"], "cell_line", "platform", "human"),
    "cellbench_5cl": ("CellBench CEL-seq2 (5 lines, batch = plate)",
                      ["cellbench_celseq2_5cl"], "cell_line", "batch", "human"),
    "baron_mouse": ("Baron mouse pancreas (13 types, batch = library)",
                    ["baron2016_mouse1_pancreas"], "label", "library", "mouse"),
    "cellbench_pair_sng": ("CellBench CEL-seq2 + Drop-seq, singlets (3 lines, batch = platform)",
                           ["cellbench_celseq2_3cl", "cellbench_dropseq_3cl"], "cell_line", "platform", "human"),
    "cellbench_5cl_sng": ("CellBench CEL-seq2, singlets (5 lines, batch = plate)",
                          ["cellbench_celseq2_5cl"], "cell_line", "batch", "human"),
}
DOUBLET_COLUMN = "demuxlet_cls"
METHODS = {
    "pca": "PCA-50",
    "harmony": "PCA-50 + Harmony",
    "pca-bhvg": "PCA-50, HVGs within batches",
    "harmony-bhvg": "PCA-50, HVGs within batches + Harmony",
    "scilama": "sciLaMA",
    "scilama-batch": "sciLaMA --batch-key",
    "scilama-bvae": "sciLaMA --mode beta-vae",
    "scilama-bvae-batch": "sciLaMA --mode beta-vae --batch-key",
}
DIAGNOSTIC_ROWS = {METHODS["scilama-bvae"], METHODS["scilama-bvae-batch"]}  # left out of a table when not run
SCILAMA_FLAGS = {  # `scilama train` flags of each sciLaMA row (BATCH: the set's batch column)
    "scilama": [],
    "scilama-batch": ["--batch-key", "BATCH"],
    "scilama-bvae": ["--mode", "beta-vae"],
    "scilama-bvae-batch": ["--mode", "beta-vae", "--batch-key", "BATCH"],
}
COLUMNS = ["KNN acc", "ARI", "NMI", "ASW", "batch ASW", "iLISI", "cLISI", "other-batch 15-NN"]
NEIGHBOURS = 15
SUMMARIES = {"human": "human_refseq_gene_summaries.json", "mouse": "mouse_summaries_with_human_orthologs.json"}


def other_batch_fraction(x, batch, k=NEIGHBOURS):
    """Mean over cells of the fraction of the k cosine-nearest other cells from another batch.

    The cell itself is excluded by index (not by position), so duplicate cells are handled."""
    from sklearn.neighbors import NearestNeighbors

    x = np.asarray(x, dtype=np.float64)
    batch = np.asarray(batch)
    n = x.shape[0]
    if not 0 < k < n:
        raise ValueError(f"need 0 < k < cells, got k = {k} for {n} cells")
    nn = NearestNeighbors(n_neighbors=k + 1, metric="cosine", algorithm="brute").fit(x)
    idx = nn.kneighbors(x, return_distance=False)
    fractions = np.empty(n)
    for i, row in enumerate(idx):
        others = [j for j in row if j != i][:k]
        fractions[i] = np.mean(batch[others] != batch[i])
    return float(fractions.mean())


def random_mixing_fraction(batch):
    """Expected other-batch fraction when neighbours are drawn uniformly among the other cells."""
    _, counts = np.unique(np.asarray(batch), return_counts=True)
    n = counts.sum()
    return float(np.sum(counts / n * (n - counts) / (n - 1)))


def load_dataset(data, name):
    """An AnnData of raw counts with obs[label] and obs[batch] for one evaluation set."""
    import anndata as ad
    import scipy.sparse as sp

    _, folders, label, batch, _ = DATASETS[name]
    parts = []
    for f in folders:
        a = ad.read_h5ad(os.path.join(data, "cells", f, "data.h5ad"))
        if "counts" in a.layers:
            a.X = a.layers["counts"]
        a = ad.AnnData(X=sp.csr_matrix(a.X, dtype=np.float32), obs=a.obs.copy(), var=a.var[[]].copy())
        if not a.var_names.is_unique:
            a.var_names_make_unique()
        if name.endswith("_sng"):
            a = singlets(a, f)
        parts.append(a)
    if name.startswith("cellbench_pair"):
        a = ad.concat(parts, join="inner", label="platform", keys=["CEL-seq2", "Drop-seq"])
    else:
        a = parts[0]
    x = a.X
    if x.data.size and not np.all(x.data == np.round(x.data)):
        sys.exit(f"{name}: data.h5ad X is not raw counts (non-integer values)")
    for col in (label, batch):
        if col not in a.obs:
            sys.exit(f"{name}: obs has no column {col!r} (has {list(a.obs.columns)})")
    # demuxlet's call rides along (knn_loo.py --by demuxlet_cls breaks errors down by it)
    keep = [label, batch] + [c for c in (DOUBLET_COLUMN,) if c in a.obs and c not in (label, batch)]
    a.obs = a.obs[keep].astype(str).astype("category")
    return a


def singlets(a, folder):
    """The cells demuxlet called singlets (obs DOUBLET_COLUMN == "SNG")."""
    if DOUBLET_COLUMN not in a.obs:
        sys.exit(f"{folder}: obs has no column {DOUBLET_COLUMN!r} to drop doublets by (has {list(a.obs.columns)})")
    keep = (a.obs[DOUBLET_COLUMN].astype(str) == "SNG").to_numpy()
    if not keep.any():
        sys.exit(f"{folder}: no cell has {DOUBLET_COLUMN} == 'SNG'")
    return a[keep].copy()


def write_summaries(a, out_dir):
    """Each species' store text: the RefSeq summaries of each set's 1,000 most variable genes
    (variance of log1p-CP10k) that have one, as docs/scilama.md builds its stores."""
    os.makedirs(out_dir, exist_ok=True)
    chosen = {}
    for name, (_, _, _, _, species) in DATASETS.items():
        summ = json.load(open(os.path.join(a.data, "genes", SUMMARIES[species])))
        ad_ = load_dataset(a.data, name)
        x = ad_.X.astype(np.float64)
        tot = np.asarray(x.sum(1)).ravel()
        x = x.multiply(1e4 / np.where(tot > 0, tot, 1)[:, None]).tocsr()
        x.data = np.log1p(x.data)
        mean = np.asarray(x.mean(0)).ravel()
        var = np.asarray(x.multiply(x).mean(0)).ravel() - mean**2
        have = np.array([g in summ for g in ad_.var_names])
        order = [i for i in np.argsort(-var, kind="stable") if have[i]][:1000]
        sel = chosen.setdefault(species, {})
        for i in order:
            sel[ad_.var_names[i]] = summ[ad_.var_names[i]]
        print(f"{name}: {len(order)} genes with a summary among the most variable", file=sys.stderr)
    for species, sel in chosen.items():
        json.dump(sel, open(os.path.join(out_dir, f"{species}.json"), "w"), indent=0, sort_keys=True)
        print(f"{species}: {len(sel)} genes → {out_dir}/{species}.json", file=sys.stderr)


def pca50(a, batch=None):
    """scanpy's PCA-50; with `batch`, the HVGs are chosen within batches (`batch_key`), as
    `scilama train --batch-key` chooses its genes."""
    import scanpy as sc

    b = a.copy()
    sc.pp.normalize_total(b, target_sum=1e4)
    sc.pp.log1p(b)
    sc.pp.highly_variable_genes(b, n_top_genes=2000, flavor="seurat", batch_key=batch)
    b = b[:, b.var["highly_variable"]].copy()
    sc.pp.scale(b, max_value=10)
    sc.pp.pca(b, n_comps=50, random_state=0)
    return np.ascontiguousarray(b.obsm["X_pca"], dtype=np.float32)


def harmony(pca, obs, batch, seed):
    import harmonypy

    ho = harmonypy.run_harmony(pca, obs, [batch], random_state=seed, verbose=False)
    z = np.asarray(ho.Z_corr)
    # harmonypy returns dims x cells (older releases) or cells x dims
    z = z.T if z.shape[0] != pca.shape[0] else z
    return np.ascontiguousarray(z, dtype=np.float32)


def classify(bin_, h5ad, emb_file, label, batch, seed):
    cmd = [bin_, "--quiet", "--json", "classify", "-i", h5ad, "--label", label, "--batch-key", batch,
           "--seed", str(seed), "--embedding-file", emb_file]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{r.stderr}")
    r = json.loads(r.stdout)
    q = r["quality"][0]
    m = q["metrics"]
    i = q["integration"]["Ok"]
    return {"KNN acc": r["summary"]["accuracy"], "ARI": m["kmeans_ari"], "NMI": m["kmeans_nmi"],
            "ASW": m["silhouette_cosine"], "batch ASW": i["batch_asw"], "iLISI": i["ilisi"],
            "cLISI": i["clisi"]}


def supports_batch_key(bin_):
    r = subprocess.run([bin_, "scilama", "train", "--help"], capture_output=True, text=True)
    return "--batch-key" in r.stdout


def cpu_string():
    """CPU model (family, model), core count and the SIMD flags the kernels dispatch on."""
    try:
        info = open("/proc/cpuinfo").read().splitlines()
    except OSError:
        return platform.processor()
    field = lambda key: next((l.split(":", 1)[1].strip() for l in info if l.split(":")[0].strip() == key), "?")
    flags = field("flags").split()
    simd = ", ".join(f for f in ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16") if f in flags)
    return f"{field('model name')} (family {field('cpu family')} model {field('model')}), {os.cpu_count()} cores, {simd or 'no AVX2'}"


def command_line(argv):
    """The command as run, with absolute folders replaced by the docstring's names (DATA, STORE_H, …)."""
    names = {"--data": "DATA", "--human-store": "STORE_H", "--mouse-store": "STORE_M", "--work": "WORK",
             "--out": "OUT", "--bin": "celltext"}
    keep_relative = ("--out", "--bin")  # paths inside the repository say where things are

    def shown(flag, value):
        return value if flag in keep_relative and not os.path.isabs(value) else names[flag]

    out, flag = [], None
    for x in argv:
        if flag:
            out.append(shown(flag, x))
            flag = None
            continue
        key, eq, value = x.partition("=")
        if key in names and eq:
            out.append(f"{key}={shown(key, value)}")
        else:
            out.append(os.path.basename(x) if os.path.isabs(x) else x)
            flag = x if x in names else None
    return "python3 scripts/integration_eval.py " + " ".join(out)


def versions():
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("scanpy", "anndata", "harmonypy", "scikit-learn", "numpy"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:  # reported, not fatal: the rows that need it fail later
            out[pkg] = None
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="folder holding cells/<set>/data.h5ad and genes/")
    p.add_argument("--human-store")
    p.add_argument("--mouse-store")
    p.add_argument("--bin", default="target/release/celltext")
    p.add_argument("--work", default="integration-eval", help="scratch folder (h5ad, .npy embeddings, log)")
    p.add_argument("--out", default="integration.json", help="results JSON; rows already there are kept")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--only", default="", help="comma-separated datasets: " + ",".join(DATASETS))
    p.add_argument("--methods", default="pca,harmony,scilama,scilama-batch", help=",".join(METHODS))
    p.add_argument("--write-summaries", metavar="DIR", help="write DIR/{human,mouse}.json for the stores and exit")
    p.add_argument("--tables", action="store_true", help="print the tables of --out and exit")
    p.add_argument("--merge", nargs="+", metavar="JSON",
                   help="add these results files' rows (runs made apart) to --out, rewrite it and exit")
    a = p.parse_args()
    if a.write_summaries:
        write_summaries(a, a.write_summaries)
        return
    results = json.load(open(a.out)) if os.path.exists(a.out) else {"datasets": {}}
    if a.merge:
        for f in a.merge:
            merge_into(results, json.load(open(f)))
        write_results(results, a.out)
        print(tables(results))
        return
    if a.tables:
        print(tables(results))
        return
    seeds = [int(s) for s in a.seeds.split(",")]
    methods = [m for m in a.methods.split(",") if m]
    for m in methods:
        if m not in METHODS:
            sys.exit(f"--methods: unknown {m!r} (choose from {', '.join(METHODS)})")
    if any("BATCH" in SCILAMA_FLAGS.get(m, []) for m in methods) and not supports_batch_key(a.bin):
        print(f"{a.bin} scilama train has no --batch-key: the sciLaMA --batch-key rows are skipped",
              file=sys.stderr)
        methods = [m for m in methods if "BATCH" not in SCILAMA_FLAGS.get(m, [])]
    if any(m.startswith("scilama") for m in methods) and not (a.human_store and a.mouse_store):
        sys.exit("the sciLaMA rows need --human-store and --mouse-store (see the docstring)")
    os.makedirs(a.work, exist_ok=True)
    log = open(os.path.join(a.work, "commands.log"), "a")
    meta = results.setdefault("runs", [])
    meta.append({"date": datetime.date.today().isoformat(), "cpu": cpu_string(), "methods": methods,
                 "seeds": seeds, "versions": versions(),
                 "command": command_line(sys.argv[1:])})

    def save():
        write_results(results, a.out)

    for name, (title, _, label, batch, species) in DATASETS.items():
        if a.only and name not in a.only.split(","):
            continue
        ad_ = load_dataset(a.data, name)
        h5ad = os.path.join(a.work, f"{name}.h5ad")
        ad_.write_h5ad(h5ad)
        b = ad_.obs[batch].to_numpy()
        ds = results["datasets"].setdefault(name, {})
        ds.update({"title": title, "cells": int(ad_.n_obs), "genes": int(ad_.n_vars), "label": label,
                   "batch": batch, "batches": {k: int(v) for k, v in ad_.obs[batch].value_counts().items()},
                   "labels": int(ad_.obs[label].nunique()),
                   "random_mixing_fraction": random_mixing_fraction(b)})
        rows = ds.setdefault("methods", {})
        store = a.human_store if species == "human" else a.mouse_store

        def score(method, seed, emb, secs=None):
            f = os.path.join(a.work, f"{name}.{method}.s{seed}.npy")
            if emb is not None:
                np.save(f, emb)
            else:
                emb = np.load(f)
            s = classify(a.bin, h5ad, f, label, batch, seed)
            s["other-batch 15-NN"] = other_batch_fraction(emb, b)
            add_row(rows, METHODS[method], seed, s, secs)
            save()
            print(f"{name} {METHODS[method]} seed {seed}: " + ", ".join(f"{k} {v:.3f}" for k, v in s.items()),
                  file=sys.stderr)

        pca = pca50(ad_) if {"pca", "harmony"} & set(methods) else None
        pca_b = pca50(ad_, batch) if {"pca-bhvg", "harmony-bhvg"} & set(methods) else None
        for seed in seeds:
            for m, x in (("pca", pca), ("pca-bhvg", pca_b)):
                if m in methods:
                    score(m, seed, x)
            for m, x in (("harmony", pca), ("harmony-bhvg", pca_b)):
                if m in methods:
                    t = time.time()
                    z = harmony(x, ad_.obs, batch, seed)
                    score(m, seed, z, time.time() - t)
            for m in SCILAMA_FLAGS:
                if m not in methods:
                    continue
                out = os.path.join(a.work, f"{name}.{m}.s{seed}.npy")
                cmd = scilama_command(a.bin, h5ad, store, species, seed, out, m, batch)
                t = time.time()
                r = subprocess.run(cmd, capture_output=True, text=True)
                secs = time.time() - t
                log.write(" ".join(cmd) + f"\n  ({secs:.1f} s)\n")
                log.flush()
                if r.returncode != 0:
                    sys.exit(f"failed: {' '.join(cmd)}\n{r.stderr}")
                score(m, seed, None, secs)
    print(tables(results))


def scilama_command(bin_, h5ad, store, species, seed, out, method, batch):
    """The `scilama train` command line of one sciLaMA row."""
    cmd = [bin_, "--quiet", "scilama", "train", "-i", h5ad, "--genes", store, "--species", species,
           "--seed", str(seed), "-o", out]
    return cmd + [batch if f == "BATCH" else f for f in SCILAMA_FLAGS[method]]


def add_row(rows, method, seed, scores, secs):
    """One seed's scores of a method; a rerun of that seed replaces its row."""
    r = rows.setdefault(method, {"seeds": [], "scores": [], "train_seconds": []})
    if seed in r["seeds"]:
        i = r["seeds"].index(seed)
        r["seeds"].pop(i)
        r["scores"].pop(i)
        if r["train_seconds"]:
            r["train_seconds"].pop(i)
    r["seeds"].append(seed)
    r["scores"].append(scores)
    if secs is not None:
        r["train_seconds"].append(secs)


def merge_into(results, other):
    """Rows of another results file (e.g. seeds run apart) added to results, seed by seed."""
    for run in other.get("runs", []):
        # runs recorded before command_line hid absolute paths: hide them now
        run["command"] = command_line(run["command"].split()[2:])
        if run not in results.setdefault("runs", []):
            results["runs"].append(run)
    for name, ds in other["datasets"].items():
        dst = results["datasets"].setdefault(name, {k: v for k, v in ds.items() if k != "methods"})
        rows = dst.setdefault("methods", {})
        for method, r in ds["methods"].items():
            for i, seed in enumerate(r["seeds"]):
                secs = r["train_seconds"][i] if r["train_seconds"] else None
                add_row(rows, method, seed, r["scores"][i], secs)


def write_results(results, out):
    """The results JSON (replaced in one rename) and its Markdown tables beside it (OUT.md)."""
    tmp = out + ".tmp"
    json.dump(results, open(tmp, "w"), indent=1)
    os.replace(tmp, out)
    open(os.path.splitext(out)[0] + ".md", "w").write(tables(results).lstrip("\n") + "\n")


def ms(v):
    v = np.array(v, dtype=float)
    return f"{v.mean():.3f} ± {v.std(ddof=1):.3f}" if len(v) > 1 else f"{v[0]:.3f}"


def tables(results):
    out = []
    for name, ds in results["datasets"].items():
        out.append(f"\n{ds['title']}: {ds['cells']} cells, {ds['genes']} genes, {ds['labels']} labels, "
                   f"batches " + ", ".join(f"{k} {v}" for k, v in ds["batches"].items())
                   + f"; other-batch 15-NN under random mixing {ds['random_mixing_fraction']:.3f}\n")
        out.append("| embedding | seeds | " + " | ".join(COLUMNS) + " |")
        out.append("|---" * (len(COLUMNS) + 2) + "|")
        for method in METHODS.values():
            r = ds["methods"].get(method)
            if r is None and method in DIAGNOSTIC_ROWS:
                continue
            if r is None:
                out.append(f"| {method} | 0 | not run | " + " | ".join("—" for _ in COLUMNS[1:]) + " |")
                continue
            out.append(f"| {method} | {len(r['seeds'])} | "
                       + " | ".join(ms([s[c] for s in r["scores"]]) for c in COLUMNS) + " |")
        for method in METHODS.values():
            r = ds["methods"].get(method)
            if r and r["train_seconds"]:
                out.append(f"\n{method}: {ms(r['train_seconds'])} s per run")
    return "\n".join(out)


if __name__ == "__main__":
    main()
