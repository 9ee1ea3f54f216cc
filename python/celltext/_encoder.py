"""The text encoder."""

from __future__ import annotations

import json
import os
import warnings
from typing import Any, Dict, Optional, Sequence

import numpy as np

from . import _celltext


class Encoder:
    """A BERT-family text encoder, loaded once (``celltext embed --model ...``).

    Parameters
    ----------
    model
        A directory in Hugging Face layout, a card name from ``models/`` (``minilm``,
        ``biobert``, ...) or a hub id; resolved as the CLI resolves ``--model``.
    device
        ``cpu``, ``cuda[:N]``, ``cuda:0,cuda:1``, ``cuda:all`` or ``metal`` (GPU builds only).
    dtype
        ``f32``, ``f16`` or ``bf16``.
    backend
        ``auto`` (the packed CPU encoder for CPU f32, candle otherwise), ``cpu`` or ``candle``.
    max_length, lowercase
        Override the checkpoint's maximum length and casing.
    progress
        Show download progress on stderr.

    Tokenizer warnings (a guessed casing) are issued as Python warnings.
    """

    def __init__(
        self,
        model: "str | os.PathLike[str]",
        device: str = "cpu",
        dtype: str = "f32",
        backend: str = "auto",
        max_length: Optional[int] = None,
        lowercase: Optional[bool] = None,
        progress: bool = True,
    ) -> None:
        self._inner = _celltext.Encoder(
            os.fspath(model), device, dtype, backend, max_length, lowercase, progress
        )
        for w in self._inner.warnings:
            warnings.warn(w, stacklevel=2)

    def embed(
        self,
        texts: Sequence[str],
        pooling: Optional[str] = None,
        normalize: bool = False,
        batch_tokens: int = 8192,
        progress: bool = True,
    ) -> np.ndarray:
        """Embed ``texts``: float32 ``[len(texts), dim]`` in input order.

        ``pooling`` (``cls``, ``mean`` or ``max``) defaults to the model's; ``normalize``
        L2-normalizes each vector. Texts are batched by token budget (``batch_tokens``); the
        GIL is released while the model runs and Ctrl-C stops the work between batches with
        ``KeyboardInterrupt``. Progress goes to stderr unless ``progress=False``. Same vectors
        as ``celltext embed`` with the same options.
        """
        if isinstance(texts, str):
            raise TypeError("texts must be a sequence of strings, not a single string")
        texts = list(texts)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TypeError(f"texts[{i}] is a {type(t).__name__}, not a str")
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self._inner.embed(texts, pooling, normalize, batch_tokens, progress)

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` before truncation (special tokens included)."""
        return self._inner.count_tokens(text)

    @property
    def info(self) -> Dict[str, Any]:
        """Model id, revision, weights sha256, pooling, max length, dtype, backend, ..."""
        return json.loads(self._inner.info_json)

    @property
    def dim(self) -> int:
        """Vector dimension (the model's hidden size)."""
        return self._inner.dim

    def __repr__(self) -> str:
        i = self.info
        return f"Encoder({i['id']!r}, dim={self.dim}, pooling={i['pooling']!r}, backend={i['backend']!r})"
