#!/usr/bin/env python3
"""Downstream cost of `--dtype int8`: GenePT-w and cell-sentence KNN/MLP accuracy, f32 against
int8, through `celltext experiment` (the command behind docs/results.md) with `dtype = "f32"` and
`dtype = "int8"` and nothing else changed: MiniLM, top 100, sentences at the model's 256 tokens,
seeds 0, 1, 2 (the same stratified 80/20 splits and MLP seeds for both), KNN k = 10.

    python3 scripts/int8_downstream.py --celltext target/release/celltext \\
        --model models-local/all-MiniLM-L6-v2 --work int8-downstream \\
        --dataset pbmc3k-demo=assets/data/pbmc3k_demo.h5ad:label:counts:human \\
        --dataset pbmc3k=../shared/data/cells/pbmc3k_seurat/data.h5ad:label:counts:human \\
        --json-out benches/results/int8-downstream-DATE.json

A --dataset is NAME=PATH:LABEL:LAYER:SPECIES (LAYER may be empty: X). Prints a Markdown table:
per representation and classifier, mean ± sd of each, and the mean and worst per-seed change in
accuracy points (int8 − f32; the gate is |change| ≤ 0.5 points).
"""
import argparse, json, os, subprocess, sys, time


def toml_str(s):
    return json.dumps(s)  # a JSON string is a valid TOML basic string


def run_experiment(ct, name, path, label, layer, species, model, dtype, work):
    cfg = os.path.join(work, f"{name}-{dtype}.toml")
    out_dir = os.path.join(work, f"{name}-{dtype}")
    lines = [
        f"name = {toml_str(name + '-' + dtype)}",
        f"input = {toml_str(os.path.abspath(path))}",
        f"label = {toml_str(label)}",
        f"species = {toml_str(species)}",
        f"models = [{toml_str(os.path.abspath(model))}]",
        'representations = ["genept-w", "sentences"]',
        'classifiers = ["knn", "mlp"]',
        "k = 10",
        "seeds = [0, 1, 2]",
        'top_n = "100"',
        f"dtype = {toml_str(dtype)}",
        f"out_dir = {toml_str(os.path.abspath(out_dir))}",
        f"cache_dir = {toml_str(os.path.abspath(os.path.join(work, 'cache')))}",
    ]
    if layer:
        lines.append(f"layer = {toml_str(layer)}")
    with open(cfg, "w") as f:
        f.write("\n".join(lines) + "\n")
    cmd = [ct, "experiment", "--quiet", cfg]
    print("+", " ".join(cmd), file=sys.stderr, flush=True)
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    secs = time.perf_counter() - t
    res = json.load(open(os.path.join(out_dir, "results.json")))
    return res, secs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--celltext", default="target/release/celltext")
    ap.add_argument("--model", default="models-local/all-MiniLM-L6-v2")
    ap.add_argument("--work", default="int8-downstream")
    ap.add_argument("--dataset", action="append", required=True)
    ap.add_argument("--json-out")
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    out = []
    print("| dataset | representation | classifier | f32 accuracy | int8 accuracy | mean change (points) | worst seed change |")
    print("|---|---|---|---|---|---|---|")
    for spec in a.dataset:
        name, rest = spec.split("=", 1)
        path, label, layer, species = rest.rsplit(":", 3)
        res, secs = {}, {}
        for dtype in ("f32", "int8"):
            res[dtype], secs[dtype] = run_experiment(a.celltext, name, path, label, layer, species, a.model, dtype, a.work)
        acc = {d: {(r["representation"], r["classifier"], r["seed"]): r["scores"]["accuracy"] for r in res[d]["runs"]}
               for d in res}
        for repr_ in ("genept-w", "sentences"):
            for clf in ("knn", "mlp"):
                seeds = sorted(s for (r, c, s) in acc["f32"] if r == repr_ and c == clf)
                f = [acc["f32"][(repr_, clf, s)] for s in seeds]
                q = [acc["int8"][(repr_, clf, s)] for s in seeds]
                d = [100 * (y - x) for x, y in zip(f, q)]
                mean = lambda v: sum(v) / len(v)
                sd = lambda v: (sum((x - mean(v)) ** 2 for x in v) / (len(v) - 1)) ** 0.5 if len(v) > 1 else 0.0
                worst = max(d, key=abs)
                print(f"| {name} | {repr_} | {clf} | {mean(f):.3f} ± {sd(f):.3f} | {mean(q):.3f} ± {sd(q):.3f} | "
                      f"{mean(d):+.2f} | {worst:+.2f} |", flush=True)
                out.append({"dataset": name, "input": path, "representation": repr_, "classifier": clf, "seeds": seeds,
                            "f32": f, "int8": q, "change_points": d, "mean_change_points": mean(d),
                            "worst_seed_change_points": worst})
        out.append({"dataset": name, "wall_seconds": secs})
    if a.json_out:
        with open(a.json_out, "w") as fh:
            json.dump(out, fh, indent=1)


if __name__ == "__main__":
    sys.exit(main())
