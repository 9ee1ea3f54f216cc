"""The text encoder."""

from __future__ import annotations

import difflib
import json
import os
import re
import warnings
from typing import Any, Dict, Optional, Sequence, Union

import numpy as np

from . import _celltext, _progress
from ._errors import translated
from ._settings import logger

_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")


def model_spec(model: Any) -> str:
    """``model=`` as the core takes it, after the checks Python users expect: a local path
    that does not exist is a FileNotFoundError here, before any download is tried; only a
    string shaped like ``org/name`` (whose ``org`` is not a local directory) is a hub id."""
    if isinstance(model, os.PathLike):
        spec, is_path = os.fspath(model), True
    elif isinstance(model, str):
        spec, is_path = model, False
    else:
        raise TypeError(
            f"model= must be a model directory, a card name (e.g. 'minilm') or a hub id "
            f"('org/name'), not {type(model).__name__}"
        )
    if not spec:
        raise ValueError("model= is empty; pass a model directory, a card name or a hub id")
    if os.path.isdir(spec):
        return spec
    if os.path.exists(spec):
        raise ValueError(
            f"model={spec!r} is a file; pass the model's directory (the one with config.json)"
        )
    expanded = os.path.expanduser(spec)
    path_like = (
        is_path
        or spec.startswith((".", "/", "~"))
        or os.sep != "/" and os.sep in spec
        or spec.count("/") > 1
        or ("/" in spec and os.path.isdir(spec.split("/")[0]))
    )
    if not path_like and ("/" not in spec or _HUB_ID.match(spec)):
        return spec  # a card name or a hub id: the core resolves (and may download) it
    parent = os.path.dirname(os.path.abspath(expanded)) or "."
    hint = ""
    if os.path.isdir(parent):
        near = difflib.get_close_matches(os.path.basename(expanded), os.listdir(parent), n=3)
        if near:
            hint = f" (did you mean {', '.join(repr(os.path.join(os.path.dirname(spec), n)) for n in near)}?)"
    raise FileNotFoundError(
        f"model={spec!r}: no such directory{hint}; pass a directory in Hugging Face layout "
        "(config.json, weights, tokenizer), a card name such as 'minilm', or a hub id 'org/name'"
    )


class Encoder:
    """A BERT-family text encoder, loaded once (the CLI's ``celltext embed --model ...``).

    Parameters
    ----------
    model : str or os.PathLike
        A directory in Hugging Face layout, a card name from ``models/`` (``minilm``,
        ``biobert``, ...) or a hub id ``org/name``. A path that does not exist raises
        FileNotFoundError; only hub ids are downloaded (into the Hugging Face cache).
    device : str
        ``cpu``, ``cuda[:N]``, ``cuda:0,cuda:1``, ``cuda:all`` or ``metal`` (GPU builds only).
    dtype : str
        ``f32``, ``f16``, ``bf16`` (GPU formats) or ``int8`` (the CPU encoder with dynamic
        quantization: weights per output channel, activations per token in 8 bits).
    backend : str
        ``auto`` (the packed CPU encoder for CPU f32, candle otherwise), ``cpu`` or ``candle``.
    max_length : int, optional
        Override the checkpoint's maximum length in tokens.
    lowercase : bool, optional
        Override the tokenizer's casing.
    progress : bool
        Show download progress (hub ids only).

    Returns
    -------
    Encoder
        Tokenizer warnings (a guessed casing) are issued as Python warnings.

    Examples
    --------
    >>> enc = celltext.Encoder("models-local/all-MiniLM-L6-v2")
    >>> enc.embed(["CD3E is part of the T-cell receptor complex."]).shape
    (1, 384)
    """

    @translated()
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
            model_spec(model), device, dtype, backend, max_length, lowercase, progress
        )
        for w in self._inner.warnings:
            warnings.warn(w, stacklevel=3)
        logger.info("loaded %s", self)

    @translated()
    def embed(
        self,
        texts: Sequence[str],
        pooling: Optional[str] = None,
        normalize: bool = False,
        batch_tokens: int = 8192,
        progress: bool = True,
    ) -> np.ndarray:
        """Embed ``texts`` (the CLI's ``celltext embed``, same vectors with the same options).

        Parameters
        ----------
        texts : sequence of str
            The texts; each is truncated at the model's maximum length.
        pooling : {'cls', 'mean', 'max'}, optional
            Token pooling; None uses the model's (``info['pooling']``).
        normalize : bool
            L2-normalize each vector.
        batch_tokens : int
            Token budget of one batch (texts are batched by length; the vectors do not depend
            on it beyond float rounding).
        progress : bool
            Show a progress bar (tqdm: a widget in Jupyter, text in a terminal).

        Returns
        -------
        numpy.ndarray
            float32 ``[len(texts), dim]``, in input order. The GIL is released while the
            model runs; Ctrl-C stops the work between batches with ``KeyboardInterrupt``.

        Examples
        --------
        >>> enc.embed(["a T cell", "a B cell"], pooling="cls", normalize=True).shape
        (2, 384)
        """
        if isinstance(texts, str):
            raise TypeError("texts must be a sequence of strings, not a single string")
        texts = list(texts)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TypeError(f"texts[{i}] is a {type(t).__name__}, not a str")
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        bar = _progress.make(progress, "embedding", "texts")
        ok = False
        try:
            out = self._inner.embed(texts, pooling, normalize, batch_tokens, bar)
            ok = True
        finally:
            if bar is not None:
                bar.close(ok, len(texts))
        return out

    @translated()
    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` before truncation.

        Parameters
        ----------
        text : str
            One text.

        Returns
        -------
        int
            Its tokens, special tokens included (compare with ``info['max_length']``).

        Examples
        --------
        >>> enc.count_tokens("hello world")
        4
        """
        return self._inner.count_tokens(text)

    @property
    def info(self) -> Dict[str, Any]:
        """Model id, revision, weights sha256, default pooling, max length, dtype, backend."""
        return json.loads(self._inner.info_json)

    @property
    def dim(self) -> int:
        """Vector dimension (the model's hidden size)."""
        return self._inner.dim

    def __repr__(self) -> str:
        i = self.info
        return f"Encoder({i['id']!r}, dim={self.dim}, pooling={i['pooling']!r}, backend={i['backend']!r})"


ModelLike = Union[str, "os.PathLike[str]"]
