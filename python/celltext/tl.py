"""Tools in scanpy's style: take an AnnData, write into it, return None unless ``copy=True``.

Every tool records what it did in ``adata.uns`` as data (nested dicts, scalars and arrays that
h5ad and zarr store), never JSON strings: the parameters actually used, the model or store,
and summaries (coverage, token budget, metrics).
"""

from __future__ import annotations

import json
import os
import time
import warnings
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import pandas as pd

from . import _adata, _celltext, _progress
from ._encoder import Encoder
from ._errors import python_words, translated
from ._settings import logger
from ._uns import SAMPLE, metrics_to_uns, summary, to_uns
from .genes import GeneStore

#: :func:`genept_w` warns when the genes that map onto the store carry less than this share
#: of the expression (or when a cell has no mapped expressed gene).
COVERAGE_WARN = 0.5


class CoverageWarning(UserWarning):
    """Few of the dataset's genes (by expression) map onto the gene store."""


class ContextWarning(UserWarning):
    """Cell sentences are longer than the model's context: the genes past it are cut."""


def _store(store: Union[GeneStore, str, "os.PathLike[str]"]) -> GeneStore:
    if isinstance(store, GeneStore):
        return store
    if isinstance(store, (str, os.PathLike)):
        return GeneStore.load(store)
    raise TypeError(f"store= must be a GeneStore or a store path, not {type(store).__name__}")


def _name(key_added: str) -> str:
    return key_added[2:] if key_added.startswith("X_") else key_added


def _coverage_uns(cov: Dict[str, Any], full: bool) -> Dict[str, Any]:
    routes = cov.get("by_route") or []
    by_route = dict(routes) if isinstance(routes, list) else dict(routes)
    out: Dict[str, Any] = {
        "n_genes": cov["n_genes"],
        "n_mapped": cov["n_genes"] - cov["n_unmatched"],
        "by_route": {str(k): int(v) for k, v in by_route.items()},
        "unmatched": summary(cov.get("unmatched") or [], full),
    }
    if cov.get("expression_fraction") is not None:
        out["expression_fraction"] = float(cov["expression_fraction"])
    return to_uns(out)


