"""Gene embeddings: embed NCBI summaries with a text encoder into a store, load stores, check
how well a store covers a dataset's genes (``celltext genes ...``)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Union

import numpy as np

from . import _adata, _celltext, _progress
from ._encoder import model_spec
from ._errors import translated
from ._settings import logger

PathLike = Union[str, "os.PathLike[str]"]


class GeneStore:
    """Gene vectors, one row per gene symbol (``STORE.safetensors`` + ``STORE.genes.tsv`` +
    ``STORE.manifest.json`` on disk).

    Parameters
    ----------
    inner : celltext._celltext.GeneStore
        The compiled store; make stores with :meth:`load`, :meth:`from_arrays` or
        :func:`embed`.

    Examples
    --------
    >>> store = celltext.GeneStore.load("stores/pbmc_minilm")
    >>> store
    GeneStore(1388 genes × 384)
    """

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    @classmethod
    @translated()
    def load(cls, path: PathLike) -> "GeneStore":
        """Load a store from disk.

        Parameters
        ----------
        path : str or os.PathLike
            The store's prefix or any of its three files.

        Returns
        -------
        GeneStore
            FileNotFoundError when the store is missing.

        Examples
        --------
        >>> store = celltext.GeneStore.load("stores/pbmc_minilm")
        """
        return cls(_celltext.GeneStore.load(os.fspath(path)))

    @classmethod
    @translated()
    def from_arrays(cls, genes: Iterable[str], vectors: np.ndarray) -> "GeneStore":
        """A store from gene symbols and their vectors, in memory.

        Parameters
        ----------
        genes : iterable of str
            Unique, non-empty gene symbols, one per row of ``vectors``.
        vectors : numpy.ndarray
            ``[n_genes, dim]`` (copied as float32).

        Returns
        -------
        GeneStore
            A store without a manifest.

        Examples
        --------
        >>> store = celltext.GeneStore.from_arrays(["CD3E", "MS4A1"], np.eye(2))
        """
        v = np.ascontiguousarray(vectors, dtype=np.float32)
        if v.ndim != 2:
            raise ValueError(f"vectors must be 2-D [n_genes, dim], found shape {v.shape}")
        return cls(_celltext.GeneStore.from_arrays([str(g) for g in genes], v))

    @property
    def genes(self) -> List[str]:
        """Gene symbols, in row order."""
        return self._inner.genes

    @property
    def vectors(self) -> np.ndarray:
        """float32 ``[n_genes, dim]`` (a copy)."""
        return self._inner.vectors

    @property
    def dim(self) -> int:
        """Vector dimension."""
        return self._inner.dim

    @property
    def manifest(self) -> Optional[Dict[str, Any]]:
        """The store's manifest (model, texts, counts), or None for a store built in memory."""
        m = self._inner.manifest_json
        return None if m is None else json.loads(m)

    @translated()
    def coverage(
        self,
        adata: Any,
        layer: Optional[str] = None,
        species: str = "human",
        orthologs: bool = False,
        gene_symbols_key: Optional[str] = None,
        raw: bool = False,
    ) -> Dict[str, Any]:
        """How the dataset's genes map onto this store (``celltext genes coverage``).

        Parameters
        ----------
        adata : anndata.AnnData
            The dataset.
        layer : str, optional
            Weigh genes by ``adata.layers[layer]`` instead of ``adata.X``.
        species : {'human', 'mouse'}
            The resolver's aliases and Ensembl ids.
        orthologs : bool
            Also map genes through human-mouse orthologs.
        gene_symbols_key : str, optional
            A ``var`` column of gene symbols to use instead of ``var_names``.
        raw : bool
            Read ``adata.raw`` (its ``var`` and ``X``).

        Returns
        -------
        dict
            ``n_genes``, ``by_route`` (genes mapped per resolver route), ``n_unmatched``,
            ``unmatched`` (every unmatched gene) and ``expression_fraction`` (share of all
            expression on mapped genes).

        Examples
        --------
        >>> store.coverage(adata, layer="counts")["expression_fraction"]
        """
        names = _adata.gene_names(adata, gene_symbols_key, raw)
        m = _adata.matrix(adata, layer, raw)
        _, cov = _celltext.map_genes(
            self._inner, names, species, orthologs, m.indptr, m.indices, m.data, m.n_rows
        )
        return json.loads(cov)

    def __len__(self) -> int:
        return len(self._inner)

    def __repr__(self) -> str:
        return f"GeneStore({len(self)} genes × {self.dim})"


def _bundled(species: str) -> Dict[str, str]:
    symbols, texts, _ = _celltext.bundled_summaries(species)
    return dict(zip(symbols, texts))


@translated()
def summaries(species: str = "human") -> Dict[str, str]:
    """The bundled NCBI RefSeq gene summaries.

    Parameters
    ----------
    species : {'human', 'mouse'}
        Which species' summaries.

    Returns
    -------
    dict
        ``{symbol: summary text}``.

    Examples
    --------
    >>> celltext.genes.summaries()["CD3E"][:40]
    """
    return _bundled(species)


