#!/usr/bin/env python3
"""sciLaMA evaluation on real data (docs/scilama.md): for each dataset, GenePT-w, PCA-50 of the
scaled matrix sciLaMA sees, and sciLaMA with the gene store (--gene-input store) and with the
transposed expression matrix (--gene-input self), over several seeds; every embedding scored by
`celltext classify` (KNN accuracy, k-means ARI/NMI, cosine ASW, and with a batch column batch
ASW, iLISI, cLISI); on pbmc3k also Davies-Bouldin / Calinski-Harabasz of the canonical markers'
static vs contextual gene embeddings. Reads pbmc3k's and Baron's MTX folders (a build without HDF5 runs them; CellBench needs HDF5) and keeps embeddings
as .npy. Needs numpy, scipy, scikit-learn, safetensors. Runs are
ordered seed by seed (store, then self), and results.json is rewritten after each, so a run cut
short keeps what it finished.

  python3 scripts/scilama_eval.py --data DATA --human-store STORE_H --mouse-store STORE_M \
      --bin target/release/celltext --work scilama-eval [--seeds 0,1,2] [--modes store,self,beta-vae] [--epochs 100]
  python3 scripts/scilama_eval.py ... --tables results.*.json --merged merged.json   # runs made apart, merged by seed

sciLaMA trains at `scilama train`'s defaults unless --epochs, --hvg or --batch-size are given
(the tables of 2026-11-26 passed --epochs 30 --hvg 0 --batch-size 256). Runs trained elsewhere
(e.g. on a GPU by scripts/scilama-gpu.sh, which names them NAME.MODE.sS.npy as this script does)
are scored instead of trained with --trained DIR: a run whose .npy (and, for the pbmc3k markers,
its .scilama_genes store) is in DIR is copied into --work, its seconds taken from DIR/timings.tsv.
Each results file records how it was made (`_runs`: command, date, CPU, threads, binary version,
commit) and every trained run's epochs (from its manifest).
"""
import argparse
import datetime
import json
import os
import subprocess
import sys
import time

import scipy.io
import numpy as np
import scipy.sparse as sp
from sklearn.decomposition import PCA
from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from integration_eval import cpu_string  # noqa: E402  (the scripts' one CPU description)

DATASETS = [
    # name, input under DATA/cells (a folder: matrix.mtx.gz rows = cells, raw counts, genes.tsv,
    # cells.tsv; or an .h5ad of raw counts), label, batch, species. CellBench's genes.tsv repeats
    # two symbols, so it is read from data.h5ad, whose var names are made unique (-1, -2 suffixes).
    ("pbmc3k", "pbmc3k_seurat", "label", None, "human"),
    ("cellbench", "cellbench_celseq2_5cl/data.h5ad", "cell_line", "batch", "human"),
    ("baron", "baron2016_mouse1_pancreas", "label", "library", "mouse"),
]
MARKERS = {
    "IL7R": "Naive CD4 T", "CCR7": "Naive CD4 T", "S100A4": "Memory CD4 T", "CD14": "CD14+ Mono",
    "LYZ": "CD14+ Mono", "MS4A1": "B", "CD8A": "CD8 T", "FCGR3A": "FCGR3A+ Mono",
    "MS4A7": "FCGR3A+ Mono", "GNLY": "NK", "NKG7": "NK", "FCER1A": "DC", "CST3": "DC", "PPBP": "Platelet",
}


def run(cmd, log):
    t = time.time()
    r = subprocess.run(cmd, capture_output=True, text=True)
    log.write(" ".join(cmd) + f"\n  ({time.time() - t:.1f} s)\n")
    log.flush()
    if r.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{r.stderr}")
    return r.stdout


def store_rows(prefix):
    from safetensors.numpy import load_file
    e = load_file(prefix + ".safetensors")["embeddings"]
    genes = open(prefix + ".genes.tsv").read().split("\n")[: e.shape[0]]
    return dict(zip(genes, e))


