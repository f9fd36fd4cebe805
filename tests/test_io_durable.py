"""Results are on disk before they take their names: every file moved into place by
``replace_atomically`` / ``install`` / ``TableWriter`` is synced (``fsync``) before its
rename and its folder after, so a power cut leaves the old file or the whole new one."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from exprsim.io import TableWriter, replace_atomically, write_json


@pytest.fixture
def events(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """``("fsync", path)`` and ``("replace", destination)`` in the order they happen."""
    seen: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        path = os.readlink(f"/proc/self/fd/{fd}")
        kind = "fsync-dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync"
        seen.append((kind, path))
        real_fsync(fd)

    def replace(src, dst) -> None:
        seen.append(("replace", str(Path(dst).resolve())))
        seen.append(("from", str(Path(src).resolve())))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    return seen


def _synced_before_rename(events: list[tuple[str, str]], dest: Path) -> None:
    """The file renamed to ``dest`` was synced before the rename, and ``dest``'s folder
    after it."""
    i = events.index(("replace", str(dest.resolve())))
    tmp = events[i + 1][1]
    assert ("fsync", tmp) in events[:i], events
    assert ("fsync-dir", str(dest.parent.resolve())) in events[i:], events


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc (Linux)")
def test_replace_atomically_syncs_the_file_then_its_folder(tmp_path, events):
    dest = tmp_path / "table.csv"
    replace_atomically(dest, lambda tmp: tmp.write_text("a\n1\n"))
    _synced_before_rename(events, dest)
    assert dest.read_text() == "a\n1\n"


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc (Linux)")
def test_write_json_is_synced_once_before_its_rename(tmp_path, events):
    dest = tmp_path / "doc.json"
    write_json(dest, {"a": 1})
    _synced_before_rename(events, dest)
    assert sum(kind == "fsync" for kind, _ in events) == 1  # not twice


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc (Linux)")
def test_many_small_files_may_skip_the_sync(tmp_path, events):
    replace_atomically(tmp_path / "crop.png", lambda tmp: tmp.write_bytes(b"x"), durable=False)
    assert not [e for e in events if e[0].startswith("fsync")]


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc (Linux)")
def test_table_writer_syncs_its_table(tmp_path, events):
    """Parquet is written beside and moved in; CSV streams in place (no earlier file)."""
    rows = [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]
    for suffix in (".parquet", ".csv"):
        with TableWriter(tmp_path / f"t{suffix}", ["a", "b"]) as w:
            w.write(rows)
    _synced_before_rename(events, tmp_path / "t.parquet")
    assert ("fsync", str((tmp_path / "t.csv").resolve())) in events, events


def _no_face_analysis():
    """The analysis of a video where nobody was seen (built directly, no video)."""
    import numpy as np

    from exprsim.video.frames import VideoInfo
    from exprsim.video.pipeline import StageTimes, VideoAnalysis, VideoConfig

    none = np.zeros(0, np.int64)
    return VideoAnalysis(
        info=VideoInfo("film", 640, 480, 5.0, 2.0, 10, "images"),
        config=VideoConfig(every=1),
        n_sampled=10,
        sample_period=0.2,
        faces=(),
        persons=none,
        tracks=none,
        embeddings=np.zeros((0, 16), np.float32),
        smoothed=np.zeros((0, 16), np.float32),
        classes=("happy", "sad"),
        emotions=np.zeros((0, 2), np.float32),
        tags=(),
        person_stats=(),
        summaries=(),
        rejected={},
        identity_method="iou",
        model="exprnet_s@test",
        timings=StageTimes(),
    )


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc (Linux)")
def test_video_report_files_are_synced_before_they_are_moved_in(tmp_path, events):
    paths = _no_face_analysis().save(tmp_path / "out", html=False)
    assert len(paths) == 4
    for path in paths.values():
        _synced_before_rename(events, path)


def test_the_temporary_is_synced_before_it_takes_a_write_only_mode(tmp_path, monkeypatch):
    """A replaced file's mode is kept; a write-only one could not be opened to sync (as
    any user but root), so the sync comes first."""
    import exprsim.io as io_mod

    order: list[str] = []
    real_keep, real_sync = io_mod._keep_mode, io_mod.sync_file
    monkeypatch.setattr(io_mod, "_keep_mode", lambda *a: (order.append("mode"), real_keep(*a)))
    monkeypatch.setattr(io_mod, "sync_file", lambda p: (order.append("sync"), real_sync(p)))
    dest = tmp_path / "w.csv"
    dest.write_text("old")
    dest.chmod(0o200)
    replace_atomically(dest, lambda tmp: tmp.write_text("new"))
    assert order == ["sync", "mode"]
    assert stat.S_IMODE(dest.stat().st_mode) == 0o200
    dest.chmod(0o600)
    assert dest.read_text() == "new"
