"""Thirty-second round, the file-system namespace: files and databases that change while a
command runs, hard links, links put in a file's place, one file under several names."""

from __future__ import annotations

import os
import shutil
import signal
import sys
from pathlib import Path

import pytest
from stub_embedder import StubEmbedder, write_images

from exprsim.errors import ImageError, IndexDatabaseError
from exprsim.index.store import FaceIndex


@pytest.fixture
def no_hang():
    """Fail instead of hanging for ever (a blocking open of a pipe)."""
    if sys.platform == "win32":  # pragma: no cover
        yield
        return

    def boom(*_):
        raise TimeoutError("hung")

    old = signal.signal(signal.SIGALRM, boom)
    signal.alarm(20)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _index(tmp_path: Path, n: int = 3) -> Path:
    db = tmp_path / "faces.db"
    with FaceIndex(db, embedder=StubEmbedder()) as ix:
        ix.add(write_images(tmp_path / "imgs", n))
    return db


# -- hard links


def test_an_index_with_two_names_is_refused(tmp_path: Path, capsys) -> None:
    """Audit: ``ln faces.db alias.db``, then ``index add`` on both names at once: two
    writer locks, two journals for one file, "database disk image is malformed" and the
    rows of one run lost."""
    db = _index(tmp_path)
    alias = tmp_path / "alias.db"
    os.link(db, alias)
    for name in (db, alias):
        with pytest.raises(IndexDatabaseError, match=r"2 names \(hard links\)"):
            FaceIndex(name, embedder=StubEmbedder())
    from exprsim.cli import main

    assert main(["-q", "index", "info", "--db", str(alias)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "hard links" in err[0] and "cp" in err[0]
    alias.unlink()  # one name again: usable as before
    with FaceIndex(db, embedder=StubEmbedder()) as ix:
        assert len(ix) == 3


# -- the database file deleted or replaced during add


class _Meddling(StubEmbedder):
    """A stub that does ``act`` once, after the first image."""

    def __init__(self, act) -> None:
        super().__init__()
        self.act = act

    def embed_stream(self, images, detector=None, workers=None):
        for k, item in enumerate(super().embed_stream(images, detector, workers)):
            if k == 1:
                self.act()
            yield item


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_an_index_deleted_or_replaced_during_add_is_not_a_success(tmp_path: Path, how: str) -> None:
    """Audit: ``rm faces.db`` during ``index add``: "200 files added", exit 0, and nothing
    left at the name (SQLite wrote on into the file it had open)."""
    db = _index(tmp_path, 1)
    other = tmp_path / "other.db"
    shutil.copy(db, other)

    def act() -> None:
        if how == "deleted":
            db.unlink()
        else:
            os.replace(other, db)

    more = write_images(tmp_path / "more", 4, seed=1)
    with (
        FaceIndex(db, embedder=_Meddling(act)) as ix,
        pytest.raises(IndexDatabaseError, match=f"was {how}.*run the command again"),
    ):
        ix.add(more)


def test_an_undisturbed_add_is_quiet(tmp_path: Path) -> None:
    db = _index(tmp_path, 2)
    with FaceIndex(db, embedder=StubEmbedder()) as ix:
        assert ix.add(write_images(tmp_path / "more", 2, seed=1)).count("added") == 2
        assert ix._db.gone() == ""


# -- a file replaced between its stat and its read


def _swap_for_pipe(path: Path) -> None:
    fifo = path.with_name("fifo.tmp")
    os.mkfifo(fifo)
    os.replace(fifo, path)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_a_file_swapped_for_a_pipe_after_its_stat_is_refused_at_once(tmp_path, no_hang):
    """Audit: a name stat'ed as a regular file, then a named pipe (a loop swapping names):
    ``open`` waited for a writer for ever, in a worker thread a SIGTERM could not end."""
    from exprsim.io import open_regular
    from exprsim.io import read_whole as _read_whole

    path = write_images(tmp_path, 1)[0]
    st = os.stat(path)
    _swap_for_pipe(path)
    with pytest.raises(ImageError, match="replaced while it was being opened"):
        open_regular(path, st)
    with pytest.raises(ImageError, match="replaced"):
        _read_whole(str(path), st)


def test_a_file_renamed_over_after_its_stat_is_refused(tmp_path: Path) -> None:
    from exprsim.io import open_regular
    from exprsim.io import read_whole as _read_whole

    a, b = write_images(tmp_path, 2)
    st = os.stat(a)
    os.replace(b, a)
    with pytest.raises(ImageError, match="replaced"):
        open_regular(a, st)
    data, now = _read_whole(str(a), os.stat(a))  # its own stat: read
    assert len(data) == now.st_size and now.st_ino == os.stat(a).st_ino


# -- embed: the identity describes the bytes embedded


def test_embed_gives_no_identity_for_a_file_rewritten_while_embedded(tmp_path: Path) -> None:
    """Audit: ``embed`` hashed a file again after embedding it; a file renamed over meanwhile
    got the new bytes' size, time and hash beside the old bytes' embedding, and ``index add
    --from-parquet`` then skipped it for good."""
    from exprsim.apps.embed import embed_files

    paths = write_images(tmp_path / "imgs", 3)
    new = write_images(tmp_path / "new", 1, seed=5)[0]

    def act() -> None:  # the second image, read and embedded, is renamed over
        os.replace(new, paths[1])

    table = embed_files(paths, embedder=_Meddling(act))
    rows = {Path(r["source"]).name: r for r in table.rows}
    assert rows[paths[1].name]["sha256"] is None and rows[paths[1].name]["size"] is None
    for p in (paths[0], paths[2]):  # untouched: identity as before
        assert rows[p.name]["sha256"] is not None and rows[p.name]["size"] == p.stat().st_size


def test_file_identity_checks_the_stamp_taken_before(tmp_path: Path) -> None:
    from exprsim.apps.embed import file_identity

    a, b = write_images(tmp_path, 2)
    before = os.stat(a)
    assert file_identity(str(a), before)["sha256"] is not None
    os.replace(b, a)
    assert file_identity(str(a), before) == dict.fromkeys(("size", "mtime_ns", "sha256"))
    assert file_identity(str(a))["sha256"] is not None  # no stamp: as before


# -- a stored file replaced by a link


def test_prune_forgets_a_file_replaced_by_a_link_and_keeps_its_target(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    """Audit: ``rm photos/a.png; ln -s ../elsewhere/new.png photos/a.png; index add photos
    --prune`` kept the stale row of the old photo (search still found it first), and
    ``remove`` of the stored name removed the target's row instead."""
    import exprsim.cli.apps_cmd as apps_cmd
    from exprsim.cli import main

    monkeypatch.setattr(apps_cmd, "_embedder", lambda args: StubEmbedder())
    photos = tmp_path / "photos"
    a, _ = write_images(photos, 2)
    elsewhere = write_images(tmp_path / "elsewhere", 1, seed=9)[0]
    db = str(tmp_path / "f.db")
    assert main(["-q", "index", "add", str(photos), "--db", db]) == 0
    old_key = os.path.realpath(a)
    a.unlink()
    a.symlink_to(elsewhere)
    assert main(["-q", "index", "add", str(photos), "--prune", "--db", db]) == 0
    assert "forgot 1 file" in capsys.readouterr().out
    with FaceIndex(db, embedder=StubEmbedder()) as ix:
        stored = set(ix.files()["path"])
    assert old_key not in stored and os.path.realpath(elsewhere) in stored and len(stored) == 2


# -- one file under several names, through the Python API


def test_summarize_images_reads_a_file_named_twice_once(tmp_path: Path, monkeypatch) -> None:
    """Audit: ``summarize_images(["alb", "./alb", abspath("alb"), "alb/../alb/g.png"])``
    found every face once per name (the CLI, once)."""
    from exprsim.apps.summarize import summarize_images

    alb = tmp_path / "alb"
    g, _ = write_images(alb, 2)
    (alb / "link.png").symlink_to(g)
    monkeypatch.chdir(tmp_path)
    summary = summarize_images(
        ["alb", "./alb", str(alb), "alb/../alb/img_0000.png"], 1, embedder=StubEmbedder()
    )
    assert len(summary.items) == 2


@pytest.mark.parametrize("target", ["missing", "loop"])
def test_crops_given_a_dangling_link_says_so(tmp_path: Path, capsys, target: str) -> None:
    """Audit: ``faces photo --crops cdang`` with ``cdang`` a broken link (or a loop) said
    only "cdang: File exists" (from ``mkdir``)."""
    from exprsim.cli import main

    link = tmp_path / "cdang"
    link.symlink_to(tmp_path / "nowhere" if target == "missing" else link)
    img = write_images(tmp_path / "imgs", 1)[0]
    rc = main(["-q", "faces", str(img), "--crops", str(link), "-o", str(tmp_path / "f.csv")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "symbolic link to nothing" in err[0], err
    assert not (tmp_path / "f.csv").exists()


# -- the review of this round's fixes


def test_a_read_only_snapshot_with_two_names_opens(tmp_path: Path, monkeypatch) -> None:
    """Review: the refusal also turned away read-only opens (a `cp -al` snapshot), which
    write no journal."""
    import exprsim.index.backends as backends

    db = _index(tmp_path)
    os.link(db, tmp_path / "snapshot.db")
    monkeypatch.setattr(backends, "writable", lambda path: False)  # as on read-only media
    with FaceIndex(db, embedder=StubEmbedder()) as ix:
        assert ix._db.read_only and len(ix) == 3


def test_read_whole_does_not_reserve_the_limit_for_a_small_file(tmp_path: Path) -> None:
    """Review: ``fh.read(cap + 1)`` reserved the 1.5 GB limit for every file (a
    MemoryError under ``ulimit -v``)."""
    import tracemalloc

    from exprsim.io import read_whole

    path = write_images(tmp_path, 1, size=64)[0]
    tracemalloc.start()
    try:
        data, st = read_whole(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(data) == st.st_size and peak < 10 * 2**20


def test_a_leased_file_is_opened_once_the_lease_breaks(tmp_path: Path, monkeypatch) -> None:
    """Review: opening without waiting failed at once on a file another program holds a
    lease on (Samba, NFS), where a plain open waits for the lease's break."""
    import exprsim.io as io_mod

    path = write_images(tmp_path, 1)[0]
    real_open, tries = os.open, []

    def leased(p, flags, *args):
        tries.append(p)
        if len(tries) < 3:
            raise BlockingIOError(11, "Resource temporarily unavailable")
        return real_open(p, flags, *args)

    monkeypatch.setattr(io_mod.os, "open", leased)
    data, _ = io_mod.read_whole(path)
    assert len(tries) == 3 and data == path.read_bytes()


def test_add_table_into_a_deleted_index_is_not_a_success(tmp_path: Path, monkeypatch) -> None:
    """Review: the check covered ``add`` only; ``index add --from-parquet`` (``add_table``)
    reported the load."""
    import pandas as pd

    from exprsim.apps.embed import embed_files

    db = _index(tmp_path, 1)
    table = pd.DataFrame(
        embed_files(write_images(tmp_path / "more", 2, seed=3), embedder=StubEmbedder()).rows
    )
    real = FaceIndex._copy_table

    def copy_then_delete(self, *args, **kwargs):
        db.unlink()
        return real(self, *args, **kwargs)

    monkeypatch.setattr(FaceIndex, "_copy_table", copy_then_delete)
    with (
        FaceIndex(db, embedder=StubEmbedder()) as ix,
        pytest.raises(IndexDatabaseError, match=r"was deleted.*2 faces of 2 files"),
    ):
        ix.add_table(table)
