"""Progress bars that render in Jupyter and terminals (tqdm), fed by the Rust core, which
reports (done, total) between batches. Internal."""

from __future__ import annotations

from typing import Any, Optional


def _tqdm() -> Any:
    import warnings

    with warnings.catch_warnings():
        # Jupyter without ipywidgets: tqdm.auto warns and falls back to the text bar, which
        # Jupyter renders as well
        warnings.simplefilter("ignore")
        from tqdm.auto import tqdm  # a notebook widget under Jupyter, a text bar elsewhere
    return tqdm


class Progress:
    """A callable for the Rust core: ``progress(done, total)``. With ``enabled=False`` it is
    never created (the core then reports nothing), so the call is silent."""

    def __init__(self, desc: str, unit: str) -> None:
        self.desc, self.unit = desc, unit
        self.bar: Optional[Any] = None

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            self.bar = _tqdm()(total=int(total), desc=self.desc, unit=self.unit, leave=True)
        if self.bar.total != total:
            self.bar.total = int(total)
        if done > self.bar.n:
            self.bar.update(int(done) - self.bar.n)

    def close(self, ok: bool, total: Optional[int] = None) -> None:
        """Finish the bar; on success fill it (the core's last report comes before the last
        batch) to ``total`` or the total the core reported."""
        if ok:
            total = total if total is not None else (self.bar.total if self.bar else None)
            if total is not None:
                self(total, total)
        if self.bar is not None:
            self.bar.close()


def make(enabled: bool, desc: str, unit: str) -> Optional[Progress]:
    return Progress(desc, unit) if enabled else None
