"""Issue 29 (6): progress that renders outside a terminal (tqdm, fed by the core's progress
reports), silent with progress=False; messages through Python's logging."""

from __future__ import annotations

import logging

import numpy as np
import pytest

import celltext
from celltext import _progress

TEXTS = [f"gene {i} is expressed in cell type {i % 7} of the blood" for i in range(300)]


class FakeBar:
    made: list = []

    def __init__(self, total, desc, unit, leave):
        self.total, self.desc, self.unit, self.n, self.closed = total, desc, unit, 0, False
        self.seen = []
        FakeBar.made.append(self)

    def update(self, k):
        assert k > 0
        self.n += k
        self.seen.append(self.n)

    def close(self):
        self.closed = True


@pytest.fixture()
def fake_tqdm(monkeypatch):
    FakeBar.made = []
    monkeypatch.setattr(_progress, "_tqdm", lambda: FakeBar)
    return FakeBar


@pytest.fixture(scope="module")
def encoder(minilm):
    return celltext.Encoder(minilm, progress=False)


def test_embed_reports_progress_to_tqdm(encoder, fake_tqdm):
    encoder.embed(TEXTS, batch_tokens=512, progress=True)
    (bar,) = fake_tqdm.made
    assert bar.total == len(TEXTS) and bar.unit == "texts" and bar.closed
    assert bar.n == len(TEXTS)
    # reports between batches, then the end: more than one step, never backwards
    assert len(bar.seen) > 2 and bar.seen == sorted(bar.seen)


def test_progress_false_makes_no_bar(encoder, fake_tqdm, capfd):
    encoder.embed(TEXTS[:20], progress=False)
    assert fake_tqdm.made == []
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_bar_renders_without_a_terminal(encoder, capsys):
    """stderr is not a terminal under pytest (nor in Jupyter): the bar still shows."""
    encoder.embed(TEXTS[:50], batch_tokens=512, progress=True)
    err = capsys.readouterr().err
    assert "embedding" in err and "50/50" in err


def test_genes_embed_progress(minilm, tmp_path, fake_tqdm):
    genes = sorted(celltext.genes.summaries())[:40]
    store = celltext.genes.embed(minilm, genes=genes, out=tmp_path / "s", batch_tokens=1024,
                                 progress=True)
    (bar,) = fake_tqdm.made
    assert bar.unit == "genes" and bar.total == len(store) == bar.n and bar.closed


def test_logging_follows_verbosity(capsys):
    store = celltext.GeneStore.from_arrays(["A", "B"], np.eye(2, dtype=np.float32))
    import anndata as ad

    a = ad.AnnData(np.array([[1.0, 2.0], [3.0, 0.0]], dtype=np.float32))
    a.var_names = ["A", "B"]
    old = celltext.settings.verbosity
    try:
        celltext.settings.verbosity = 1
        celltext.tl.genept_w(a, store)
        assert "genept_w" not in capsys.readouterr().err
        celltext.settings.verbosity = "info"
        assert celltext.settings.verbosity == 2
        celltext.tl.genept_w(a, store)
        assert "genept_w: 2 of 2 genes mapped (100.0% of the expression)" in capsys.readouterr().err
        records = []
        h = logging.Handler()
        h.emit = records.append
        logging.getLogger("celltext").addHandler(h)
        try:
            celltext.tl.genept_w(a, store)
        finally:
            logging.getLogger("celltext").removeHandler(h)
        assert records and records[0].levelno == logging.INFO
        with pytest.raises(ValueError, match="verbosity=7"):
            celltext.settings.verbosity = 7
    finally:
        celltext.settings.verbosity = old
