"""Errors in Python's words: the core's messages name the command line's flags (``--layer
counts``); raised from Python they name the argument instead (``layer='counts'``). Internal."""

from __future__ import annotations

import functools
import re
from typing import Any, Callable, Dict, Optional, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

# CLI flag -> Python argument (None: the same name with '_'). Switches become `name=True`.
_VALUE_FLAGS: Dict[str, Optional[str]] = {
    "layer": None, "model": None, "out": None, "top-n": None, "weights": None,
    "aggregation": None, "species": None, "gene-symbols-key": None, "max-genes": None,
    "ablation": None, "seed": None, "template": None, "pooling": None, "device": None,
    "dtype": None, "backend": None, "batch-tokens": None, "chunk": "chunk_texts",
    "summaries": None, "missing": None, "label": None, "k": None, "vote": None,
    "hidden": None, "dropout": None, "fusion": None, "epochs": None, "patience": None,
    "lr": None, "weight-decay": None, "batch-size": None, "val-fraction": None,
    "test-fraction": None, "max-length": None, "batch-key": None, "covariate-key": None,
    "hvg": None, "gene-input": None, "mode": None, "latent": None, "beta": None, "gamma": None,
    "kl-warmup-epochs": None, "kl-warmup-rate": None, "var-eps": None, "lr-decay": None,
}
_SWITCHES: Dict[str, str] = {
    "raw": "raw=True", "orthologs": "orthologs=True", "normalize": "normalize=True",
    "lowercase": "lowercase=True", "cased": "lowercase=False", "ties-stable": "ties_stable=True",
    "class-weights": "class_weights=True", "quiet": "progress=False",
}
_STOP = set(
    "to with or and for is are was be needs need only requested in on of as the a an when if "
    "which that use pass drop given must has have not but runs computes uses cannot can will at "
    "by from flag instead also takes".split()
)
_FLAG = re.compile(
    r"(?<![\w-])--(?P<flag>[a-z][a-z0-9-]*)"
    r"(?:(?P<sep>[ =])(?P<val>'[^']*'|`[^`]*`|[\w{}$/~.][\w.:/{}$~-]*[\w}]|[\w{}]))?"
)


def python_words(message: str, rename: Optional[Dict[str, str]] = None) -> str:
    """``message`` with CLI flags written as Python arguments; ``rename`` maps a flag to the
    calling function's argument where it differs (``{"model": "encoder"}``)."""
    rename = rename or {}

    def sub(m: "re.Match[str]") -> str:
        flag, val = m.group("flag"), m.group("val")
        if flag in rename:
            name = rename[flag]
        elif flag in _SWITCHES:
            return _SWITCHES[flag] + (m.group("sep") + val if val else "")
        elif flag in _VALUE_FLAGS:
            name = _VALUE_FLAGS[flag] or flag.replace("-", "_")
        else:
            return m.group(0)
        if val is None or val.lower() in _STOP:
            return f"{name}=" + (m.group("sep") + val if val else "")
        v = val.strip("`'")
        if v.isupper() or not v:  # a placeholder (DIR, N)
            return f"{name}={v}"
        try:
            float(v)
            return f"{name}={v}"
        except ValueError:
            return f"{name}={v!r}"

    out = _FLAG.sub(sub, message)
    return out.replace("for an h5ad with .raw", "for an AnnData with .raw")


# Core messages that mean "no such model here" (a local name that is neither a directory nor
# a card): FileNotFoundError in Python.
_NOT_FOUND = ("is neither a directory nor a known card",)


def translated(rename: Optional[Dict[str, str]] = None) -> Callable[[F], F]:
    """Decorator: exceptions leave the function with :func:`python_words` messages."""

    def deco(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except (ValueError, KeyError, FileNotFoundError, RuntimeError, TypeError) as e:
                msg = e.args[0] if len(e.args) == 1 and isinstance(e.args[0], str) else None
                if msg is None:
                    raise
                new = python_words(msg, rename)
                cls = type(e)
                if cls is ValueError and any(s in msg for s in _NOT_FOUND):
                    cls = FileNotFoundError
                if new == msg and cls is type(e):
                    raise
                raise cls(new).with_traceback(e.__traceback__) from None

        return wrapper  # type: ignore[return-value]

    return deco
