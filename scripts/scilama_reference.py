#!/usr/bin/env python3
"""Train sciLaMA with its authors' code (microsoft/sciLaMA) on the cells, genes and gene vectors of
a `celltext scilama train` run, for a like-for-like comparison (docs/scilama.md, "Against the
authors' code").

What is shared with the celltext run: the model's genes (OUT.scilama_genes.genes.tsv, kept where
the h5ad has a column of that exact name; the reference then keeps those whose name is a gene_id
of the parquet, so a gene the store holds under a newer symbol — celltext's resolver matched
Baron's Ctgf to the store's Ccn2 — drops out: 1,967 of Baron's 2,000), the scaling (scanpy normalize_total(1e4) → log1p →
those genes → scale(max_value=10), z-scores with ddof 1 as celltext's), the gene vectors (the
store's rows exported as the reference's parquet) and a seeded 10 % validation split
(numpy default_rng(seed), not celltext's ChaCha8 draw). Everything else is the authors'
`script/template.yaml` (direct mode, hidden 900,400, latent 50, dropout 0.1, up to 500 epochs,
patience 25, KL warm-up 25 + 0.05/epoch, AdamW 1e-3 ×0.99/epoch) run by their `SciLaMATrainer`.

Not a dependency of celltext. Setup (their package without its pinned extras, e.g. pyspark and
mlflow, which training does not import):
  python3 -m venv venv-ref
  venv-ref/bin/pip install torch pytorch-lightning torchmetrics pydantic pydantic-settings scanpy pyyaml rich pandas pyarrow
  git clone https://github.com/microsoft/sciLaMA && venv-ref/bin/pip install --no-deps ./sciLaMA
Run (Baron mouse pancreas, seed 0):
  celltext scilama train -i baron/data.h5ad --genes STORE_M --species mouse --seed 0 -o ours.npy
  celltext genes export --store STORE_M --genes ours.scilama_genes.genes.tsv --species mouse --format parquet --out genes.parquet
  venv-ref/bin/python scripts/scilama_reference.py --h5ad baron/data.h5ad --genes ours.scilama_genes.genes.tsv \\
      --vectors genes.parquet --seed 0 --work ref-s0 --out ref.s0.npy
Writes OUT (cell μ, float32, the h5ad's cell order) and OUT.json (genes used, split sizes, epochs
run, best epoch and its validation loss, wall seconds, versions).
"""
import argparse
import json
import os
import platform
import re
import time

import numpy as np


def scaled_cells(h5ad, genes):
    """The h5ad's raw counts CP10k → log1p → `genes` (those it has) → z-scored, clipped at 10."""
    import scanpy as sc

    a = sc.read_h5ad(h5ad)
    if "counts" in a.layers:
        a.X = a.layers["counts"]
    a.var_names_make_unique()
    sc.pp.normalize_total(a, target_sum=1e4)
    sc.pp.log1p(a)
    have = set(a.var_names)
    kept = [g for g in genes if g in have]
    a = a[:, kept].copy()
    sc.pp.scale(a, max_value=10)
    return a, len(genes) - len(kept)


def val_split(n, fraction, seed):
    """`round(n·fraction)` cells (at least 1) marked "val", the rest "train", seeded."""
    n_val = max(1, int(round(n * fraction)))
    split = np.array(["train"] * n, dtype=object)
    split[np.random.default_rng(seed).permutation(n)[:n_val]] = "val"
    return split


