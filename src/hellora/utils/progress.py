"""Progress for anything that takes more than a few seconds: a tqdm bar on a terminal, periodic lines elsewhere.

A bar redrawn with carriage returns turns a redirected log (`hellora demo > log 2>&1`, CI, a batch job) into
hundreds of lines of partial bars. When stderr is not a terminal, `progress_bar` instead logs one line every
`LINE_INTERVAL_S` seconds and one at the end:

    INFO train: 40/200 steps (20%), 31 s, 1.3 steps/s, loss=1.234

`quiet_library_progress` turns off the bars of transformers and huggingface_hub ("Loading weights", downloads) when
progress is off or stderr is not a terminal: set as an environment default before they are imported, and switched
off directly when they already are.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tqdm.auto import tqdm

log = logging.getLogger("hellora.progress")

LINE_INTERVAL_S = 30.0


def stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def quiet_library_progress(progress: bool) -> None:
    """Silence transformers' / huggingface_hub's own bars unless progress is on and stderr is a terminal."""
    if progress and stderr_is_terminal():
        return
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    if "transformers" in sys.modules:
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
    elif "huggingface_hub" in sys.modules:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()


class LineProgress:
    """The subset of tqdm's interface hellora uses (iterate, update, set_postfix, close, context manager), written
    as a log line at most every `interval` seconds, and once at the end."""

    def __init__(self, iterable: Iterable | None = None, *, total: int | None = None, desc: str = "",
                 unit: str = "it", initial: int = 0, interval: float = LINE_INTERVAL_S, **_ignored) -> None:
        self.iterable, self.desc, self.unit, self.interval = iterable, desc, unit, interval
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.total, self.n, self.start_n = total, initial, initial
        self.postfix = ""
        self.started = self.last = time.monotonic()
        self.closed = False

    def __iter__(self) -> Iterator:
        for item in self.iterable or ():
            yield item
            self.update(1)
        self.close()

    def __enter__(self) -> "LineProgress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def set_postfix(self, ordered_dict: Mapping[str, object] | None = None, refresh: bool = True,
                    **values: object) -> None:
        values = {**(ordered_dict or {}), **values}
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        self.desc = desc or ""

    def refresh(self) -> None:
        pass

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self.last >= self.interval:
            self.last = now
            self._line(now)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self.n > self.start_n:
                self._line(time.monotonic())

    def line(self, now: float | None = None) -> str:
        """e.g. "train: 40/200 steps (20%), 31 s, 1.3 steps/s, loss=1.234"."""
        elapsed = (now if now is not None else time.monotonic()) - self.started
        done = f"{self.n}/{self.total}" if self.total else str(self.n)
        share = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
        rate = (self.n - self.start_n) / elapsed if elapsed > 0 else 0.0
        text = f"{self.desc or 'progress'}: {done} {self.unit}s{share}, {elapsed:.0f} s, {rate:.3g} {self.unit}s/s"
        return text + (f", {self.postfix}" if self.postfix else "")

    def _line(self, now: float) -> None:
        log.info(self.line(now))


class _Off(LineProgress):
    """progress=False: the same interface, nothing written."""

    def _line(self, now: float) -> None:
        pass


def progress_bar(iterable: Iterable | None = None, *, disable: bool = False, **kwargs: Any) -> LineProgress | tqdm:
    """`tqdm(iterable, **kwargs)` on a terminal; `LineProgress` lines when stderr is redirected; silent if disabled."""
    if disable:
        return _Off(iterable, **kwargs)
    if stderr_is_terminal():
        from tqdm.auto import tqdm

        return tqdm(iterable, **kwargs)
    return LineProgress(iterable, **kwargs)
