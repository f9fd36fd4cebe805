"""Round 35 (time): cache entries stamped by a clock that ran ahead removed every new
parse of the FER table as the oldest entry, so the 77 MB table was parsed at every run."""

from __future__ import annotations

import os
import time
from pathlib import Path

from exprsim.data import fer


def test_a_new_entry_outlives_entries_from_the_future(tmp_path: Path) -> None:
    future = time.time() + 200 * 86400
    names = [f"fer-{i:016x}.npz" for i in range(fer.CACHE_KEEP)]
    for name in names:
        (tmp_path / name).write_bytes(b"x")
        os.utime(tmp_path / name, (future, future))
    new = tmp_path / "fer-ffffffffffffffff.npz"
    new.write_bytes(b"x")
    fer._prune_cache(tmp_path, keep=new)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert new.name in left and len(left) == fer.CACHE_KEEP


def test_the_future_counts_as_least_recently_used(tmp_path: Path) -> None:
    """An entry stamped next year (and not read since: a read stamps it now) goes first."""
    now = time.time()
    old = [f"fer-{i:016x}.npz" for i in range(fer.CACHE_KEEP)]
    for age, name in enumerate(old):  # all older than the entry used a minute ago
        (tmp_path / name).write_bytes(b"x")
        os.utime(tmp_path / name, (now - 3600 - age, now - 3600 - age))
    recent = tmp_path / "fer-eeeeeeeeeeeeeeee.npz"
    recent.write_bytes(b"x")
    os.utime(recent, (now - 60, now - 60))
    ahead = tmp_path / "fer-dddddddddddddddd.npz"
    ahead.write_bytes(b"x")
    os.utime(ahead, (now + 365 * 86400, now + 365 * 86400))
    fer._prune_cache(tmp_path)
    left = {p.name for p in tmp_path.iterdir()}
    assert recent.name in left and ahead.name not in left and len(left) == fer.CACHE_KEEP
    assert old[-1] not in left and old[-2] in left  # the oldest went too


def test_entries_from_the_future_keep_their_order(tmp_path: Path) -> None:
    """Review: every entry ahead of the clock shared one place, so the file system's order
    chose which of them stayed (a clock set back a day after entries an hour apart)."""
    future = time.time() + 86400
    names = [f"fer-{i:016x}.npz" for i in range(6)]
    for i, name in enumerate(names):  # name i used i hours after name 0
        (tmp_path / name).write_bytes(b"x")
        os.utime(tmp_path / name, (future + 3600 * i, future + 3600 * i))
    new = tmp_path / "fer-ffffffffffffffff.npz"
    new.write_bytes(b"x")
    fer._prune_cache(tmp_path, keep=new)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted([new.name, *names[-(fer.CACHE_KEEP - 1) :]])
