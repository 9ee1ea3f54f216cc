"""Issue 29: errors in Python's words. Messages name the argument (layer=, raw=, model=, ...),
never a command-line flag; a missing local model raises FileNotFoundError before any hub
attempt, and only strings shaped like org/name are tried as hub ids."""

from __future__ import annotations

import re

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp

import celltext
from celltext._errors import python_words

CLI_FLAG = re.compile(
    r"--(layer|raw|model|gene-symbols-key|top-n|weights|device|dtype|backend|pooling|"
    r"lowercase|cased|out|ablation|max-genes|hidden|quiet)\b"
)


def small(x):
    a = ad.AnnData(sp.csr_matrix(np.asarray(x, dtype=np.float32)))
    a.var_names = ["A", "B", "C"]
    return a


def test_value_errors_name_python_arguments():
    store = celltext.GeneStore.from_arrays(["A", "B", "C"], np.eye(3, dtype=np.float32))
    with pytest.raises(ValueError) as e:
        celltext.tl.genept_w(small([[1, 0, -2], [0, 3, 1]]), store)
    msg = str(e.value)
    assert "layer='counts', or raw=True" in msg and not CLI_FLAG.search(msg), msg
    with pytest.raises(ValueError) as e:
        celltext.tl.cell_sentences(small([[1, 0, 2], [0, 3, 1]]), ablation="shuffle-in-context")
    msg = str(e.value)
    assert "needs encoder=" in msg and not CLI_FLAG.search(msg), msg


def test_encoder_option_errors_name_python_arguments(minilm):
    for kwargs, want in [
        ({"device": "cpu,cuda:0"}, "device='cpu,cuda:0': all devices must be of one kind"),
        ({"backend": "cpu", "dtype": "f16"}, "backend='cpu' computes in f32 only"),
    ]:
        with pytest.raises(ValueError) as e:
            celltext.Encoder(minilm, progress=False, **kwargs)
        msg = str(e.value)
        assert want in msg and not CLI_FLAG.search(msg), msg


def test_translation_of_core_messages():
    assert python_words("choose a layer with --layer (available: counts)") == (
        "choose a layer with layer= (available: counts)"
    )
    assert python_words("--raw and --layer are mutually exclusive") == (
        "raw=True and layer= are mutually exclusive"
    )
    assert python_words("pass the directory with --model DIR") == "pass the directory with model=DIR"
    assert python_words("p: --gene-symbols-key 'sym': no such column") == (
        "p: gene_symbols_key='sym': no such column"
    )
    assert python_words("casing not declared; pass --lowercase/--cased") == (
        "casing not declared; pass lowercase=True/lowercase=False"
    )
    assert python_words("build with `--features cuda`") == "build with `--features cuda`"


def test_missing_local_model_is_file_not_found(tmp_path, monkeypatch):
    # a hub attempt would need the network: make any attempt fail loudly instead
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    (tmp_path / "models-local" / "all-MiniLM-L6-v2").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    for model in [
        tmp_path / "no-such-model",                 # a Path is a path
        str(tmp_path / "no-such-model"),            # absolute
        "./no-such-model",
        "models-local/all-MiniLM-L6-v3",           # org/name shape, but models-local is here
        "a/b/c",
    ]:
        with pytest.raises(FileNotFoundError) as e:
            celltext.Encoder(model, progress=False)
        msg = str(e.value)
        assert "model=" in msg and "hub" not in msg.split(";")[0], msg
        assert "HF_HUB_OFFLINE" not in msg and not CLI_FLAG.search(msg), msg
    with pytest.raises(FileNotFoundError, match=r"did you mean 'models-local/all-MiniLM-L6-v2'"):
        celltext.Encoder("models-local/all-MiniLM-L6-v3", progress=False)
    with pytest.raises(FileNotFoundError, match="neither a directory nor a known card"):
        celltext.Encoder("no-such-card", progress=False)
    with pytest.raises(FileNotFoundError):
        celltext.genes.embed(tmp_path / "nope", genes=["CD3E"], progress=False)


def test_only_org_name_is_a_hub_id(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError) as e:
        celltext.Encoder("some-org/some-model", progress=False)
    msg = str(e.value)
    # tried as a hub id (offline here), and the advice is in Python's words
    assert "not in the local HF cache" in msg and "model=DIR" in msg, msg
    assert not CLI_FLAG.search(msg), msg
