#!/usr/bin/env python3
"""sciLaMA training speed: `celltext scilama train` against the authors' code (microsoft/sciLaMA,
PyTorch, run by scripts/scilama_reference.py), on the same cells, genes and gene vectors, the same
machine, one after the other in one run.

Each tool trains twice at its defaults (hidden 900,400, latent 50, batch 128, dropout 0.1, direct
mode), for E1 and E2 epochs (default 2 and 8; the KL warm-up lasts 45 epochs, so neither stops
early); the time of an epoch is (T(E2) − T(E1)) / (E2 − E1), which cancels what each spends
before and after training (reading, scaling, writing). celltext's T is the process's wall time;
the reference's is its summary's `seconds` (trainer construction, training and the embedding
file, after scanpy's scaling). The reference gets celltext's model genes (those the h5ad has
under the same name) and the store's vectors as its parquet, as in docs/scilama.md ("Against the
authors' code").

Setup of the reference: see scripts/scilama_reference.py (a venv with torch and their package).
Run (pbmc3k, the whole-genome human MiniLM store STORE_H):
  python3 benches/scilama_speed.py --h5ad DATA/cells/pbmc3k_seurat/data.h5ad --layer counts \\
      --store STORE_H --bin target/release/celltext --ref-python venv-ref/bin/python \\
      --work WORK --out benches/results/scilama-speed-DATE.json
Both use every core of the machine (celltext: rayon's default; the reference: torch.set_num_threads
of the core count). Writes OUT (JSON: every time, the commands, versions, CPU) and prints a table.
"""
import argparse
import datetime
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
from integration_eval import cpu_string  # noqa: E402  (the scripts' one CPU description)

REFERENCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts", "scilama_reference.py")


def run(cmd, what):
    """Runs `cmd`; its wall seconds. Stops the bench with the tool's own words if it fails."""
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    secs = time.perf_counter() - t
    if p.returncode != 0:
        sys.exit(f"{what} failed (exit {p.returncode}):\n{p.stderr[-3000:]}")
    return secs, p.stdout


def command_line(argv):
    """The command as run, absolute paths replaced by the docstring's names (no machine's folders)."""
    def shown(flag, value):
        if not os.path.isabs(value):
            return value
        if flag == "--h5ad":
            return "DATA/cells/" + os.path.join(os.path.basename(os.path.dirname(value)), os.path.basename(value))
        return {"--store": "STORE", "--work": "WORK", "--bin": "celltext", "--ref-python": "venv-ref/bin/python",
                "--out": os.path.basename(value)}.get(flag, "PATH")

    out, flag = [], None
    for x in argv:
        if flag:
            out.append(shown(flag, x))
            flag = None
        elif x.startswith("--") and "=" in x:
            k, v = x.split("=", 1)
            out.append(f"{k}={shown(k, v)}")
        else:
            out.append(x)
            flag = x if x.startswith("--") else None
    return "python3 benches/scilama_speed.py " + " ".join(out)


