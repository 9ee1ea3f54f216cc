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

from . import _adata, _celltext

PathLike = Union[str, "os.PathLike[str]"]


class GeneStore:
    """Gene vectors, one row per gene symbol (``STORE.safetensors`` + ``STORE.genes.tsv`` +
    ``STORE.manifest.json`` on disk)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    @classmethod
    def load(cls, path: PathLike) -> "GeneStore":
        """Load the store ``path`` (its prefix or any of its three files)."""
        return cls(_celltext.GeneStore.load(os.fspath(path)))

    @classmethod
    def from_arrays(cls, genes: Iterable[str], vectors: np.ndarray) -> "GeneStore":
        """A store from symbols and a ``[n_genes, dim]`` array (copied as float32)."""
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
        return self._inner.dim

    @property
    def manifest(self) -> Optional[Dict[str, Any]]:
        """The store's manifest (model, texts, counts), or None for a store built in memory."""
        m = self._inner.manifest_json
        return None if m is None else json.loads(m)

    def coverage(
        self,
        adata: Any,
        layer: Optional[str] = None,
        species: str = "human",
        orthologs: bool = False,
        gene_symbols_key: Optional[str] = None,
        raw: bool = False,
    ) -> Dict[str, Any]:
        """How the dataset's genes map onto this store (``celltext genes coverage``): genes
        per resolver route, unmatched genes, and the share of all expression on mapped genes."""
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


def summaries(species: str = "human") -> Dict[str, str]:
    """The bundled NCBI RefSeq summaries, ``{symbol: text}`` (``human`` or ``mouse``)."""
    return _bundled(species)


def top_genes(
    adata: Any,
    n: int = 100,
    layer: Optional[str] = None,
    gene_symbols_key: Optional[str] = None,
    raw: bool = False,
) -> List[str]:
    """Genes among some cell's ``n`` most expressed (sorted): the only genes a top-``n``
    GenePT-w average uses, so the only summaries worth embedding for this dataset."""
    names = _adata.gene_names(adata, gene_symbols_key, raw)
    m = _adata.matrix(adata, layer, raw)
    return _celltext.top_n_genes(m.indptr, m.indices, m.data, m.n_rows, names, int(n))


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
    model
        Model directory, card name or hub id (as :class:`celltext.Encoder`).
    species
        ``human`` or ``mouse``: the bundled summaries to embed when ``summaries`` is None.
    summaries
        Your own texts: a ``{symbol: text}`` dict, or a file (GenePT JSON, TSV/CSV with
        symbol and text columns).
    genes
        Embed only these genes' summaries (e.g. :func:`top_genes`): filters the bundled
        summaries or a ``summaries`` dict (a summaries file is embedded whole).
    out
        Store path. The job is resumable: interrupted, the same call continues from the
        finished chunks in ``OUT.partial/`` and gives the same store. Without ``out`` the
        store is built in a temporary directory and only kept in memory.
    chunk_texts
        Summaries per finished chunk written to ``OUT.partial/`` (the CLI's ``--chunk``); a
        resumed call must use the same value.
    missing
        ``skip``, ``zero`` or ``fallback-name``: the policy for ``genes`` without a summary.

    The GIL is released while the model runs; progress goes to stderr unless
    ``progress=False``. Ctrl-C stops the call between batches with ``KeyboardInterrupt``;
    the chunks finished so far stay in ``OUT.partial/`` and the same call resumes from them.
    """
    tmp = tempfile.mkdtemp(prefix="celltext-")
    try:
        src: Optional[str] = None
        texts: Optional[Dict[str, str]] = None
        if isinstance(summaries, Mapping):
            texts = {str(k): str(v) for k, v in summaries.items()}
        elif summaries is not None:
            src = os.fspath(summaries)
            if not os.path.exists(src):
                raise FileNotFoundError(f"{src}: summaries file not found")
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
                        f"none of the {len(wanted)} requested genes has a summary; check the "
                        "gene names (symbols such as CD3E) and the species"
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
        _celltext.genes_embed(
            os.fspath(model),
            target,
            species,
            src,
            dataset_genes,
            missing,
            batch_tokens,
            chunk_texts,
            device,
            dtype,
            backend,
            progress,
        )
        return GeneStore.load(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


__all__ = ["GeneStore", "embed", "summaries", "top_genes"]
