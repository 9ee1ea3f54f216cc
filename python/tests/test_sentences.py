"""tl.cell_sentences equals `celltext cells sentences`; tl.embed_sentences writes obsm."""

from __future__ import annotations

import json

import numpy as np

import celltext
from conftest import PBMC, run_cli


def test_sentences_equal_cli(cli, tmp_path, pbmc):
    out = tmp_path / "s.jsonl"
    run_cli(cli, "cells", "sentences", "-i", str(PBMC), "--layer", "counts", "--seed", "3",
            "--max-genes", "30", "--ablation", "shuffle-all", "-o", str(out))
    want = [json.loads(line)["text"] for line in out.read_text().splitlines()]
    got = celltext.tl.cell_sentences(pbmc, layer="counts", seed=3, max_genes=30, ablation="shuffle-all")
    assert got == want


def test_embed_sentences(minilm, pbmc):
    enc = celltext.Encoder(minilm, progress=False)
    small = pbmc[:12].copy()
    celltext.tl.embed_sentences(small, enc, layer="counts", max_genes=20, progress=False)
    x = small.obsm["X_celltext_sentences"]
    texts = celltext.tl.cell_sentences(small, layer="counts", max_genes=20)
    assert x.shape == (12, 384)
    assert x.tobytes() == enc.embed(texts, progress=False).tobytes()
    assert json.loads(small.uns["celltext_sentences"]["model"])["id"]


def test_embed_sentences_equals_cli(cli, minilm, tmp_path, pbmc):
    """tl.embed_sentences gives `celltext cells embed-sentences`'s vectors bit for bit: the same
    sentences, tokenizer, token-budget batches and per-batch math (the CLI checkpoints them in
    chunks, Python embeds them in memory)."""
    small = pbmc[:40].copy()
    path = tmp_path / "pbmc40.h5ad"
    small.write_h5ad(path)
    out = tmp_path / "sentences.npy"
    run_cli(cli, "cells", "embed-sentences", "-i", str(path), "-m", str(minilm),
            "--layer", "counts", "--max-genes", "60", "--seed", "5", "--batch-tokens", "2048",
            "--chunk", "8", "-o", str(out))
    enc = celltext.Encoder(minilm, progress=False)
    celltext.tl.embed_sentences(small, enc, layer="counts", max_genes=60, seed=5,
                                batch_tokens=2048, progress=False)
    got = small.obsm["X_celltext_sentences"]
    want = np.load(out)
    assert got.dtype == want.dtype == np.float32 and got.shape == want.shape == (40, 384)
    assert got.tobytes() == want.tobytes()
