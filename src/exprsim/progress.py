"""Progress bars for long work: :func:`progress_bar`, tqdm switched off where the process
has no stream to draw on."""

from __future__ import annotations

import sys
from typing import Any


def can_draw() -> bool:
    """Whether ``sys.stderr`` takes writes: it is ``None`` under ``pythonw`` and in some
    services, and may have been closed; tqdm would then fail on its first write."""
    stream = sys.stderr
    return stream is not None and not getattr(stream, "closed", False)


def progress_bar(iterable: Any = None, *, enabled: bool, **kwargs: Any) -> Any:
    """``tqdm(iterable, **kwargs)``, disabled unless ``enabled`` and :func:`can_draw`."""
    from tqdm import tqdm

    return tqdm(iterable, disable=not (enabled and can_draw()), **kwargs)
