"""Answers the web app computes from the whole index, kept while the index is unchanged.

The album summary and its map read every face (the map runs t-SNE on up to a few thousand
of them: seconds to tens of seconds on two cores). Each answer is kept under a key that
names the index's state (its ``store_id``, ``generation`` (bumped by every write, by any
process) and face count), so a page visited again is answered at once, and any change to
the index, or another database in its place, is seen on the next request. A second request
for an answer being computed waits for it instead of starting the same work beside it;
requests for answers already kept, or for other answers, do not wait.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")

#: answers kept (the least recently used goes first)
MEMO_SIZE = 16


class GenerationMemo:
    """A small least-recently-used store of computed answers (see the module docstring).

    Args:
        size: most answers kept.
    """

    def __init__(self, size: int = MEMO_SIZE) -> None:
        self.size = size
        self._lock = threading.Lock()  # held only to look up and store, never to compute
        self._entries: collections.OrderedDict[Hashable, Any] = collections.OrderedDict()
        self._pending: dict[Hashable, Future[Any]] = {}
        self.computed = 0  # how many answers were computed (not found): for tests and logs

    def get(self, key: Hashable, compute: Callable[[], T]) -> T:
        """The answer kept under ``key``, else ``compute()``'s, then kept (an exception is
        raised as it is, to every request waiting for that answer, and nothing is kept)."""
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
            pending = self._pending.get(key)
            owner = pending is None
            if pending is None:
                pending = self._pending[key] = Future()
        if not owner:
            return pending.result()
        try:
            value = compute()
        except BaseException as exc:
            with self._lock:
                del self._pending[key]
            pending.set_exception(exc)
            raise
        with self._lock:
            self.computed += 1
            del self._pending[key]
            self._entries[key] = value
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
        pending.set_result(value)
        return value
