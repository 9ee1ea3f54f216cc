"""Tools in scanpy's style: take an AnnData, write into it, return None unless ``copy=True``."""

from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
import pandas as pd

from . import _adata, _celltext
from ._encoder import Encoder
from .genes import GeneStore


def _store(store: Union[GeneStore, str, "os.PathLike[str]"]) -> GeneStore:
    if isinstance(store, GeneStore):
        return store
    if isinstance(store, (str, os.PathLike)):
        return GeneStore.load(store)
    raise TypeError(f"store must be a GeneStore or a store path, not {type(store).__name__}")


def _name(key_added: str) -> str:
    return key_added[2:] if key_added.startswith("X_") else key_added


def genept_w(
    adata: Any,
    store: Union[GeneStore, str, "os.PathLike[str]"],
    layer: Optional[str] = None,
    top_n: Union[int, str] = 100,
    weights: str = "expr",
    key_added: str = "X_celltext_genept_w",
    aggregation: str = "weighted",
    species: str = "human",
    orthologs: bool = False,
    gene_symbols_key: Optional[str] = None,
    raw: bool = False,
    copy: bool = False,
) -> Optional[Any]:
    """GenePT-w cell embeddings: each cell's expression-weighted average of the gene vectors
    of its ``top_n`` most expressed mapped genes (``celltext cells embed``, same numbers).

    Reads ``X``, ``layers[layer]`` or ``raw.X`` as given (pass counts, or log-normalized
    values: no normalization is applied). A scipy CSR matrix of float32 is read in place; CSC,
    dense or other dtypes are converted to a CSR float32 copy first. The GIL is released
    during the computation.

    Writes ``obsm[key_added]`` (float32 ``[n_obs, dim]``) and, with ``name = key_added``
    without its ``X_`` prefix, ``obs[name + "_coverage"]`` (share of the cell's expression
    on mapped genes), ``obs[name + "_n_genes"]`` and ``obs[name + "_empty"]`` (no mapped
    expressed gene: a zero vector), and ``uns[name]`` (parameters and gene coverage).

    ``weights``: ``expr``, ``log1p``, ``zscore`` or ``uniform``; ``top_n``: an int or
    ``"all"``; ``aggregation``: ``weighted`` (this), ``genept`` (``X·E / n_genes``) or
    ``scelmo-wa`` (row-normalized ``X·E``).
    """
    adata = adata.copy() if copy else adata
    st = _store(store)
    names = _adata.gene_names(adata, gene_symbols_key, raw)
    cells = _adata.cell_names(adata)
    m = _adata.matrix(adata, layer, raw)
    emb, cov, n_used, empty, gene_cov = _celltext.genept_w(
        m.indptr, m.indices, m.data, m.n_rows, cells, names, st._inner, m.field,
        species, orthologs, aggregation, weights, str(top_n),
    )
    name = _name(key_added)
    adata.obsm[key_added] = emb
    adata.obs[f"{name}_coverage"] = cov.astype(np.float64)
    adata.obs[f"{name}_n_genes"] = n_used.astype(np.int64)
    adata.obs[f"{name}_empty"] = empty
    adata.uns[name] = {
        "params": {
            "layer": layer, "raw": raw, "top_n": str(top_n), "weights": weights,
            "aggregation": aggregation, "species": species, "orthologs": orthologs,
            "matrix_copied": m.copied,
        },
        "store_manifest": json.dumps(st.manifest) if st.manifest is not None else "",
        "gene_coverage": json.dumps(json.loads(gene_cov)),
        "tool": _celltext.version(),
    }
    return adata if copy else None


def cell_sentences(
    adata: Any,
    layer: Optional[str] = None,
    max_genes: Optional[int] = None,
    ablation: Optional[str] = None,
    seed: int = 0,
    ties_stable: bool = False,
    template: Optional[str] = None,
    encoder: Optional[Encoder] = None,
    gene_symbols_key: Optional[str] = None,
    raw: bool = False,
) -> List[str]:
    """Cell sentences (``celltext cells sentences``): each cell's expressed genes in
    descending expression, after ``template`` ("A cell with genes ranked by expression: ").

    Ties are broken by a seeded shuffle (``seed``) unless ``ties_stable``. ``ablation``:
    ``hash``, ``hash-instance``, ``shuffle-all``, ``shuffle-in-context``, ``shuffle-top10``,
    ``hash+shuffle-in-context`` or ``shorten:10|20|50``; the in-context ones need
    ``encoder`` (its context length). The matrix is copied once.
    """
    names = _adata.gene_names(adata, gene_symbols_key, raw)
    cells = _adata.cell_names(adata)
    m = _adata.matrix(adata, layer, raw)
    texts, _ = _celltext.cell_sentences(
        m.indptr, m.indices, m.data, m.n_rows, cells, names, m.field, max_genes,
        ties_stable, seed, template, ablation or "none",
        None if encoder is None else encoder._inner,
    )
    return texts