def config(h5ad, vectors, save_dir, seed, max_epochs=500):
    """The authors' script/template.yaml with our paths and seed; one text-embedding source."""
    return {
        "data": {
            "path": h5ad,
            "external_feature_embeddings": {"gene_text": vectors},
            "check_scaling": True,
            "split_column": "split",
            "train_split_key": "train",
            "val_split_key": "val",
            "test_split_key": None,
            "categorical_covariate_keys": None,
            "continuous_covariate_keys": None,
        },
        "model": {
            "hidden_dims": [900, 400], "latent_dim": 50, "dropout_rate": 0.1, "batchnorm": False,
            "layernorm": True, "activation": "LeakyReLU", "fusion_method": "average", "var_eps": 0.0001,
        },
        "training": {
            "seed": seed, "mode": "direct", "max_epochs": max_epochs, "batch_size": 128, "devices": 1,
            "strategy": "auto", "learning_rate": 0.001, "patience": 25, "weight_decay": 0.0,
            "beta_start": 0.0, "beta_end": 1.0, "epochs_before_beta_warmup": 25,
            "beta_warmup_rate": 0.05, "gamma": 0.05, "val_check_interval": 1,
        },
        "output": {"save_dir": save_dir, "save_key": "X_sciLaMA", "save_top_k": 1},
    }


def best_of(path):
    """(epoch, val_loss) from a best-checkpoint name `..._best-epoch=E-val_loss=V.ckpt`."""
    m = re.search(r"epoch=(\d+)-val_loss=([0-9.eE+-]+?)\.ckpt$", os.path.basename(path or ""))
    return (int(m.group(1)), float(m.group(2))) if m else (None, None)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--h5ad", required=True, help="raw counts (X or layers['counts'])")
    p.add_argument("--genes", required=True, help="the celltext model's genes, one per line")
    p.add_argument("--vectors", required=True, help="their store rows: parquet gene_id + embedding")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--work", required=True, help="scratch folder (scaled h5ad, config, checkpoints)")
    p.add_argument("--out", required=True, help="cell embeddings .npy")
    p.add_argument("--max-epochs", type=int, default=500,
                   help="the template's 500 unless given (to compare the first epochs with `--epochs N`)")
    args = p.parse_args()
    if args.max_epochs < 1:
        p.error(f"--max-epochs {args.max_epochs}: give at least 1")

    import pandas as pd
    import torch
    import yaml
    from sciLaMA.trainer import SciLaMATrainer

    torch.set_num_threads(os.cpu_count() or 1)
    os.makedirs(args.work, exist_ok=True)
    genes = [g.strip() for g in open(args.genes) if g.strip()]
    a, missing = scaled_cells(args.h5ad, genes)
    a.obs["split"] = val_split(a.n_obs, args.val_fraction, args.seed)
    scaled = os.path.join(args.work, "scaled.h5ad")
    a.write_h5ad(scaled)
    cfg_path = os.path.join(args.work, "config.yaml")
    save_dir = os.path.join(args.work, "results")
    with open(cfg_path, "w") as f:
        yaml.safe_dump(config(scaled, args.vectors, save_dir, args.seed, args.max_epochs), f)

    t0 = time.time()
    trainer = SciLaMATrainer(cfg_path)
    trainer.train()
    seconds = time.time() - t0

    emb = pd.read_parquet(os.path.join(save_dir, "sample_embeddings_direct_sciLaMA.parquet"))
    order = {c: i for i, c in enumerate(emb["sample_id"].astype(str))}
    x = np.stack([np.asarray(emb["embedding"].iloc[order[c]], dtype=np.float32) for c in a.obs_names.astype(str)])
    np.save(args.out, x)
    ckpts = [f for f in os.listdir(save_dir) if "_best-" in f]
    best_epoch, best_val = best_of(ckpts[0] if ckpts else None)
    summary = {
        "h5ad": os.path.basename(args.h5ad),
        "cells": int(a.n_obs),
        "genes_used": int(trainer.datamodule.n_features),
        "genes_not_in_h5ad": missing,
        "n_val": int((a.obs["split"] == "val").sum()),
        "seed": args.seed,
        "max_epochs": args.max_epochs,
        "epochs_run": int(trainer.trainer.current_epoch),
        "best_epoch": best_epoch,
        "best_val_loss": best_val,
        "seconds": round(seconds, 1),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
        "date": time.strftime("%Y-%m-%d"),
    }
    with open(args.out + ".json", "w") as f:
        json.dump(summary, f, indent=1)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
