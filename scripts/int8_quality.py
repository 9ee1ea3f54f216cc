#!/usr/bin/env python3
"""Quality gate of `--dtype int8`: per-text cosine of `celltext embed --dtype int8` to
`--dtype f32` on the same texts, model and pooling (the issue's gate: worst cosine >= 0.995).

Parts (run any subset with --parts):
  summaries  all-MiniLM-L6-v2 (real weights), N human RefSeq gene summaries drawn with
             random.Random(SEED).shuffle over the symbols in sorted order
  bert-base  `celltext synth-model --shape bert-base` (12x768, seeded random weights, MiniLM's
             bert-base-uncased tokenizer), cell sentences of the bundled pbmc3k subset cut at 512 tokens
  ember      `celltext synth-model --shape ember-v1` (24x1024, BERT-large shape), the same sentences

    python3 scripts/int8_quality.py --celltext target/release/celltext --data ../shared/data \\
        --model models-local/all-MiniLM-L6-v2 --work int8-quality \\
        --json-out benches/results/int8-quality-DATE.json

Needs numpy. Synthetic weights are random (std 0.02, BERT's initializer), so their activations
are not a trained model's: a pass there says the kernels keep the precision at these shapes and
lengths, not that a trained BERT-base or Ember quantizes as well.
"""
import argparse, json, os, random, subprocess, sys, time

import numpy as np


def run(cmd):
    print("+", " ".join(cmd), file=sys.stderr, flush=True)
    t = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - t


def cosines(a, b):
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return (a * b).sum(1)


def compare(ct, model, texts_path, work, name, extra, reuse):
    out = {}
    secs = {}
    for dtype in ("f32", "int8"):
        npy = os.path.join(work, f"{name}.{dtype}.npy")
        if not (reuse and os.path.exists(npy)):
            secs[dtype] = run([ct, "embed", "--quiet", "-m", model, "-i", texts_path, "-o", npy, "--dtype", dtype] + extra)
        out[dtype] = np.load(npy).astype(np.float64)
    f, q = out["f32"], out["int8"]
    c = cosines(f, q)
    # How far apart the texts are in f32, and the cosine once the f32 mean vector is taken out of
    # both: random-weight encoders map every text near one direction, where the plain cosine
    # cannot see a loss that the centered one (the part that tells texts apart) does
    fn = f / np.linalg.norm(f, axis=1, keepdims=True)
    pair = (fn @ fn.T)[np.triu_indices(len(f), 1)]
    mu = f.mean(0)
    cc = cosines(f - mu, q - mu)
    return {"part": name, "n": int(len(c)), "worst_cosine": float(c.min()), "mean_cosine": float(c.mean()),
            "p1_cosine": float(np.percentile(c, 1)), "f32_pairwise_cosine_mean": float(pair.mean()),
            "centered_worst_cosine": float(cc.min()), "centered_mean_cosine": float(cc.mean()),
            "seconds_f32": secs.get("f32"), "seconds_int8": secs.get("int8"), "flags": extra}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--celltext", default="target/release/celltext")
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--model", default="models-local/all-MiniLM-L6-v2", help="MiniLM directory")
    ap.add_argument("--h5ad", default="assets/data/pbmc3k_demo.h5ad", help="cells for the sentences (layer counts)")
    ap.add_argument("--work", default="int8-quality")
    ap.add_argument("--parts", default="summaries,bert-base,ember")
    ap.add_argument("--n-summaries", type=int, default=1000)
    ap.add_argument("--n-bert-base", type=int, default=200)
    ap.add_argument("--n-ember", type=int, default=48)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--reuse", action="store_true", help="keep vectors already in --work")
    ap.add_argument("--json-out")
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    ct, rows = a.celltext, []
    parts = a.parts.split(",")
    if "summaries" in parts:
        summ = json.load(open(os.path.join(a.data, "genes", "human_refseq_gene_summaries.json")))
        syms = sorted(summ)
        random.Random(a.seed).shuffle(syms)
        p = os.path.join(a.work, "summaries.jsonl")
        with open(p, "w") as f:
            for s in syms[: a.n_summaries]:
                f.write(json.dumps({"id": s, "text": summ[s]}) + "\n")
        rows.append(compare(ct, a.model, p, a.work, "summaries-minilm", ["--pooling", "mean", "--normalize"], a.reuse))
    shaped = [p for p in parts if p in ("bert-base", "ember")]
    if shaped:
        sent = os.path.join(a.work, "cells.jsonl")
        if not os.path.exists(sent):
            run([ct, "cells", "sentences", "--quiet", "-i", a.h5ad, "--layer", "counts", "-o", sent])
        lines = open(sent).read().splitlines()
        order = list(range(len(lines)))
        random.Random(a.seed).shuffle(order)
        for part in shaped:
            shape, n = ("bert-base", a.n_bert_base) if part == "bert-base" else ("ember-v1", a.n_ember)
            mdir = os.path.join(a.work, f"synth-{shape}")
            if not os.path.exists(os.path.join(mdir, "model.safetensors")):
                run([ct, "synth-model", "--quiet", "--shape", shape, "--tokenizer-from", a.model, "--seed", "0", "-o", mdir])
            p = os.path.join(a.work, f"sentences-{n}.jsonl")
            with open(p, "w") as f:
                f.write("\n".join(lines[i] for i in order[:n]) + "\n")
            # CLS pooling (Ember's card) and mean pooling of the same run would each need a pass;
            # CLS is the stricter one (one token's vector, no averaging of errors)
            rows.append(compare(ct, mdir, p, a.work, f"sentences-{part}", ["--pooling", "cls", "--max-length", "512"], a.reuse))
    for r in rows:
        print(f"{r['part']}: n={r['n']} worst {r['worst_cosine']:.5f} mean {r['mean_cosine']:.5f} "
              f"p1 {r['p1_cosine']:.5f}; f32 texts' mean pairwise cosine {r['f32_pairwise_cosine_mean']:.5f}; "
              f"centered worst {r['centered_worst_cosine']:.4f} mean {r['centered_mean_cosine']:.4f}")
    if a.json_out:
        with open(a.json_out, "w") as f:
            json.dump({"celltext": ct, "seed": a.seed, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