def read_counts(folder):
    """Cells x genes CSR of a dataset folder's matrix.mtx.gz (rows = cells) or of an .h5ad's X, and
    its gene names."""
    if folder.endswith(".h5ad"):
        import anndata
        a = anndata.read_h5ad(folder)
        return sp.csr_matrix(a.X), list(a.var_names)
    x = sp.csr_matrix(scipy.io.mmread(os.path.join(folder, "matrix.mtx.gz")))
    lines = [l.split("\t") for l in open(os.path.join(folder, "genes.tsv")).read().split("\n") if l]
    if len(lines) == x.shape[1] + 1:  # a header: take its `symbol` column (else the first)
        col = lines[0].index("symbol") if "symbol" in lines[0] else 0
        lines = [[l[col]] for l in lines[1:]]
    return x, [l[0] for l in lines]


def pca50(folder, genes, out):
    x, names = read_counts(folder)
    x = x.astype(np.float64)
    tot = np.asarray(x.sum(1)).ravel()
    x = sp.diags(1e4 / np.where(tot > 0, tot, 1)) @ x
    x.data = np.log1p(x.data)
    pos = {g: i for i, g in enumerate(names)}
    x = x[:, [pos[g] for g in genes]].toarray()
    sd = x.std(0, ddof=1)
    z = np.clip((x - x.mean(0)) / np.where(sd == 0, 1, sd), -10, 10)
    z[:, sd == 0] = 0
    np.save(out, np.ascontiguousarray(PCA(50, svd_solver="full", random_state=0).fit_transform(z), dtype=np.float32))


def markers(res, static, ctx):
    """Davies-Bouldin / Calinski-Harabasz of the canonical markers, labelled by cell type."""
    genes_ok = [g for g in MARKERS if g in ctx and g in static]
    lab = [MARKERS[g] for g in genes_ok]
    mk = res.setdefault("markers", {"static (store)": [], "contextual (sciLaMA)": []})
    for k, src in (("static (store)", static), ("contextual (sciLaMA)", ctx)):
        x = np.array([src[g] for g in genes_ok])
        mk[k].append({"DB": davies_bouldin_score(x, lab), "CH": calinski_harabasz_score(x, lab), "markers": genes_ok})


