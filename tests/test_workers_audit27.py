"""Round 27 (docs/robustness.md): pools in two threads share the worker guard's mark."""

from __future__ import annotations

import os
import threading

from exprsim import workers


class _Pool:
    def shutdown(self, wait: bool = True) -> None:
        pass


def test_two_pools_at_once_keep_the_mark_until_the_last_ends() -> None:
    assert workers.GUARD_MARK_ENV not in os.environ
    inside, release = threading.Event(), threading.Event()
    seen: list[str | None] = []

    def second() -> None:
        with workers.running_pool(_Pool(), "died ({exc})"):
            inside.set()
            release.wait(10)

    t = threading.Thread(target=second)
    with workers.running_pool(_Pool(), "died ({exc})"):
        mark = os.environ[workers.GUARD_MARK_ENV]
        t.start()
        assert inside.wait(10)
    # was: the first pool to end put the variable back as it found it (unset), under the
    # second one's workers
    seen.append(os.environ.get(workers.GUARD_MARK_ENV))
    release.set()
    t.join(10)
    assert seen == [mark]
    assert workers.GUARD_MARK_ENV not in os.environ and not os.path.exists(mark)
