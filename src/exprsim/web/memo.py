"""Answers the web app computes from the whole index, kept while the index is unchanged.

The album summary and its map read every face (the map runs t-SNE on up to a few thousand
of them: seconds to tens of seconds on two cores). Each answer is kept under a key that
holds the index's ``generation`` (bumped by every write, by any process) and its face
count, so a page visited again is answered at once and any change to the index is seen
on the next request. One computation runs at a time: a second request for the same answer
waits for the first and gets it, instead of starting the same work beside it.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Hashable
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
        self._lock = threading.Lock()
        self._entries: collections.OrderedDict[Hashable, Any] = collections.OrderedDict()
        self.computed = 0  # how many answers were computed (not found): for tests and logs

    def get(self, key: Hashable, compute: Callable[[], T]) -> T:
        """The answer kept under ``key``, else ``compute()``'s, then kept (an exception is
        raised as it is, and nothing is kept)."""
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
            value = compute()
            self.computed += 1
            self._entries[key] = value
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
            return value
