"""tl.cell_sentences equals `celltext cells sentences`; tl.embed_sentences writes obsm."""

from __future__ import annotations

import json

import numpy as np
import pytest

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
    assert small.uns["celltext_sentences"]["model"]["id"]


def test_embed_sentences_records_the_parameters_used(minilm, pbmc):
    """Issue 29 (3): uns records normalize, pooling, layer and template as used, and the
    vectors are the ones those parameters give."""
    enc = celltext.Encoder(minilm, progress=False)
    small = pbmc[:8].copy()
    celltext.tl.embed_sentences(small, enc, layer="counts", max_genes=15, normalize=True,
                                pooling="cls", template="Genes: ", seed=2, progress=False)
    u = small.uns["celltext_sentences"]
    p = u["params"]
    assert p["normalize"] is True and p["pooling"] == "cls"
    assert p["layer"] == "counts" and p["matrix"] == "layers['counts']"
    assert p["template"] == "Genes: " and p["max_genes"] == 15 and p["seed"] == 2
    assert u["model"]["default_pooling"] == "mean" and u["model"]["weights_sha256"]
    texts = celltext.tl.cell_sentences(small, layer="counts", max_genes=15, seed=2,
                                       template="Genes: ")
    assert all(t.startswith("Genes: ") for t in texts)
    want = enc.embed(texts, pooling="cls", normalize=True, progress=False)
    assert small.obsm["X_celltext_sentences"].tobytes() == want.tobytes()
    np.testing.assert_allclose(np.linalg.norm(want, axis=1), 1.0, atol=1e-5)
    # the defaults are recorded as the values they stand for
    celltext.tl.embed_sentences(small, enc, layer="counts", max_genes=15, progress=False)
    p = small.uns["celltext_sentences"]["params"]
    assert p["pooling"] == "mean" and p["normalize"] is False
    assert p["template"] == celltext._celltext.GENEPT_S_PREFIX
    assert "max_genes" in p and "gene_symbols_key" not in p  # None is left out


def test_sentences_past_the_context_warn(minilm, pbmc):
    """Whole-cell sentences are longer than MiniLM's 256 tokens: a warning says how many genes
    fit (checked against the tokenizer, one gene at a time)."""
    enc = celltext.Encoder(minilm, progress=False)
    small = pbmc[:4].copy()
    with pytest.warns(celltext.tl.ContextWarning, match=r"4 of 4 cell sentences are longer than "
                      r"the model's context \(256 tokens\): a median of"):
        celltext.tl.embed_sentences(small, enc, layer="counts", progress=False)
    fit = small.obs["celltext_sentences_genes_in_context"].to_numpy()
    texts = celltext.tl.cell_sentences(small, layer="counts")
    prefix = celltext._celltext.GENEPT_S_PREFIX
    for t, n in zip(texts, fit):
        genes = t[len(prefix):].split(" ")
        assert enc.count_tokens(prefix + " ".join(genes[:n])) <= 256
        assert enc.count_tokens(prefix + " ".join(genes[: n + 1])) > 256


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