def per_epoch(times, e1, e2):
    return (times[e2] - times[e1]) / (e2 - e1)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--h5ad", required=True)
    p.add_argument("--layer", default=None, help="h5ad layer of raw counts (the reference reads layers['counts'] or X)")
    p.add_argument("--store", required=True, help="a celltext gene store (its vectors go to both tools)")
    p.add_argument("--species", default="human")
    p.add_argument("--bin", default="target/release/celltext")
    p.add_argument("--ref-python", required=True, help="python of a venv with torch and microsoft/sciLaMA")
    p.add_argument("--epochs", default="2,8", help="E1,E2 (E2 > E1 ≥ 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work", required=True, help="scratch folder")
    p.add_argument("--out", required=True, help="results JSON")
    a = p.parse_args()
    try:
        e1, e2 = (int(v) for v in a.epochs.split(","))
    except ValueError:
        p.error(f"--epochs {a.epochs!r}: give two whole numbers, E1,E2")
    if not 1 <= e1 < e2:
        p.error(f"--epochs {a.epochs}: need 1 ≤ E1 < E2")
    if os.path.abspath(a.out).startswith(os.path.abspath(a.work) + os.sep):
        p.error("--out inside --work: give it a place of its own")
    for flag, path in (("--h5ad", a.h5ad), ("--store", a.store), ("--bin", a.bin), ("--ref-python", a.ref_python)):
        if os.path.abspath(a.out) == os.path.abspath(path):
            p.error(f"--out is the {flag} input; it would be written over")
    os.makedirs(a.work, exist_ok=True)

    ours, ref, ref_runs = {}, {}, {}
    layer = ["--layer", a.layer] if a.layer else []
    for e in (e1, e2):
        out = os.path.join(a.work, f"ours.e{e}.npy")
        cmd = [a.bin, "--quiet", "scilama", "train", "-i", a.h5ad, *layer, "--genes", a.store,
               "--species", a.species, "--epochs", str(e), "--seed", str(a.seed), "-o", out]
        ours[e], _ = run(cmd, f"celltext scilama train --epochs {e}")
        print(f"celltext, {e} epochs: {ours[e]:.1f} s", file=sys.stderr)
    genes = os.path.join(a.work, f"ours.e{e1}.scilama_genes.genes.tsv")
    parquet = os.path.join(a.work, "genes.parquet")
    run([a.bin, "--quiet", "genes", "export", "--store", a.store, "--genes", genes, "--species", a.species,
         "--format", "parquet", "--out", parquet], "celltext genes export")
    for e in (e1, e2):
        cmd = [a.ref_python, REFERENCE, "--h5ad", a.h5ad, "--genes", genes, "--vectors", parquet,
               "--seed", str(a.seed), "--max-epochs", str(e), "--work", os.path.join(a.work, f"ref-e{e}"),
               "--out", os.path.join(a.work, f"ref.e{e}.npy")]
        _, stdout = run(cmd, f"scilama_reference.py --max-epochs {e}")
        summary = json.loads(stdout.strip().splitlines()[-1])
        ref[e], ref_runs[e] = summary["seconds"], summary
        print(f"authors' code, {e} epochs: {ref[e]:.1f} s (training)", file=sys.stderr)

    n_genes = sum(1 for g in open(genes) if g.strip())
    _, version = run([a.bin, "--version"], "celltext --version")
    result = {
        "celltext": version.strip(),
        "what": "sciLaMA training seconds per epoch at the reference defaults",
        "h5ad": os.path.basename(os.path.dirname(a.h5ad)) or os.path.basename(a.h5ad),
        "epochs": [e1, e2],
        "celltext_seconds": {str(e): round(s, 2) for e, s in ours.items()},
        "reference_seconds": {str(e): s for e, s in ref.items()},
        "celltext_per_epoch": round(per_epoch(ours, e1, e2), 3),
        "reference_per_epoch": round(per_epoch(ref, e1, e2), 3),
        "celltext_genes": n_genes,
        "reference_genes": ref_runs[e2]["genes_used"],
        "reference_epochs_run": {str(e): r["epochs_run"] for e, r in ref_runs.items()},
        "reference_torch": ref_runs[e2]["torch"],
        "reference_threads": ref_runs[e2]["threads"],
        "cpu": cpu_string(),
        "date": datetime.date.today().isoformat(),
        "command": command_line(sys.argv[1:]),
    }
    ours_epoch, ref_epoch = per_epoch(ours, e1, e2), per_epoch(ref, e1, e2)
    if ours_epoch <= 0 or ref_epoch <= 0:
        sys.exit(f"the {e2}-epoch runs took no longer than the {e1}-epoch ones (celltext {ours}, reference {ref}): "
                 "the machine is too noisy for this gap; give a wider --epochs")
    result["speedup"] = round(ref_epoch / ours_epoch, 2)
    tmp = a.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f, indent=1)
    os.replace(tmp, a.out)  # a run cut short leaves the old results or the new ones
    print(f"| tool | genes | s per epoch |\n|---|---|---|\n"
          f"| celltext | {n_genes} | {result['celltext_per_epoch']:.2f} |\n"
          f"| authors' code (torch {result['reference_torch']}, {result['reference_threads']} threads) | "
          f"{result['reference_genes']} | {result['reference_per_epoch']:.2f} |\n"
          f"celltext {result['speedup']}× the authors' code; {result['cpu']}, {result['date']}")


if __name__ == "__main__":
    main()