@translated()
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
    keep_unmatched: bool = False,
    copy: bool = False,
) -> Optional[Any]:
    """GenePT-w cell embeddings: each cell's expression-weighted average of the gene vectors
    of its ``top_n`` most expressed mapped genes (``celltext cells embed``, same numbers).

    Parameters
    ----------
    adata : anndata.AnnData
        Cells × genes. The matrix is read as given (counts or log-normalized values; no
        normalization is applied). A scipy CSR matrix of float32 is read in place; CSC,
        dense or other dtypes are converted to a CSR float32 copy first.
    store : GeneStore or str or os.PathLike
        Gene vectors (:func:`celltext.genes.embed`) or a store path.
    layer : str, optional
        Read ``adata.layers[layer]`` instead of ``adata.X``.
    top_n : int or 'all'
        Most expressed mapped genes per cell that enter the average.
    weights : {'expr', 'log1p', 'zscore', 'uniform'}
        Gene weights in the average.
    key_added : str
        ``obsm`` key of the vectors; the other outputs are named after it without ``X_``.
    aggregation : {'weighted', 'genept', 'scelmo-wa'}
        ``weighted`` (this), ``genept`` (``X·E / n_genes``) or ``scelmo-wa`` (row-normalized
        ``X·E``).
    species : {'human', 'mouse'}
        The resolver's aliases and Ensembl ids for mapping gene names onto the store.
    orthologs : bool
        Also map genes through human-mouse orthologs.
    gene_symbols_key : str, optional
        A ``var`` column of gene symbols to use instead of ``var_names`` (e.g. when
        ``var_names`` are Ensembl ids and the store has symbols).
    raw : bool
        Read ``adata.raw`` (its ``X`` and ``var``); not with ``layer``.
    keep_unmatched : bool
        Record every unmatched gene in ``uns`` (default: their count and the first 10;
        :meth:`GeneStore.coverage` lists them all).
    copy : bool
        Return a copy instead of writing into ``adata``.

    Returns
    -------
    anndata.AnnData or None
        The copy when ``copy=True``, else None. Writes ``obsm[key_added]`` (float32
        ``[n_obs, dim]``) and, with ``name`` = ``key_added`` without ``X_``:
        ``obs[name + '_coverage']`` (share of the cell's expression on mapped genes),
        ``obs[name + '_n_genes']``, ``obs[name + '_empty']`` (no mapped expressed gene: a
        zero vector) and ``uns[name]``: ``params`` (as used), ``gene_coverage``
        (``n_genes``, ``n_mapped``, ``by_route``, ``expression_fraction``, ``unmatched``:
        ``n``, ``sample``, and ``all`` with ``keep_unmatched``), ``store`` (its manifest)
        and ``tool``. Raises ValueError when no gene maps onto the store; warns
        (:class:`CoverageWarning`) when the mapped genes carry less than ``COVERAGE_WARN``
        of the expression or some cells get zero vectors.

    Examples
    --------
    >>> celltext.tl.genept_w(adata, store, layer="counts")
    >>> adata.obsm["X_celltext_genept_w"].shape
    (601, 384)
    >>> sc.pp.neighbors(adata, use_rep="X_celltext_genept_w")
    """
    _adata.check_source(adata, layer, raw)
    adata = adata.copy() if copy else adata
    st = _store(store)
    names = _adata.gene_names(adata, gene_symbols_key, raw)
    cells = _adata.cell_names(adata)
    m = _adata.matrix(adata, layer, raw)
    emb, cov, n_used, empty, gene_cov = _celltext.genept_w(
        m.indptr, m.indices, m.data, m.n_rows, cells, names, st._inner, m.field,
        species, orthologs, aggregation, weights, str(top_n),
    )
    gc = json.loads(gene_cov)
    n_genes, n_mapped = gc["n_genes"], gc["n_genes"] - gc["n_unmatched"]
    where = f"adata.{'raw.' if raw else ''}var" + (
        f"['{gene_symbols_key}']" if gene_symbols_key else "_names"
    )
    if n_mapped == 0:
        ours = ", ".join(repr(g) for g in names[:3])
        theirs = ", ".join(repr(g) for g in st.genes[:3])
        raise ValueError(
            f"store=: none of the {n_genes:,} genes of {where} ({ours}, ...) is in the store "
            f"({len(st):,} genes: {theirs}, ...), so every cell would be a zero vector. If "
            "the names are ids of another kind, pass gene_symbols_key= (a var column of gene "
            "symbols); for another species, species= or orthologs=True"
        )
    frac = gc.get("expression_fraction")
    n_empty = int(np.count_nonzero(empty))
    if (frac is not None and frac < COVERAGE_WARN) or n_empty:
        warnings.warn(
            f"low gene coverage: {n_mapped:,} of {n_genes:,} genes of {where} "
            f"({n_mapped / n_genes:.1%}) map onto the store, carrying "
            f"{(frac or 0.0):.1%} of the expression; {n_empty:,} of {m.n_rows:,} cells have no "
            "mapped expressed gene (zero vectors). Check gene_symbols_key= and species=, or "
            "embed more genes (celltext.genes.embed(..., genes=celltext.genes.top_genes(adata, "
            "top_n)))",
            CoverageWarning,
            stacklevel=3,
        )
    name = _name(key_added)
    adata.obsm[key_added] = emb
    adata.obs[f"{name}_coverage"] = cov.astype(np.float64)
    adata.obs[f"{name}_n_genes"] = n_used.astype(np.int64)
    adata.obs[f"{name}_empty"] = empty
    params = {
        "layer": layer, "raw": raw, "matrix": m.field, "top_n": top_n, "weights": weights,
        "aggregation": aggregation, "species": species, "orthologs": orthologs,
        "gene_symbols_key": gene_symbols_key, "matrix_copied": m.copied,
    }
    adata.uns[name] = {
        "params": to_uns(params),
        "gene_coverage": _coverage_uns(gc, keep_unmatched),
        "store": to_uns(
            {"n_genes": len(st), "dim": st.dim, "manifest": st.manifest}, max_list=SAMPLE
        ),
        "tool": _celltext.version(),
    }
    logger.info(
        "genept_w: %s of %s genes mapped (%s of the expression) -> obsm[%r] %s",
        f"{n_mapped:,}", f"{n_genes:,}", "n/a" if frac is None else f"{frac:.1%}", key_added,
        emb.shape,
    )
    return adata if copy else None


def _sentences(
    adata: Any, encoder: Optional[Encoder], layer: Optional[str], max_genes: Optional[int],
    ablation: Optional[str], seed: int, ties_stable: bool, template: Optional[str],
    gene_symbols_key: Optional[str], raw: bool,
) -> Tuple[List[str], Optional[Dict[str, Any]], str]:
    _adata.check_source(adata, layer, raw)
    names = _adata.gene_names(adata, gene_symbols_key, raw)
    cells = _adata.cell_names(adata)
    m = _adata.matrix(adata, layer, raw)
    texts, budget = _celltext.cell_sentences(
        m.indptr, m.indices, m.data, m.n_rows, cells, names, m.field, max_genes,
        ties_stable, seed, template, ablation or "none",
        None if encoder is None else encoder._inner,
    )
    b = json.loads(budget) if budget else None
    if b and b.get("n_truncated"):
        s = b.get("summary") or {}
        n_genes = float(np.median(b["n_genes"])) if b.get("n_genes") else float("nan")
        fit = f"a median of {s.get('median', float('nan')):g} of {n_genes:g} genes fit"
        warnings.warn(
            f"{b['n_truncated']:,} of {len(texts):,} cell sentences are longer than the model's "
            f"context ({b['max_len']} tokens): {fit}, the rest are cut when embedded. Pass "
            "max_genes= to say how many genes a sentence holds, or use a model with a longer "
            "context",
            ContextWarning,
            stacklevel=4,
        )
    return texts, b, m.field