def classify(bin_, inp, label, batch, seed, emb=None, emb_file=None):
    cmd = [bin_, "--quiet", "--json", "classify", "-i", inp, "--label", label, "--seed", str(seed)]
    cmd += ["--embedding", emb] if emb else ["--embedding-file", emb_file]
    if batch:
        cmd += ["--batch-key", batch]
    r = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
    q = r["quality"][0]
    m = q["metrics"]
    out = {"KNN acc": r["summary"]["accuracy"], "ARI": m["kmeans_ari"], "NMI": m["kmeans_nmi"],
           "ASW": m["silhouette_cosine"]}
    if batch:
        i = q["integration"]["Ok"]
        out.update({"batch ASW": i["batch_asw"], "iLISI": i["ilisi"], "cLISI": i["clisi"]})
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--human-store", required=True)
    p.add_argument("--mouse-store", required=True)
    p.add_argument("--bin", default="target/release/celltext")
    p.add_argument("--work", default="scilama-eval")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--epochs", default=None, help="default: scilama train's")
    p.add_argument("--hvg", default=None, help="default: scilama train's")
    p.add_argument("--batch-size", default=None, help="default: scilama train's")
    p.add_argument("--device", default=None, help="scilama train --device (default: the CPU)")
    p.add_argument("--trained", default=None,
                   help="folder of runs trained elsewhere (NAME.MODE.sS.npy, timings.tsv): scored, not retrained")
    p.add_argument("--only", default="")
    p.add_argument("--modes", default="store,self",
                   help="sciLaMA runs: the joint model with gene input store or self, or beta-vae (the cell VAE alone)")
    p.add_argument("--tables", nargs="*", default=None,
                   help="print the tables of these results.*.json files (merged by seed) and exit")
    p.add_argument("--results", default="", help="folder for results.*.json (default: --work)")
    p.add_argument("--merged", default=None, help="with --tables: also write the merged results to this JSON")
    a = p.parse_args()
    if a.tables is not None:
        if a.merged and os.path.exists(a.merged) and any(os.path.exists(f) and os.path.samefile(f, a.merged) for f in a.tables):
            sys.exit(f"--merged {a.merged} is one of the --tables inputs; write the merge to a new file")
        merged = merge_results(a.tables)
        if a.merged:
            save(merged, a.merged)
        print_tables(merged)
        return
    if not (os.path.isfile(a.bin) and os.access(a.bin, os.X_OK)):
        sys.exit(f"--bin {a.bin}: no celltext binary there; build it (cargo build --release) or pass its path")
    seeds = [int(s) for s in a.seeds.split(",")]
    os.makedirs(a.work, exist_ok=True)
    log = open(os.path.join(a.work, "commands.log"), "a")
    results = {RUNS: [provenance(a.bin)]}
    for name, folder, label, batch, species in DATASETS:
        if a.only and name not in a.only.split(","):
            continue
        inp = os.path.join(a.data, "cells", folder)
        store = a.human_store if species == "human" else a.mouse_store
        common = ["--species", species]
        w = lambda f: os.path.join(a.work, f"{name}.{f}")
        run([a.bin, "--quiet", "cells", "embed", "-i", inp, "--genes", store, "-o", w("genept.npy")] + common, log)
        res = {}

        def score(method, s, f, emb, ef, secs=None):
            r = res.setdefault(method, {"scores": [], "train_seconds": [], "seeds": []})
            r["scores"].append(classify(a.bin, f, label, batch, s, emb, ef))
            r["seeds"].append(s)
            if secs is not None:
                r["train_seconds"].append(secs)
                r.setdefault("epochs", []).append(epochs_run(ef))
            results[name] = res
            save(results, os.path.join(a.results or a.work, f"results.{name}.json"))

        for s in seeds:
            for mode in a.modes.split(","):
                out = w(f"{mode}.s{s}.npy")
                done = trained_run(a.trained, f"{name}.{mode}.s{s}", a.work) if a.trained else None
                if done is None:
                    t = time.time()
                    how = ["--mode", "beta-vae"] if mode == "beta-vae" else ["--gene-input", mode]
                    run([a.bin, "--quiet", "scilama", "train", "-i", inp, "--genes", store] + how
                        + ["--seed", str(s), "-o", out] + train_options(a) + common, log)
                    done = time.time() - t
                score(f"sciLaMA ({mode})", s, inp, None, out, done)
                if name == "pbmc3k" and mode == "store":
                    markers(res, store_rows(store), store_rows(w(f"store.s{s}.scilama_genes")))
                if mode != "beta-vae" and not os.path.exists(w("pca50.npy")):
                    # the genes sciLaMA sees (the same for every mode; a beta-VAE run writes no gene list)
                    genes = open(w(f"{mode}.s{s}.scilama_genes.genes.tsv")).read().split()
                    pca50(inp, genes, w("pca50.npy"))
            if not os.path.exists(w("pca50.npy")):
                sys.exit(f"{w('pca50.npy')}: PCA-50 takes the genes of a joint run; add --modes store (or self) "
                         "once in this --work")
            score("GenePT-w", s, inp, None, w("genept.npy"))
            score("PCA-50", s, inp, None, w("pca50.npy"))
        results[name] = res
        save(results, os.path.join(a.results or a.work, f"results.{name}.json"))
    print_tables(results)


RUNS = "_runs"  # the key of the runs' provenance; every other key of a results file is a dataset


def provenance(bin_):
    """What a reader needs to redo the numbers: the command (absolute paths shortened to their
    last part), date, CPU, threads, the binary's version and the repository's commit."""
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        commit = subprocess.run(["git", "-C", here, "describe", "--always", "--dirty"], capture_output=True,
                                text=True).stdout.strip() or None
    except OSError:  # no git: the version alone says which build
        commit = None
    version = subprocess.run([bin_, "--version"], capture_output=True, text=True).stdout.strip()
    argv = [os.path.basename(x) if os.path.isabs(x) else x for x in sys.argv[1:]]
    return {"command": "python3 scripts/scilama_eval.py " + " ".join(argv),
            "date": datetime.date.today().isoformat(), "cpu": cpu_string(),
            "threads": os.environ.get("RAYON_NUM_THREADS", "all cores"),
            "celltext": version, "commit": commit}


