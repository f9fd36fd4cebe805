"""Progress bars for long work: :func:`progress_bar`, tqdm switched off where the process
has no stream to draw on, and timed by the monotonic clock."""

from __future__ import annotations

import functools
import sys
import time
from typing import Any


def can_draw() -> bool:
    """Whether ``sys.stderr`` takes writes: it is ``None`` under ``pythonw`` and in some
    services, and may have been closed; tqdm would then fail on its first write."""
    stream = sys.stderr
    return stream is not None and not getattr(stream, "closed", False)


def progress_bar(iterable: Any = None, *, enabled: bool, **kwargs: Any) -> Any:
    """``tqdm(iterable, **kwargs)`` when ``enabled`` and :func:`can_draw`, its elapsed
    time, rate and time left measured by the monotonic clock (tqdm's wall clock, set back
    an hour mid-run, froze the bar for that hour: a redraw waits until ``now - last``
    passes its interval); else an :class:`OffBar`, which draws nothing and starts nothing
    (a disabled tqdm still started its monitor thread for the life of the process, and a
    multiprocessing lock: under ``spawn``, a resource-tracker process)."""
    if not (enabled and can_draw()):
        return OffBar(iterable, total=kwargs.get("total"))
    return _bar_class()(iterable, **kwargs)


class OffBar:
    """The part of a tqdm bar exprsim uses, drawing nothing: iteration over ``iterable``,
    ``n``, ``total``, :meth:`update`, :meth:`set_postfix`, :meth:`close`, a context."""

    def __init__(self, iterable: Any = None, total: float | None = None) -> None:
        if total is None and iterable is not None:
            try:
                total = len(iterable)
            except (TypeError, AttributeError):
                total = None
        self.iterable, self.total = iterable, total
        self.n: float = 0

    def __iter__(self) -> Any:
        for item in self.iterable:
            self.n += 1
            yield item

    def __enter__(self) -> OffBar:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, n: float = 1) -> None:
        self.n += n

    def set_postfix(self, *args: Any, **kwargs: Any) -> None:
        return None

    def close(self) -> None:
        return None


@functools.cache
def _bar_class() -> type:
    from tqdm import tqdm

    class MonotonicBar(tqdm):
        """tqdm, timed by ``time.monotonic``; without tqdm's monitor thread, which compares
        the wall clock with the bar's last draw (always ages apart: it reset a fast loop's
        ``miniters`` to 1 every 10 s)."""

        monitor_interval = 0

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._time = time.monotonic
            self.start_t = self.last_print_t = time.monotonic()

    return MonotonicBar