@translated(rename={"model": "encoder"})
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
    descending expression, after ``template``.

    Parameters
    ----------
    adata : anndata.AnnData
        Cells × genes (the matrix is copied once).
    layer : str, optional
        Rank by ``adata.layers[layer]`` instead of ``adata.X``.
    max_genes : int, optional
        Genes per sentence (None: every expressed gene).
    ablation : str, optional
        ``hash``, ``hash-instance``, ``shuffle-all``, ``shuffle-in-context``,
        ``shuffle-top10``, ``hash+shuffle-in-context`` or ``shorten:10|20|50``; the
        in-context ones need ``encoder``.
    seed : int
        Seed of the tie-breaking shuffle and of the ablations.
    ties_stable : bool
        Break ties by column order instead of a seeded shuffle.
    template : str, optional
        Text before the genes (default ``celltext._celltext.GENEPT_S_PREFIX``, "A cell with
        genes ranked by expression: ").
    encoder : Encoder, optional
        The model the sentences are for: its context length for the in-context ablations
        and for a :class:`ContextWarning` when sentences are longer than it.
    gene_symbols_key : str, optional
        A ``var`` column of gene symbols to use instead of ``var_names``.
    raw : bool
        Read ``adata.raw`` (its ``X`` and ``var``); not with ``layer``.

    Returns
    -------
    list of str
        One sentence per cell, in ``obs`` order.

    Examples
    --------
    >>> celltext.tl.cell_sentences(adata, layer="counts", max_genes=5)[0]
    'A cell with genes ranked by expression: MALAT1 B2M TMSB4X ...'
    """
    texts, _, _ = _sentences(
        adata, encoder, layer, max_genes, ablation, seed, ties_stable, template,
        gene_symbols_key, raw,
    )
    return texts


@translated(rename={"model": "encoder"})
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
    """Cell-sentence embeddings (GenePT-s): :func:`cell_sentences` through ``encoder``.

    The vectors equal ``celltext cells embed-sentences`` bit for bit (same sentences,
    token-budget batches and per-batch math; the CLI also checkpoints them in chunks).

    Parameters
    ----------
    adata : anndata.AnnData
        Cells × genes.
    encoder : Encoder
        The text encoder.
    layer : str, optional
        Rank genes by ``adata.layers[layer]`` instead of ``adata.X``.
    max_genes : int, optional
        Genes per sentence (None: every expressed gene; the model reads as many as fit in
        its context, and a :class:`ContextWarning` says how many when sentences are cut).
    ablation : str, optional
        As :func:`cell_sentences`.
    seed : int
        Seed of the tie-breaking shuffle and of the ablations.
    ties_stable : bool
        Break ties by column order instead of a seeded shuffle.
    template : str, optional
        Text before the genes (default ``celltext._celltext.GENEPT_S_PREFIX``).
    pooling : {'cls', 'mean', 'max'}, optional
        Token pooling; None uses the model's.
    normalize : bool
        L2-normalize each vector.
    batch_tokens : int
        Token budget of one batch.
    key_added : str
        ``obsm`` key of the vectors; ``uns`` is named after it without ``X_``.
    gene_symbols_key : str, optional
        A ``var`` column of gene symbols to use instead of ``var_names``.
    raw : bool
        Read ``adata.raw`` (its ``X`` and ``var``); not with ``layer``.
    progress : bool
        Show a progress bar (tqdm: a widget in Jupyter, text in a terminal).
    copy : bool
        Return a copy instead of writing into ``adata``.

    Returns
    -------
    anndata.AnnData or None
        The copy when ``copy=True``, else None. Writes ``obsm[key_added]`` (float32
        ``[n_obs, dim]``) and ``uns[name]``: ``params`` (every parameter as used: the
        template and pooling actually applied, ``normalize``, ``layer``, ...), ``model``
        (id, revision, weights sha256, ...), ``genes_in_context`` (how many genes of a
        sentence fit in the model's context: min, median, mean, max), ``n_truncated`` and
        ``max_len``; ``obs[name + '_genes_in_context']`` per cell.
        Ctrl-C stops the work between batches.

    Examples
    --------
    >>> enc = celltext.Encoder("models-local/all-MiniLM-L6-v2")
    >>> celltext.tl.embed_sentences(adata, enc, layer="counts", max_genes=60)
    >>> adata.uns["celltext_sentences"]["params"]["pooling"]
    'mean'
    """
    if not isinstance(encoder, Encoder):
        raise TypeError(f"encoder= must be a celltext.Encoder, not {type(encoder).__name__}")
    _adata.check_source(adata, layer, raw)
    adata = adata.copy() if copy else adata
    texts, b, field = _sentences(
        adata, encoder, layer, max_genes, ablation, seed, ties_stable, template,
        gene_symbols_key, raw,
    )
    info = encoder.info
    used_pooling = pooling if pooling is not None else info["pooling"]
    adata.obsm[key_added] = encoder.embed(
        texts, pooling=used_pooling, normalize=normalize, batch_tokens=batch_tokens,
        progress=progress,
    )
    params = {
        "layer": layer, "raw": raw, "matrix": field, "max_genes": max_genes,
        "ablation": ablation or "none", "seed": seed, "ties_stable": ties_stable,
        "template": _celltext.GENEPT_S_PREFIX if template is None else template,
        "pooling": used_pooling, "normalize": normalize, "batch_tokens": batch_tokens,
        "gene_symbols_key": gene_symbols_key,
    }
    model = {k: v for k, v in info.items() if k not in ("pooling", "normalize")}
    model["default_pooling"] = info["pooling"]
    entry: Dict[str, Any] = {
        "params": to_uns(params),
        "model": to_uns(model),
        "tool": _celltext.version(),
    }
    if b:
        entry["genes_in_context"] = to_uns(b.get("summary") or {})
        entry["n_truncated"] = int(b.get("n_truncated") or 0)
        entry["max_len"] = int(b["max_len"])
        adata.obs[f"{_name(key_added)}_genes_in_context"] = np.asarray(
            b["in_context"], dtype=np.int64
        )
    adata.uns[_name(key_added)] = entry
    logger.info("embed_sentences: %d cells -> obsm[%r]", len(texts), key_added)
    return adata if copy else None


def _label_values(adata: Any, label: str) -> Tuple[List[str], Dict[str, Any], pd.Series]:
    """The label column as the core's strings, the way back from a class name to the
    column's own value, and the column."""
    strs = _adata.obs_labels(adata, label)
    col = adata.obs[label]
    back: Dict[str, Any] = {}
    for s, v in zip(strs, col.tolist()):
        t = s.strip()
        if t and t.lower() != "nan" and t not in back:
            back[t] = v
    return strs, back, col


def _write_predictions(
    adata: Any, key_added: str, label: str, back: Dict[str, Any], col: pd.Series,
    pred: List[str], conf: np.ndarray, split: List[str],
) -> None:
    """Predictions in the label's own terms: its categories (in order, so scanpy colours a
    class alike in both panels; ``uns[label + '_colors']`` is copied) or its dtype."""
    values = [back[p] for p in pred]
    key = f"{key_added}_pred"
    colors = adata.uns.get(f"{label}_colors")
    if isinstance(col.dtype, pd.CategoricalDtype):
        cats = col.cat.categories
        out: Any = pd.Categorical(values, categories=cats, ordered=col.cat.ordered)
        if colors is not None and len(colors) == len(cats):
            adata.uns[f"{key}_colors"] = np.array(colors, dtype=object).copy()
    elif pd.api.types.is_bool_dtype(col.dtype) or pd.api.types.is_numeric_dtype(col.dtype):
        out = pd.array(values, dtype=col.dtype) if pd.api.types.is_extension_array_dtype(
            col.dtype
        ) else np.asarray(values, dtype=col.dtype)
    else:
        # strings: categories sorted, as scanpy makes them for the label column
        out = pd.Categorical(values, categories=sorted(set(back.values()), key=str))
    adata.obs[key] = out
    adata.obs[f"{key_added}_conf"] = conf
    adata.obs[f"{key_added}_split"] = pd.Categorical(
        split, categories=["train", "test", "unlabeled"]
    )


def _metrics(report: str, back: Dict[str, Any]) -> Dict[str, Any]:
    m = json.loads(report)
    names = sorted(back)
    m["classes"] = [names[i] for i in m["labels"]]
    return m


@translated()
def knn_classify(
    adata: Any,
    label: str,
    use_rep: str = "X_celltext_genept_w",
    k: int = 10,
    vote: str = "majority",
    test_fraction: float = 0.2,
    seed: int = 0,
    key_added: str = "celltext_knn",
    copy: bool = False,
) -> Union[Dict[str, Any], Any]:
    """Cosine KNN on ``obsm[use_rep]`` (``celltext classify --method knn``, same numbers).

    Labelled cells (``obs[label]`` not missing) are split train/test, stratified by class
    (the CLI's split for the same ``test_fraction`` and ``seed``). Train cells are predicted
    leave-one-out, test and unlabelled cells from the train cells.

    Parameters
    ----------
    adata : anndata.AnnData
        Cells with an embedding in ``obsm``.
    label : str
        ``obs`` column of the cell types (categorical, string or integer).
    use_rep : str
        ``obsm`` key of the embedding (``"X"`` for ``adata.X``).
    k : int
        Neighbours that vote.
    vote : {'majority', 'distance'}
        Vote of the neighbours.
    test_fraction : float
        Share of each class held out for the test metrics.
    seed : int
        Seed of the split.
    key_added : str
        Prefix of the outputs. The default differs from :func:`mlp_classify`'s
        (``celltext_mlp``), so running both keeps both; pass your own to keep several runs.
    copy : bool
        Return a copy instead of writing into ``adata``.

    Returns
    -------
    dict or anndata.AnnData
        The test-set metrics (as :func:`celltext.metrics.classification_report`), or the
        copy when ``copy=True``. Writes ``obs[key_added + '_pred']`` (in the label's terms:
        its categories and colours for a categorical label, its dtype for an integer one),
        ``obs[key_added + '_conf']`` (the winner's share of the votes),
        ``obs[key_added + '_split']`` (``train``/``test``/``unlabeled``) and
        ``uns[key_added]``: ``params``, ``metrics`` (confusion as a 2-D array, per-class
        scores as arrays in the order of ``classes``).

    Examples
    --------
    >>> m = celltext.tl.knn_classify(adata, "label", use_rep="X_celltext_genept_w", k=10)
    >>> round(m["accuracy"], 3)
    0.738
    >>> celltext.pl.confusion(adata, "label", "celltext_knn_pred")
    """
    adata = adata.copy() if copy else adata
    labels, back, col = _label_values(adata, label)
    x = _adata.representation(adata, use_rep)
    pred, conf, split, report = _celltext.knn_classify(
        x, labels, label, int(k), vote, float(test_fraction), int(seed)
    )
    _write_predictions(adata, key_added, label, back, col, pred, conf, split)
    metrics = _metrics(report, back)
    adata.uns[key_added] = {
        "method": "knn",
        "params": to_uns({"label": label, "use_rep": use_rep, "k": k, "vote": vote,
                          "test_fraction": test_fraction, "seed": seed}),
        "metrics": metrics_to_uns(metrics),
        "tool": _celltext.version(),
    }
    logger.info("knn_classify: test accuracy %.3f on %d cells -> obs[%r]",
                metrics["accuracy"], metrics["n_samples"], f"{key_added}_pred")
    return adata if copy else metrics


@translated()
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
    key_added: str = "celltext_mlp",
    copy: bool = False,
) -> Union[Dict[str, Any], Any]:
    """A small MLP on one or several embeddings (``celltext classify --method mlp``, same
    numbers). The GIL is released while it trains.

    Parameters
    ----------
    adata : anndata.AnnData
        Cells with embeddings in ``obsm``.
    label : str
        ``obs`` column of the cell types (categorical, string or integer).
    use_rep : str or sequence of str
        One ``obsm`` key, or several to fuse (each layer-normalized first).
    fusion : {'concat', 'gated'}, optional
        How several embeddings are combined (default ``concat``).
    hidden : sequence of int
        Widths of the hidden ReLU layers.
    dropout : float
        Dropout after each hidden layer.
    lr : float
        AdamW learning rate.
    weight_decay : float
        AdamW weight decay.
    epochs : int
        Most epochs.
    patience : int
        Epochs without a better validation loss before training stops.
    batch_size : int
        Minibatch size.
    val_fraction : float
        Seeded share of the train cells used for early stopping.
    class_weights : bool
        Weigh the loss by inverse class frequency.
    test_fraction : float
        Share of each class held out for the test metrics (the split of
        :func:`knn_classify`).
    seed : int
        Seed of the split, initialization and minibatch order.
    key_added : str
        Prefix of the outputs (default ``celltext_mlp``, distinct from
        :func:`knn_classify`'s).
    copy : bool
        Return a copy instead of writing into ``adata``.

    Returns
    -------
    dict or anndata.AnnData
        The test-set metrics, or the copy when ``copy=True``. Writes
        ``obs[key_added + '_pred']`` (in the label's terms), ``obs[key_added + '_conf']``
        (softmax probability of the prediction), ``obs[key_added + '_split']`` and
        ``uns[key_added]`` (``params``, ``metrics``).

    Examples
    --------
    >>> m = celltext.tl.mlp_classify(adata, "label", use_rep=["X_celltext_genept_w",
    ...                                                       "X_celltext_sentences"])
    """
    adata = adata.copy() if copy else adata
    reps = [use_rep] if isinstance(use_rep, str) else list(use_rep)
    labels, back, col = _label_values(adata, label)
    xs = [(r, _adata.representation(adata, r)) for r in reps]
    pred, conf, split, report = _celltext.mlp_classify(
        xs, labels, label, fusion or "concat", [int(h) for h in hidden], float(dropout),
        float(lr), float(weight_decay), int(epochs), int(patience), int(batch_size),
        float(val_fraction), bool(class_weights), float(test_fraction), int(seed),
    )
    _write_predictions(adata, key_added, label, back, col, pred, conf, split)
    metrics = _metrics(report, back)
    adata.uns[key_added] = {
        "method": "mlp",
        "params": to_uns({
            "label": label, "use_rep": reps, "fusion": fusion or "concat",
            "hidden": [int(h) for h in hidden], "dropout": dropout, "lr": lr,
            "weight_decay": weight_decay, "epochs": epochs, "patience": patience,
            "batch_size": batch_size, "val_fraction": val_fraction,
            "class_weights": class_weights, "test_fraction": test_fraction, "seed": seed,
        }),
        "metrics": metrics_to_uns(metrics),
        "tool": _celltext.version(),
    }
    logger.info("mlp_classify: test accuracy %.3f on %d cells -> obs[%r]",
                metrics["accuracy"], metrics["n_samples"], f"{key_added}_pred")
    return adata if copy else metrics


def _obs_column(adata: Any, key: str, what: str) -> Any:
    """An obs column as the core reads it from an h5ad: numbers (bool and numeric dtypes) as
    float64 with NaN for missing values, anything else (categories, strings) as text with ""
    for missing values."""
    if key not in adata.obs.columns:
        cols = list(map(str, adata.obs.columns))
        hint = next(
            (f" (did you mean '{c}'? names are case-sensitive)" for c in cols
             if c.lower() == key.lower()),
            "",
        )
        raise KeyError(
            f"{what}={key!r}: obs column '{key}' not found{hint}; available columns: "
            f"{', '.join(cols) or '(none)'}"
        )
    col = adata.obs[key]
    dtype = col.dtype
    if not isinstance(dtype, pd.CategoricalDtype) and (
        pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_numeric_dtype(dtype)
    ):
        return col.astype("float64").to_numpy(dtype=np.float64, na_value=np.nan)
    return [_label_text(v) for v in col.astype(object)]


def _label_text(v: Any) -> str:
    """A category as the core spells it when it reads the h5ad: missing as "", a number
    without a trailing ``.0`` (``1.0`` -> ``1``, ``0.5`` stays), ``True``/``False`` for bools,
    anything else as ``str``; so a model trained here embeds the same AnnData written to disk."""
    if v is None or v is pd.NA or v is pd.NaT:
        return ""
    if isinstance(v, (bool, np.bool_)):
        return "True" if v else "False"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        x = float(v)
        if np.isnan(x):
            return ""
        if np.isfinite(x) and x == int(x) and abs(x) < 1e15:
            return str(int(x))
        return np.format_float_positional(x, trim="-") if np.isfinite(x) else str(x)
    return str(v)


def _keys(value: Union[None, str, Sequence[str]]) -> List[Any]:
    """Column names as given: one name (any hashable pandas allows, e.g. ``0``) or several."""
    if value is None:
        return []
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        return [value]
    return list(value)


@translated(rename={"genes": "store"})
def scilama(
    adata: Any,
    store: Union[GeneStore, str, "os.PathLike[str]", Sequence[Union[GeneStore, str, "os.PathLike[str]"]]],
    batch_key: Union[None, str, Sequence[str]] = None,
    covariate_key: Union[None, str, Sequence[str]] = None,
    layer: Optional[str] = None,
    hvg: int = 2000,
    mode: str = "direct",
    fusion: str = "average",
    hidden: Sequence[int] = (900, 400),
    latent: int = 50,
    beta: float = 1.0,
    kl_warmup_epochs: int = 25,
    kl_warmup_rate: float = 0.05,
    gamma: float = 0.05,
    dropout: float = 0.1,
    var_eps: float = 1e-4,
    lr: float = 1e-3,
    lr_decay: float = 0.99,
    weight_decay: float = 0.0,
    batch_size: int = 128,
    epochs: int = 500,
    patience: int = 25,
    val_fraction: float = 0.1,
    val_latent: str = "sample",
    gene_input: str = "store",
    species: str = "human",
    orthologs: bool = False,
    gene_symbols_key: Optional[str] = None,
    device: str = "cpu",
    key_added: str = "X_scilama",
    seed: int = 0,
    model_path: Optional[Union[str, "os.PathLike[str]"]] = None,
    progress: bool = True,
    copy: bool = False,
) -> Union[pd.DataFrame, Any]:
    """sciLaMA (``celltext scilama train``, the same code and the same numbers for the same
    seed): a paired VAE of the cells' scaled expression and the genes' static vectors from
    ``store``, giving context-aware cell embeddings (cell μ) and gene embeddings (gene μ).
    The GIL is released while it trains.

    Parameters
    ----------
    adata : anndata.AnnData
        Cells × genes of **raw counts** (sciLaMA normalizes them itself: CP10k, log1p,
        z-score per gene, clip). Sparse or dense; the matrix is copied once.
    store : GeneStore or path, or a sequence of them
        Static gene vectors (:func:`celltext.genes.embed`). Several stores each get their own
        gene encoder, fused by ``fusion``, and the model keeps the genes found in every store.
    batch_key : str or sequence of str, optional
        Categorical ``obs`` column(s) (e.g. the batch), one-hot into the cell encoder and
        decoder; the highly variable genes are then chosen within batches.
    covariate_key : str or sequence of str, optional
        Numeric ``obs`` column(s), z-scored into the cell encoder and decoder.
    layer : str, optional
        Read ``adata.layers[layer]`` (e.g. ``"counts"``) instead of ``adata.X``.
    hvg : int
        Keep this many of the store's genes: scanpy's seurat-flavor highly variable genes
        (0: all).
    mode : {'direct', 'stepwise', 'beta-vae'}
        Training scheme. ``direct`` (the reference's default) trains both VAEs jointly and gives
        contextual gene embeddings, but its cells can lose fine types (pbmc3k 10-NN 0.48 against
        PCA-50's 0.90, docs/scilama.md); ``beta-vae`` is the cell VAE alone, keeps the types
        (0.85) and trains no gene VAE, so it returns no gene embeddings; ``stepwise`` trains the
        cell VAE, then the gene VAE, then both.
    fusion : {'average', 'moe', 'poe'}
        How several stores' gene latents are fused; unused with one store.
    hidden, latent, beta, kl_warmup_epochs, kl_warmup_rate, gamma, dropout, var_eps, lr, lr_decay, weight_decay, batch_size, epochs, patience, val_fraction, val_latent
        As the CLI's flags of the same names (``celltext scilama train --help``), with the
        same defaults (the reference implementation's).
    gene_input : {'store', 'self', 'random', 'shuffled'}
        What the gene VAE encodes (the baselines replace the store's vectors; one store).
    species : {'human', 'mouse'}
        The resolver's aliases and Ensembl ids for matching gene names to the store.
    orthologs : bool
        Also match genes through human-mouse orthologs.
    gene_symbols_key : str, optional
        A ``var`` column of gene symbols to use instead of ``var_names``.
    device : str
        ``cpu``, ``cuda[:N]`` or ``metal[:N]`` (a build with that feature).
    key_added : str
        ``obsm`` and ``varm`` key of the embeddings; the other outputs are named after it
        without ``X_`` (``name``).
    seed : int
        Seed of the validation split, initial weights, minibatches, dropout and noise.
    model_path : str or os.PathLike, optional
        Also write the trained model there (``.safetensors``, with its manifest beside it),
        the file ``celltext scilama embed --model`` projects new cells with.
    progress : bool
        Show a progress bar over the epochs (tqdm).
    copy : bool
        Return a copy instead of writing into ``adata``.

    Returns
    -------
    pandas.DataFrame or anndata.AnnData
        The contextual gene embeddings (float32, one row per model gene, indexed by gene
        name; empty with ``mode='beta-vae'``), or the copy when ``copy=True``. Writes
        ``obsm[key_added]`` (cell μ, float32 ``[n_obs, latent]``),
        ``obs[name + '_split']`` (``fit`` / ``val``: the cells held out for early stopping),
        ``varm[key_added]`` (gene μ for the model's genes, NaN rows for the other genes, as
        scanpy leaves genes out of a representation) and ``uns[name]``: ``params`` (as
        used), ``stores``, ``genes`` (the model's genes), ``gene_coverage``, ``covariates``
        (categories in one-hot order, means and stds), ``losses`` (per epoch: step, epoch,
        KL weight, train loss / recon / KL, validation loss), ``epochs_run``,
        ``best_epochs``, ``n_fit``, ``n_val``, ``seconds`` and ``tool``. Raises KeyError for
        a missing ``obs`` column or layer, ValueError when no gene matches the store.

    Examples
    --------
    >>> genes = celltext.tl.scilama(adata, "pbmc_minilm", layer="counts", batch_key="batch",
    ...                             epochs=50, seed=0)
    >>> sc.pp.neighbors(adata, use_rep="X_scilama")
    >>> genes.loc["CD3E"].shape
    (50,)
    """
    t0 = time.perf_counter()
    _adata.check_source(adata, layer, False)
    batch_cols, covariate_cols = _keys(batch_key), _keys(covariate_key)
    obs = [(str(k), _obs_column(adata, k, "batch_key")) for k in batch_cols]
    obs += [(str(k), _obs_column(adata, k, "covariate_key")) for k in covariate_cols]
    batch_keys, covariate_keys = [str(k) for k in batch_cols], [str(k) for k in covariate_cols]
    given = list(store) if isinstance(store, (list, tuple)) else [store]
    if not given:
        raise ValueError("store=: give at least one gene store")
    named = []
    for i, s in enumerate(given):
        st = _store(s)
        name = os.fspath(s) if isinstance(s, (str, os.PathLike)) else f"GeneStore {i + 1}"
        named.append((name, st))
    adata = adata.copy() if copy else adata
    names = _adata.gene_names(adata, gene_symbols_key, False)
    cells = _adata.cell_names(adata)
    m = _adata.matrix(adata, layer, False)
    config = {
        "mode": mode, "fusion": fusion, "hidden": [int(h) for h in hidden],
        "latent": int(latent), "beta": float(beta), "kl_warmup_epochs": int(kl_warmup_epochs),
        "kl_warmup_rate": float(kl_warmup_rate), "gamma": float(gamma),
        "dropout": float(dropout), "var_eps": float(var_eps), "lr": float(lr),
        "lr_decay": float(lr_decay), "weight_decay": float(weight_decay),
        "batch_size": int(batch_size), "epochs": int(epochs), "patience": int(patience),
        "val_fraction": float(val_fraction), "val_latent": val_latent, "seed": int(seed),
    }
    bar = _progress.make(progress, "sciLaMA", "epochs")
    ok = False
    try:
        cell_mu, split, genes, gene_mu, info = _celltext.scilama_train(
            m.indptr, m.indices, m.data, m.n_rows, cells, names,
            [(n, st._inner) for n, st in named], obs, json.dumps(config), batch_keys,
            covariate_keys, species, orthologs, int(hvg), gene_input, device,
            None if model_path is None else os.fspath(model_path), bar,
        )
        ok = True
    finally:
        if bar is not None:
            bar.close(ok)
    info = json.loads(info)
    name = _name(key_added)
    adata.obsm[key_added] = cell_mu
    adata.obs[f"{name}_split"] = pd.Categorical(split, categories=["fit", "val"])
    latent_dim = cell_mu.shape[1]
    if gene_mu is not None:
        varm = np.full((len(names), latent_dim), np.nan, dtype=np.float32)
        where = {g: i for i, g in enumerate(names)}
        varm[[where[g] for g in genes]] = gene_mu
        adata.varm[key_added] = varm
        table = pd.DataFrame(gene_mu, index=pd.Index(genes, name="gene"))
    else:
        table = pd.DataFrame(np.zeros((0, latent_dim), dtype=np.float32))
    params = dict(config, batch_key=batch_keys, covariate_key=covariate_keys, layer=layer,
                  matrix=m.field, hvg=hvg, gene_input=gene_input, species=species,
                  orthologs=orthologs, gene_symbols_key=gene_symbols_key, device=device,
                  model_path=None if model_path is None else os.fspath(model_path))
    adata.uns[name] = {
        "params": to_uns(params),
        "stores": to_uns([
            {"name": n, "n_genes": len(st), "dim": st.dim, "manifest": st.manifest}
            for n, st in named
        ], max_list=SAMPLE),
        "genes": np.array(genes, dtype=object),
        "gene_coverage": _coverage_uns(info["gene_coverage"], False),
        "covariates": to_uns(info["covariates"]),
        "losses": to_uns(info["losses"]),
        "epochs_run": to_uns(dict(info["epochs_run"])),
        "best_epochs": to_uns(dict(info["best_epochs"])),
        "n_fit": int(info["n_fit"]),
        "n_val": int(info["n_val"]),
        "seconds": float(time.perf_counter() - t0),
        "tool": _celltext.version(),
    }
    for w in info.get("warnings") or []:
        logger.warning("scilama: %s", python_words(w, {"genes": "store"}))
    logger.info("scilama: %d cells x %d genes, %s epochs -> obsm[%r] %s", m.n_rows,
                len(genes), info["epochs_run"], key_added, cell_mu.shape)
    return adata if copy else table


__all__ = [
    "genept_w", "cell_sentences", "embed_sentences", "knn_classify", "mlp_classify",
    "scilama",
    "CoverageWarning", "ContextWarning", "COVERAGE_WARN",
]
