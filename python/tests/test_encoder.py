"""Encoder.embed: bit-identical to `celltext embed`; Ctrl-C; silent progress."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest

import celltext
from conftest import run_cli

TEXTS = [
    "CD3E is part of the T-cell receptor complex.",
    "Hemoglobin subunit beta carries oxygen in red blood cells.",
    "A cell with genes ranked by expression: MALAT1 B2M TMSB4X CD74 HLA-DRA",
    "short",
    "Ünïcödé text — with dashes, 中文 and emoji 🧬",
]


@pytest.fixture(scope="module")
def encoder(minilm):
    return celltext.Encoder(minilm, progress=False)


@pytest.mark.parametrize("pooling,normalize", [(None, False), ("cls", True), ("max", False)])
def test_equals_cli_bit_for_bit(cli, minilm, encoder, tmp_path, pooling, normalize):
    src = tmp_path / "texts.txt"
    src.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    out = tmp_path / "out.npy"
    args = ["embed", "--model", str(minilm), "--input", str(src), "--output", str(out)]
    if pooling:
        args += ["--pooling", pooling]
    if normalize:
        args += ["--normalize"]
    run_cli(cli, *args)
    got = encoder.embed(TEXTS, pooling=pooling, normalize=normalize, progress=False)
    want = np.load(out)
    assert got.dtype == np.float32 and got.shape == (len(TEXTS), 384)
    assert got.tobytes() == want.tobytes()


def test_info(encoder):
    info = encoder.info
    assert info["pooling"] == "mean" and info["max_length"] == 256
    assert len(info["weights_sha256"]) == 64
    assert encoder.dim == 384
    assert encoder.count_tokens("hello world") == 4


def test_batches_do_not_change_vectors(encoder):
    a = encoder.embed(TEXTS, batch_tokens=8192, progress=False)
    b = encoder.embed(TEXTS, batch_tokens=16, progress=False)
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)


def test_progress_false_is_silent(encoder, capfd):
    encoder.embed(TEXTS, progress=False)
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_empty_and_bad_texts(encoder):
    assert encoder.embed([], progress=False).shape == (0, 384)
    with pytest.raises(TypeError, match="single string"):
        encoder.embed("one text")
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        encoder.embed(["ok", 3])
    with pytest.raises(ValueError, match="pooling"):
        encoder.embed(["ok"], pooling="median")


def test_ctrl_c_interrupts(encoder):
    """SIGINT during a long call stops it between batches with KeyboardInterrupt."""
    texts = [f"gene {i} is expressed in cell type {i % 7} of the blood" for i in range(20000)]
    # A kernel timer, not a Python thread (which a loaded machine may not schedule before the
    # call ends): at 0.3 s its handler, run by the call's own signal check, sends the SIGINT.
    # Python's own Ctrl-C handler even where the shell started the tests with SIGINT ignored
    # (a background job), which Python then leaves ignored.
    old_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    old = signal.signal(signal.SIGALRM, lambda *_: os.kill(os.getpid(), signal.SIGINT))
    signal.setitimer(signal.ITIMER_REAL, 0.3)
    try:
        with pytest.raises(KeyboardInterrupt):
            encoder.embed(texts, batch_tokens=256, progress=False)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        signal.signal(signal.SIGINT, old_int)


def test_missing_model_is_an_error(tmp_path):
    with pytest.raises((FileNotFoundError, ValueError)):
        celltext.Encoder(tmp_path / "no-such-model", progress=False)