def embed_sentences(
    adata: Any,
    encoder: Encoder,
    layer: Optional[str] = None,
    max_genes: Optional[int] = None,
    ablation: Optional[str] = None,
    seed: int = 0,
    ties_stable: bool = False,
    template: Optional[str] = None,
    pooling: Optional[str] = None,
    normalize: bool = False,
    batch_tokens: int = 8192,
    key_added: str = "X_celltext_sentences",
    gene_symbols_key: Optional[str] = None,
    raw: bool = False,
    progress: bool = True,
    copy: bool = False,
) -> Optional[Any]:
    """Cell-sentence embeddings (GenePT-s): :func:`cell_sentences` through ``encoder`` into
    ``obsm[key_added]``; ``uns[name]`` records the model and the sentences' token budget
    (genes that fit in the model's context). The vectors equal ``celltext cells
    embed-sentences`` bit for bit (same sentences, token-budget batches and per-batch math; the
    CLI also checkpoints them in chunks). Ctrl-C stops between batches."""
    adata = adata.copy() if copy else adata
    names = _adata.gene_names(adata, gene_symbols_key, raw)
    cells = _adata.cell_names(adata)
    m = _adata.matrix(adata, layer, raw)
    texts, budget = _celltext.cell_sentences(
        m.indptr, m.indices, m.data, m.n_rows, cells, names, m.field, max_genes,
        ties_stable, seed, template, ablation or "none", encoder._inner,
    )
    adata.obsm[key_added] = encoder.embed(
        texts, pooling=pooling, normalize=normalize, batch_tokens=batch_tokens, progress=progress
    )
    b = json.loads(budget) if budget else {}
    adata.uns[_name(key_added)] = {
        "model": json.dumps(encoder.info),
        "ablation": ablation or "none",
        "seed": seed,
        "max_genes": -1 if max_genes is None else max_genes,
        "genes_in_context": json.dumps(b.get("summary")),
        "tool": _celltext.version(),
    }
    return adata if copy else None


def knn_classify(
    adata: Any,
    label: str,
    use_rep: str = "X_celltext_genept_w",
    k: int = 10,
    vote: str = "majority",
    test_fraction: float = 0.2,
    seed: int = 0,
    key_added: str = "celltext",
    copy: bool = False,
) -> Union[Dict[str, Any], Any]:
    """Cosine KNN on ``obsm[use_rep]`` (``celltext classify --method knn``).

    Labelled cells (``obs[label]`` non-empty) are split train/test, stratified by class
    (``test_fraction``, ``seed``: the CLI's split). Train cells are predicted leave-one-out,
    test and unlabelled cells from the train cells. Writes ``obs[key_added + "_pred"]``,
    ``obs[key_added + "_conf"]`` (the winner's share of the votes) and
    ``obs[key_added + "_split"]`` (``train``/``test``/``unlabeled``), and
    ``uns[key_added + "_knn"]``. Returns the test-set metrics (accuracy, macro/weighted F1,
    Cohen's kappa, per class, confusion), or the AnnData copy when ``copy=True`` (metrics in
    ``uns``).
    """
    adata = adata.copy() if copy else adata
    labels = _adata.obs_labels(adata, label)
    x = _adata.representation(adata, use_rep)
    pred, conf, split, report = _celltext.knn_classify(
        x, labels, label, int(k), vote, float(test_fraction), int(seed)
    )
    _write_predictions(adata, key_added, pred, conf, split)
    metrics = json.loads(report)
    adata.uns[f"{key_added}_knn"] = {
        "params": {"label": label, "use_rep": use_rep, "k": k, "vote": vote,
                   "test_fraction": test_fraction, "seed": seed},
        "metrics": json.dumps(metrics),
    }
    return adata if copy else metrics


def mlp_classify(
    adata: Any,
    label: str,
    use_rep: Union[str, Sequence[str]] = ("X_celltext_genept_w",),
    fusion: Optional[str] = None,
    hidden: Sequence[int] = (256,),
    dropout: float = 0.1,
    lr: float = 1e-3,
    weight_decay: float = 1e-2,
    epochs: int = 200,
    patience: int = 10,
    batch_size: int = 64,
    val_fraction: float = 0.1,
    class_weights: bool = False,
    test_fraction: float = 0.2,
    seed: int = 0,
    key_added: str = "celltext",
    copy: bool = False,
) -> Union[Dict[str, Any], Any]:
    """A small MLP on one or several embeddings (``celltext classify --method mlp``).

    ``use_rep`` names one obsm key or several; several are fused (``fusion``: ``concat``, the
    default, or ``gated``) after each is layer-normalized. Same labels and stratified split
    as :func:`knn_classify`; a seeded validation part of the train cells (``val_fraction``)
    stops training early (``patience``). AdamW, ``hidden`` ReLU layers with ``dropout``.
    Writes ``obs[key_added + "_pred"]``, ``obs[key_added + "_conf"]`` (softmax
    probability of the prediction), ``obs[key_added + "_split"]`` and ``uns[key_added +
    "_mlp"]``; returns the test-set metrics (or the AnnData copy when ``copy=True``). The GIL
    is released while it trains.
    """
    adata = adata.copy() if copy else adata
    reps = [use_rep] if isinstance(use_rep, str) else list(use_rep)
    labels = _adata.obs_labels(adata, label)
    xs = [(r, _adata.representation(adata, r)) for r in reps]
    pred, conf, split, report = _celltext.mlp_classify(
        xs, labels, label, fusion or "concat", [int(h) for h in hidden], float(dropout),
        float(lr), float(weight_decay), int(epochs), int(patience), int(batch_size),
        float(val_fraction), bool(class_weights), float(test_fraction), int(seed),
    )
    _write_predictions(adata, key_added, pred, conf, split)
    metrics = json.loads(report)
    adata.uns[f"{key_added}_mlp"] = {
        "params": {"label": label, "use_rep": reps, "fusion": fusion or "concat",
                   "hidden": list(hidden), "epochs": epochs, "seed": seed,
                   "test_fraction": test_fraction},
        "metrics": json.dumps(metrics),
    }
    return adata if copy else metrics


def _write_predictions(adata: Any, key_added: str, pred, conf, split) -> None:
    adata.obs[f"{key_added}_pred"] = pd.Categorical(pred, categories=sorted(set(pred)))
    adata.obs[f"{key_added}_conf"] = conf
    adata.obs[f"{key_added}_split"] = pd.Categorical(
        split, categories=["train", "test", "unlabeled"]
    )


__all__ = ["genept_w", "cell_sentences", "embed_sentences", "knn_classify", "mlp_classify"]
