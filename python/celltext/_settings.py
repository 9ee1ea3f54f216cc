"""Logging and verbosity, in the spirit of ``scanpy.settings.verbosity``."""

from __future__ import annotations

import logging
import sys

logger = logging.getLogger("celltext")

_LEVELS = {0: logging.ERROR, 1: logging.WARNING, 2: logging.INFO, 3: logging.DEBUG}
_NAMES = {"error": 0, "warning": 1, "info": 2, "hint": 3, "debug": 3}


class _StderrHandler(logging.StreamHandler):
    """A handler on whatever ``sys.stderr`` is now (Jupyter and pytest replace it)."""

    def __init__(self) -> None:
        super().__init__()

    @property  # type: ignore[override]
    def stream(self):  # noqa: D401
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


class Settings:
    """Package settings: ``celltext.settings.verbosity``.

    ``verbosity`` is 0 (errors), 1 (warnings, the default), 2 (info: what each tool did, e.g.
    genes mapped and cells embedded) or 3 (debug), or one of the names ``"error"``,
    ``"warning"``, ``"info"``, ``"debug"``, as in scanpy. Messages go through Python's
    :mod:`logging` (logger ``"celltext"``) to stderr; configure that logger to send them
    elsewhere. Progress bars are separate: ``progress=False`` on each call.
    """

    def __init__(self) -> None:
        self._verbosity = 1
        self._handler = _StderrHandler()
        self._handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(self._handler)
        logger.propagate = False
        logger.setLevel(_LEVELS[self._verbosity])

    @property
    def verbosity(self) -> int:
        """0 errors, 1 warnings (default), 2 info, 3 debug."""
        return self._verbosity

    @verbosity.setter
    def verbosity(self, value: "int | str") -> None:
        if isinstance(value, str):
            if value.lower() not in _NAMES:
                raise ValueError(
                    f"verbosity={value!r}: use 0-3 or one of {', '.join(sorted(_NAMES))}"
                )
            value = _NAMES[value.lower()]
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 3:
            raise ValueError(f"verbosity={value!r}: use an int 0 (errors) to 3 (debug)")
        self._verbosity = value
        logger.setLevel(_LEVELS[value])

    def __repr__(self) -> str:
        return f"celltext.settings(verbosity={self._verbosity})"


settings = Settings()
