"""Ctrl-C during genes.embed stops it between batches with KeyboardInterrupt and leaves the
store resumable: the same call then finishes with the store an uninterrupted run writes."""

from __future__ import annotations

import os
import signal

import pytest

import celltext

N_GENES = 240
CHUNK = 16


def _genes():
    return sorted(celltext.genes.summaries())[:N_GENES]


def _embed(minilm, out):
    return celltext.genes.embed(minilm, genes=_genes(), out=out, batch_tokens=1024,
                                chunk_texts=CHUNK, progress=False)


def test_ctrl_c_leaves_a_resumable_store(minilm, tmp_path):
    out = tmp_path / "store"
    partial = tmp_path / "store.partial"

    def interrupt_after_first_chunk(*_):
        # SIGINT once a chunk is on disk, so the rerun has finished work to resume from. A
        # kernel timer polls (its handler runs at the call's own signal checks), not a Python
        # thread that a loaded machine may not schedule before the call ends.
        if (partial / "chunk-000000.npy").exists():
            signal.setitimer(signal.ITIMER_REAL, 0)
            os.kill(os.getpid(), signal.SIGINT)

    # Python's own Ctrl-C handler even where the shell started the tests with SIGINT ignored
    # (a background job), which Python then leaves ignored.
    old_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    old = signal.signal(signal.SIGALRM, interrupt_after_first_chunk)
    signal.setitimer(signal.ITIMER_REAL, 0.05, 0.05)
    try:
        with pytest.raises(KeyboardInterrupt):
            _embed(minilm, out)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        signal.signal(signal.SIGINT, old_int)
    chunks = sorted(p.name for p in partial.glob("chunk-*.npy"))
    assert chunks and len(chunks) < -(-N_GENES // CHUNK)
    assert not (tmp_path / "store.safetensors").exists()

    resumed = _embed(minilm, out)
    assert not partial.exists()
    assert resumed.manifest["chunks_resumed"] == len(chunks)

    whole = _embed(minilm, tmp_path / "whole")
    assert whole.manifest["chunks_resumed"] == 0
    assert resumed.genes == whole.genes
    assert resumed.vectors.tobytes() == whole.vectors.tobytes()
    for suffix in (".safetensors", ".genes.tsv"):
        got = (tmp_path / f"store{suffix}").read_bytes()
        want = (tmp_path / f"whole{suffix}").read_bytes()
        assert got == want, suffix