@translated()
def top_genes(
    adata: Any,
    n: int = 100,
    layer: Optional[str] = None,
    gene_symbols_key: Optional[str] = None,
    raw: bool = False,
) -> List[str]:
    """Genes among some cell's ``n`` most expressed: the only genes a top-``n`` GenePT-w
    average uses, so the only summaries worth embedding for this dataset.

    Parameters
    ----------
    adata : anndata.AnnData
        The dataset.
    n : int
        Top genes per cell (as ``top_n`` of :func:`celltext.tl.genept_w`).
    layer : str, optional
        Rank by ``adata.layers[layer]`` instead of ``adata.X``.
    gene_symbols_key : str, optional
        A ``var`` column of gene symbols to use instead of ``var_names``.
    raw : bool
        Read ``adata.raw`` (its ``var`` and ``X``).

    Returns
    -------
    list of str
        The genes, sorted.

    Examples
    --------
    >>> genes = celltext.genes.top_genes(adata, 100, layer="counts")
    """
    names = _adata.gene_names(adata, gene_symbols_key, raw)
    m = _adata.matrix(adata, layer, raw)
    return _celltext.top_n_genes(m.indptr, m.indices, m.data, m.n_rows, names, int(n))


@translated()
def embed(
    model: PathLike,
    species: str = "human",
    summaries: Union[None, Mapping[str, str], PathLike] = None,
    genes: Optional[Iterable[str]] = None,
    out: Optional[PathLike] = None,
    missing: str = "skip",
    batch_tokens: int = 8192,
    device: str = "cpu",
    dtype: str = "f32",
    backend: str = "auto",
    progress: bool = True,
    chunk_texts: int = 512,
) -> GeneStore:
    """Embed gene summaries with ``model`` into a :class:`GeneStore` (``celltext genes embed``).

    Parameters
    ----------
    model : str or os.PathLike
        Model directory, card name or hub id ``org/name`` (as :class:`celltext.Encoder`); a
        path that does not exist raises FileNotFoundError before any download.
    species : {'human', 'mouse'}
        The bundled summaries to embed when ``summaries`` is None.
    summaries : dict or str or os.PathLike, optional
        Your own texts: a ``{symbol: text}`` dict, or a file (GenePT JSON, TSV/CSV with
        symbol and text columns).
    genes : iterable of str, optional
        Embed only these genes' summaries (e.g. :func:`top_genes`): filters the bundled
        summaries or a ``summaries`` dict (a summaries file is embedded whole).
    out : str or os.PathLike, optional
        Store path. The job is resumable: interrupted, the same call continues from the
        finished chunks in ``OUT.partial/`` and gives the same store. Without ``out`` the
        store is built in a temporary directory and only kept in memory.
    missing : {'skip', 'zero', 'fallback-name'}
        What to do with ``genes`` that have no summary.
    batch_tokens : int
        Token budget of one batch.
    device : str
        As :class:`celltext.Encoder`.
    dtype : str
        As :class:`celltext.Encoder`.
    backend : str
        As :class:`celltext.Encoder`.
    progress : bool
        Show a progress bar (tqdm: a widget in Jupyter, text in a terminal).
    chunk_texts : int
        Summaries per finished chunk written to ``OUT.partial/`` (the CLI's chunk size); a
        resumed call must use the same value.

    Returns
    -------
    GeneStore
        The store (also on disk at ``out`` when given). The GIL is released while the model
        runs; Ctrl-C stops the call between batches with ``KeyboardInterrupt``, and the
        chunks finished so far stay in ``OUT.partial/`` for the same call to resume from.

    Examples
    --------
    >>> genes = celltext.genes.top_genes(adata, 100, layer="counts")
    >>> store = celltext.genes.embed("models-local/all-MiniLM-L6-v2", genes=genes,
    ...                              out="stores/pbmc_minilm")
    """
    spec = model_spec(model)
    tmp = tempfile.mkdtemp(prefix="celltext-")
    try:
        src: Optional[str] = None
        texts: Optional[Dict[str, str]] = None
        if isinstance(summaries, Mapping):
            texts = {str(k): str(v) for k, v in summaries.items()}
        elif summaries is not None:
            src = os.fspath(summaries)
            if not os.path.exists(src):
                raise FileNotFoundError(f"summaries={src!r}: no such file")
        dataset_genes = None
        if genes is not None:
            wanted = [str(g) for g in genes]
            if texts is None and src is None:
                texts = _bundled(species)
            if texts is not None:
                keep = set(wanted)
                texts = {k: v for k, v in texts.items() if k in keep}
                if not texts:
                    raise ValueError(
                        f"genes=: none of the {len(wanted)} requested genes has a summary; check "
                        "the gene names (symbols such as CD3E) and species="
                    )
            if missing != "skip":
                dataset_genes = wanted
        if texts is not None:
            src = os.path.join(tmp, "summaries.json")
            with open(src, "w", encoding="utf-8") as f:
                json.dump(texts, f, ensure_ascii=False)
        target = os.fspath(out) if out is not None else os.path.join(tmp, "store")
        if out is not None:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
        bar = _progress.make(progress, "embedding gene summaries", "genes")
        ok = False
        try:
            manifest = json.loads(
                _celltext.genes_embed(
                    spec, target, species, src, dataset_genes, missing, batch_tokens,
                    chunk_texts, device, dtype, backend, bar,
                )
            )
            ok = True
        finally:
            if bar is not None:
                bar.close(ok)
        if manifest.get("chunks_resumed"):
            logger.info("genes.embed: resumed %d finished chunks from %s.partial",
                        manifest["chunks_resumed"], target)
        store = GeneStore.load(target)
        logger.info("genes.embed: %s", store)
        return store
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


__all__ = ["GeneStore", "embed", "summaries", "top_genes"]