def epochs_run(npy):
    """Epochs each training step ran, from the run's manifest (None where it has none, e.g. a run
    trained elsewhere whose manifest was not kept)."""
    try:
        return json.load(open(npy + ".manifest.json"))["epochs_run"]
    except (OSError, KeyError, ValueError):
        return None


def save(results, path):
    tmp = path + ".tmp"
    json.dump(results, open(tmp, "w"), indent=1)
    os.replace(tmp, path)


def train_options(a):
    """The `scilama train` options given on the command line (the rest stay at its defaults)."""
    out = []
    for flag, v in (("--epochs", a.epochs), ("--hvg", a.hvg), ("--batch-size", a.batch_size), ("--device", a.device)):
        if v is not None:
            out += [flag, str(v)]
    return out


def trained_run(folder, run_name, work):
    """Copy a run trained elsewhere (RUN.npy and its side files) into `work`; its training seconds
    from folder/timings.tsv (NaN where not recorded), or None when the folder lacks the run."""
    import glob
    import shutil
    if not os.path.exists(os.path.join(folder, run_name + ".npy")):
        return None
    for f in glob.glob(os.path.join(glob.escape(folder), glob.escape(run_name) + ".*")):
        shutil.copy(f, work)
    secs = float("nan")
    timings = os.path.join(folder, "timings.tsv")
    if os.path.exists(timings):
        for line in open(timings).read().splitlines()[1:]:
            f = line.split("\t")
            if f[0] == run_name:
                secs = float(f[2])
    return secs


def merge_results(files):
    """Results of several runs (e.g. seeds run apart) merged per dataset and method, by seed."""
    out = {}
    for f in files:
        for name, res in json.load(open(f)).items():
            if name == RUNS:
                out.setdefault(RUNS, []).extend(r for r in res if r not in out.get(RUNS, []))
                continue
            dst = out.setdefault(name, {})
            for method, r in res.items():
                if method == "markers":
                    mk = dst.setdefault("markers", {})
                    for k, v in r.items():
                        mk.setdefault(k, []).extend(v)
                    continue
                d = dst.setdefault(method, {"scores": [], "train_seconds": [], "seeds": []})
                for i, s in enumerate(r["seeds"]):
                    if s in d["seeds"]:
                        continue
                    d["seeds"].append(s)
                    d["scores"].append(r["scores"][i])
                    if i < len(r["train_seconds"]):
                        d["train_seconds"].append(r["train_seconds"][i])
                        e = r.get("epochs") or []
                        d.setdefault("epochs", []).append(e[i] if i < len(e) else None)
    return out


def ms(v):
    v = np.array(v, dtype=float)
    return f"{v.mean():.3f} ± {v.std(ddof=1):.3f}" if len(v) > 1 else f"{v[0]:.3f}"


def print_tables(results):
    for name, res in results.items():
        if name == RUNS:
            continue
        cols = [c for c in res[next(iter(k for k in res if k != "markers"))]["scores"][0]]
        print(f"\n{name}\n\n| embedding | seeds | " + " | ".join(cols) + " |")
        print("|---" * (len(cols) + 2) + "|")
        for method, r in res.items():
            if method == "markers":
                continue
            print(f"| {method} | {len(r['seeds'])} | " + " | ".join(ms([s[c] for s in r["scores"]]) for c in cols) + " |")
        for method, r in res.items():
            if method != "markers" and r["train_seconds"]:
                epochs = [sum(n for _, n in e) for e in r.get("epochs", []) if e]
                print(f"{method}: training {ms(r['train_seconds'])} s"
                      + (f", epochs {', '.join(map(str, epochs))}" if epochs else ""))
        if "markers" in res:
            print("\n| marker gene embeddings | Davies-Bouldin (lower is better) | Calinski-Harabasz (higher is better) |")
            print("|---|---|---|")
            for k, v in res["markers"].items():
                print(f"| {k} | {ms([x['DB'] for x in v])} | {ms([x['CH'] for x in v])} |")
            print("markers:", ", ".join(res["markers"]["static (store)"][0]["markers"]))


if __name__ == "__main__":
    main()
