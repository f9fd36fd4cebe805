"""Audit 9 (/tmp/audit9/cli.md and docs.md), CLI side: interrupted reruns keep the earlier
table, a finished video survives a late Ctrl-C, SIGTERM exits 143, folders that cannot be
listed are failed inputs, progress for classify and tag, checks before the work, interrupt
messages, help texts, ``-o`` and unknown options, and lists of inputs (``-``,
``--files-from``). Each test failed before its fix."""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from cli_run import digest, run, stub_cli_model

from exprsim.cli import main
from exprsim.samples import sample_path
from unlistable import deny_listing

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "index"))
from stub_embedder import StubEmbedder, write_images


class Stub16(StubEmbedder):
    """The stub embedder as ``exprsim embed`` loads it; ``stop`` raises the signal after
    that many images (a Ctrl-C or SIGTERM part-way)."""

    embedding_dim = 16

    def __init__(self, stop: int | None = None, sig: int = signal.SIGINT) -> None:
        super().__init__()
        self.stop, self.sig, self.done = stop, sig, 0

    def embed_stream(self, images, detector=None, workers=None):
        for item in super().embed_stream(images, detector, workers):
            if self.done == self.stop:
                signal.raise_signal(self.sig)
            self.done += 1
            yield item


@pytest.fixture
def sigterm_handled() -> Iterator[None]:
    """SIGTERM (and SIGHUP) raise ``Terminated``, as in the ``exprsim`` process."""
    import exprsim.cli as cli

    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}
    signal.signal(signal.SIGHUP, signal.SIG_DFL)  # as a terminal leaves it (not nohup's)
    cli._terminate_as_interrupt()
    try:
        yield
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)


def _embed_model(monkeypatch: pytest.MonkeyPatch, embedder: Any) -> Any:
    import exprsim.models.embedder as emb_mod

    monkeypatch.setattr(emb_mod, "load_model", lambda *a, **k: embedder)
    return embedder


def _photos(folder: Path, n: int = 2) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in ["grace_hopper.jpg", "astronaut_eileen_collins.jpg"][:n]:
        shutil.copy(sample_path(name), folder / name)
    return folder


def _cut_faces_stream(monkeypatch: pytest.MonkeyPatch, sig: int | None) -> None:
    """``exprsim faces`` stops after its first image: the signal ``sig`` (None: Ctrl-C
    raised at once, before any image)."""
    import exprsim.faces.stream as stream_mod

    real = stream_mod.analyze_stream

    def cut(*args, **kwargs):
        items = real(*args, **kwargs)
        if sig is None:
            raise KeyboardInterrupt
        yield next(items)
        signal.raise_signal(sig)
        yield from items

    monkeypatch.setattr(stream_mod, "analyze_stream", cut)


# ------------------------------------------------------------------ 1. interrupted reruns


def test_an_interrupted_embed_rerun_keeps_the_complete_earlier_table(tmp_path, capsys, monkeypatch):
    imgs = write_images(tmp_path / "imgs", 6)
    out = tmp_path / "keep.parquet"
    _embed_model(monkeypatch, Stub16())
    assert run(capsys, "embed", str(tmp_path / "imgs"), "-o", str(out))[0] == 0
    before = digest(out)
    _embed_model(monkeypatch, Stub16(stop=2))
    rc, _, err = run(capsys, "embed", str(tmp_path / "imgs"), "-o", str(out))
    assert rc == 130 and digest(out) == before  # was replaced by the 2 rows done
    partial = tmp_path / "keep.partial.parquet"
    assert len(pd.read_parquet(partial)) == 2
    assert err.strip() == (
        f"exprsim embed: interrupted: 2 faces saved -> {partial} "
        f"({out}, from an earlier run, left as it was)"
    )  # was: no "exprsim embed:" prefix
    _embed_model(monkeypatch, Stub16(stop=0))  # Ctrl-C before any face
    partial.unlink()
    rc, _, err = run(capsys, "embed", *map(str, imgs), "-o", str(out))
    assert rc == 130 and digest(out) == before  # was an empty table
    assert not partial.exists() and "keep.parquet not written" in err


def test_an_interrupted_faces_rerun_keeps_the_complete_earlier_table(tmp_path, capsys, monkeypatch):
    imgs = _photos(tmp_path / "imgs")
    out = tmp_path / "f.csv"
    out.write_text("source,face\nearlier.jpg,0\n")
    _cut_faces_stream(monkeypatch, signal.SIGINT)
    rc, _, err = run(capsys, "faces", str(imgs), "--out", str(out))
    assert rc == 130 and out.read_text() == "source,face\nearlier.jpg,0\n"  # was replaced
    assert len(pd.read_csv(tmp_path / "f.partial.csv")) == 1
    assert "f.partial.csv (" in err and "left as it was" in err
    _cut_faces_stream(monkeypatch, None)  # no file done: nothing written
    (tmp_path / "f.partial.csv").unlink()
    rc, _, err = run(capsys, "faces", str(imgs), "--out", str(out))
    assert rc == 130 and out.read_text() == "source,face\nearlier.jpg,0\n"  # was header only
    assert not (tmp_path / "f.partial.csv").exists() and "f.csv not written" in err


# ------------------------------------------------------------------ 2. video, late Ctrl-C


class _FakeAnalysis:
    """What ``analyze_video`` returns, with a ``save`` that is interrupted part-way."""

    def __init__(self, interrupted: bool = False, signal_in_save: int | None = None) -> None:
        self.interrupted = interrupted
        self.signal_in_save = signal_in_save
        self.faces: tuple = ()
        self.n_sampled, self.n_persons = 3, 0

    def save(self, out: str) -> dict[str, Path]:
        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        if self.signal_in_save is not None:  # a Ctrl-C while the HTML is rendered
            signal.raise_signal(self.signal_in_save)
        (folder / "report.html").write_text("the whole analysis")
        return {"html": folder / "report.html"}


def _fake_video(monkeypatch, tmp_path, analyze) -> list[str]:
    import exprsim.video.pipeline as vp

    _embed_model(monkeypatch, Stub16())
    monkeypatch.setattr(vp, "analyze_video", analyze)
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"not decoded: analyze_video is a stand-in")
    return ["video", str(clip), "--out", str(tmp_path / "vt")]


def test_a_ctrl_c_while_a_finished_video_report_is_written_does_not_lose_it(
    tmp_path, capsys, monkeypatch
):
    argv = _fake_video(
        monkeypatch, tmp_path, lambda *a, **k: _FakeAnalysis(signal_in_save=signal.SIGINT)
    )
    rc, _, err = run(capsys, *argv)
    assert (tmp_path / "vt" / "report.html").read_text() == "the whole analysis"  # was lost
    assert rc == 130 and "exprsim video: interrupted; complete report written" in err


# ------------------------------------------------------------------ 4. SIGTERM: 143


def test_sigterm_in_faces_embed_and_video_exits_143(tmp_path, capsys, monkeypatch, sigterm_handled):
    _cut_faces_stream(monkeypatch, signal.SIGTERM)
    imgs = str(_photos(tmp_path / "imgs"))
    rc, _, err = run(capsys, "faces", imgs, "--out", str(tmp_path / "f.csv"))
    assert rc == 143 and "exprsim faces: terminated: 1 face" in err  # was 130, interrupted
    monkeypatch.undo()
    _embed_model(monkeypatch, Stub16(stop=1, sig=signal.SIGTERM))
    write_images(tmp_path / "png", 3)
    rc, _, err = run(capsys, "embed", str(tmp_path / "png"), "-o", str(tmp_path / "e.csv"))
    assert rc == 143 and "exprsim embed: terminated: 1 face saved" in err

    def analyze(*args, **kwargs):  # the pipeline keeps a partial analysis on SIGTERM
        with contextlib.suppress(KeyboardInterrupt):
            signal.raise_signal(signal.SIGTERM)
        return _FakeAnalysis(interrupted=True)

    rc, _, err = run(capsys, *_fake_video(monkeypatch, tmp_path, analyze))
    assert rc == 143 and "exprsim video: terminated; partial report written" in err


def test_sigterm_in_index_add_says_how_much_is_stored(
    tmp_path, capsys, monkeypatch, sigterm_handled
):
    write_images(tmp_path / "imgs", 5)
    db = tmp_path / "i.db"
    stub_cli_model(monkeypatch, Stub16(stop=2, sig=signal.SIGTERM))
    rc, _, err = run(capsys, "index", "add", str(tmp_path / "imgs"), "--db", str(db))
    assert rc == 143
    line = err.strip().splitlines()[-1]  # was "exprsim index: terminated"
    assert line.startswith("exprsim index add: terminated: ") and line.endswith(
        "run the same command again to continue"
    )
    assert " files added in this run are stored (" in line
    stub_cli_model(monkeypatch, Stub16())
    assert run(capsys, "index", "add", str(tmp_path / "imgs"), "--db", str(db))[0] == 0
    from exprsim.index.store import FaceIndex

    with FaceIndex(db, embedder=StubEmbedder()) as ix:
        assert ix.info().n_files == 5


# ------------------------------------------------------------------ 3. folders not listed


@pytest.fixture
def locked(tmp_path, monkeypatch) -> Path:
    """``w/ok/a.png`` and ``w/locked/b.png``; ``w/locked`` cannot be listed (as after
    ``chmod 000``, for a user other than root)."""
    write_images(tmp_path / "w" / "ok", 1)
    write_images(tmp_path / "w" / "locked", 1)
    deny_listing(monkeypatch, tmp_path / "w" / "locked")
    return tmp_path / "w"


def test_a_folder_that_cannot_be_listed_is_a_failed_input(locked, capsys, monkeypatch):
    stub_cli_model(monkeypatch, StubEmbedder())
    why = "locked: folder cannot be listed (Permission denied); its images were not read"
    rc, _, err = run(capsys, "faces", str(locked))
    assert rc == 0 and err.strip().endswith(why)  # was: not a word, its photos missing
    rc, _, err = run(capsys, "faces", str(locked / "locked"))
    assert rc == 1 and err.strip().endswith(why)  # every input failed
    db = str(locked.parent / "w.db")
    rc, out, err = run(
        capsys, "index", "add", str(locked / "ok"), str(locked / "locked"), "--db", db
    )
    assert rc == 0 and err.strip().startswith("exprsim index add: ") and err.strip().endswith(why)
    assert "1 folders could not be listed" in out
    rc, _, err = run(capsys, "index", "add", str(locked / "locked"), "--db", db)
    assert rc == 1 and err.strip().endswith(why)
    rc, _, err = run(capsys, "summarize", str(locked))
    assert why in err


# ------------------------------------------------------------------ 5. not written


def test_no_wrote_after_not_written(tmp_path, capsys, monkeypatch):
    bad = tmp_path / "empt"
    bad.mkdir()
    (bad / "a.jpg").write_bytes(b"")
    (bad / "b.jpg").write_bytes(b"")
    assert main(["faces", str(bad), "--out", str(tmp_path / "e.csv")]) == 1
    err = capsys.readouterr().err
    assert "e.csv not written" in err and "; wrote" not in err  # was "; wrote e.csv"
    _embed_model(monkeypatch, Stub16())
    assert main(["embed", str(bad), "-o", str(tmp_path / "l.csv")]) == 1
    cap = capsys.readouterr()
    assert "l.csv not written" in cap.err and "->" not in cap.out  # was "-> l.csv"
    assert not (tmp_path / "e.csv").exists() and not (tmp_path / "l.csv").exists()


# ------------------------------------------------------------------ 8. progress


def test_classify_and_tag_show_progress(tmp_path, capsys, monkeypatch):
    from exprsim.apps.classify import ReferenceSet, classify_images
    from exprsim.apps.tag import Tagger
    from exprsim.index.store import FaceIndex

    calls: list[bool] = []

    class Recording(StubEmbedder):
        def embed_images(self, images, detector=None, progress=False, failures=None):
            calls.append(progress)
            return super().embed_images(images, detector, progress, failures)

    imgs = write_images(tmp_path / "imgs", 3)
    ref = ReferenceSet(
        np.eye(4, 16, dtype=np.float32), np.array([0, 0, 1, 1]), ("a", "b"), "stub@1", 1
    )
    assert len(classify_images(imgs, Recording(), ref, progress=True).faces) == 3
    with FaceIndex(tmp_path / "t.db", embedder=Recording()) as ix:
        tagger = Tagger(ix)
        tagger.add("x", imgs[0])
        calls.clear()
        assert len(tagger.tag(imgs, progress=True)) == 3  # one stream, one bar
    assert calls == [True]  # was a TypeError: no progress parameter

    import exprsim.apps.classify as cl

    seen: dict[str, Any] = {}

    def classify(files, *args, **kwargs):
        seen.update(kwargs, files=files)
        return cl.ClassificationResult((), "stub@1", 1, ("a",))

    stub_cli_model(monkeypatch, StubEmbedder())
    monkeypatch.setattr(cl, "classify_images", classify)
    assert main(["classify", str(imgs[0])]) == 0
    assert seen["progress"] is True  # not -q: a bar (was silent)
    assert main(["-q", "classify", str(imgs[0])]) == 0
    assert seen["progress"] is False


# ------------------------------------------------------------------ 10, 11. checked first


def test_crops_is_checked_before_the_work(tmp_path, capsys, monkeypatch):
    import exprsim.faces.pipeline as pipeline_mod

    monkeypatch.setattr(pipeline_mod, "analyze_files", lambda *a, **k: pytest.fail("worked"))
    taken = tmp_path / "f5.csv"
    taken.write_text("x")
    rc, _, err = run(capsys, "faces", str(_photos(tmp_path / "imgs", 1)), "--crops", str(taken))
    assert rc == 2 and err.strip() == (
        f"exprsim faces: error: --crops {taken} exists and is not a folder"
    )


def test_file_system_errors_name_the_file_then_the_reason(capsys, monkeypatch):
    import exprsim.cli.faces_cmd as faces_cmd

    def refuse(args):
        raise PermissionError(13, "Permission denied", "ro/img001_0.png")

    monkeypatch.setattr(faces_cmd, "cmd_detectors", refuse)
    assert main(["detectors"]) == 2
    assert capsys.readouterr().err == (
        "exprsim detectors: error: ro/img001_0.png: Permission denied\n"
    )  # was "ro/img001_0.png Permission denied"


def test_index_add_refuses_a_db_in_an_unwritable_folder_before_the_model(
    tmp_path, capsys, monkeypatch
):
    import exprsim.cli.apps_cmd as apps_cmd

    write_images(tmp_path / "imgs", 1)
    ro = tmp_path / "ro"
    ro.mkdir()
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: Path(p) != ro and real(p, mode))
    monkeypatch.setattr(apps_cmd, "_embedder", lambda args: pytest.fail("model loaded"))
    rc, _, err = run(capsys, "index", "add", str(tmp_path / "imgs"), "--db", str(ro / "x.db"))
    assert rc == 2 and f"--db {ro / 'x.db'}: cannot write it (folder {ro} is not writable)" in err
    img = str(tmp_path / "imgs" / "img_0000.png")
    rc, _, err = run(capsys, "tag", "add", "happy", img, "--db", str(ro / "t.db"))
    assert rc == 2 and f"--db {ro / 't.db'}: cannot write it" in err


# ------------------------------------------------------------------ 13, docs 5. help


def _parsers() -> Iterator[tuple[str, argparse.ArgumentParser]]:
    from exprsim.cli import build_parser

    todo = [("exprsim", build_parser())]
    while todo:
        name, parser = todo.pop()
        yield name, parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                todo += [(f"{name} {sub}", p) for sub, p in action.choices.items()]


def test_every_command_and_option_is_described_with_its_default():
    gaps = []
    for name, parser in _parsers():
        if not parser.description:
            gaps.append(f"{name}: no description")
        for a in parser._actions:
            if isinstance(a, argparse._HelpAction | argparse._VersionAction):
                continue
            if isinstance(a, argparse._SubParsersAction):
                continue
            what = f"{name} {'/'.join(a.option_strings) or a.dest}"
            if not a.help:
                gaps.append(f"{what}: no help")
            elif (
                a.default not in (None, False, True, argparse.SUPPRESS) and "default" not in a.help
            ):
                gaps.append(f"{what}: default {a.default!r} not stated")
    assert not gaps, "\n".join(gaps)


def test_help_texts_that_contradicted_the_code():
    helps = {
        name: {"/".join(a.option_strings) or a.dest: a.help or "" for a in p._actions}
        for name, p in _parsers()
    }
    assert "--face" in helps["exprsim search"]["query"]
    for cmd in ("index add", "index info", "index remove", "index rebuild", "search", "tag"):
        assert "postgresql://" in helps[f"exprsim {cmd}"]["--db"], cmd
    for cmd in ("classify", "subclasses", "tag"):
        assert "$EXPRSIM_FER_DIR" in helps[f"exprsim {cmd}"]["--data-dir"], cmd
    assert "default 256" in helps["exprsim embed"]["--shard-size"]
    assert "default subclasses.html" in helps["exprsim subclasses"]["--html"]


# ------------------------------------------------------------------ docs 3. -o, usage


@pytest.mark.parametrize(
    "argv",
    [
        ["faces", "x.jpg"],
        ["search", "q.jpg", "--db", "f.db"],
        ["summarize", "d"],
        ["classify", "x.jpg"],
        ["tag", "x.jpg", "--db", "f.db"],
    ],
)
def test_o_is_out_wherever_out_writes_a_table(argv):
    from exprsim.cli import build_parser

    assert build_parser().parse_args([*argv, "-o", "t.csv"]).out == "t.csv"  # was refused


def test_an_unknown_option_shows_the_usage_of_its_command(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["index", "add", "x.jpg", "--db", "f.db", "--bogus"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.startswith("usage: exprsim index add ")  # was exprsim's
    assert err.strip().endswith("exprsim index add: error: unrecognized arguments: --bogus")


# ------------------------------------------------------------------ 14. lists of inputs


def _stdin(monkeypatch: pytest.MonkeyPatch, data: bytes) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))


def test_faces_reads_a_list_of_paths_from_stdin(tmp_path, capsys, monkeypatch):
    imgs = _photos(tmp_path / "imgs")
    _stdin(monkeypatch, f"{imgs / 'grace_hopper.jpg'}\n\n{imgs}\r\n".encode())
    rc, out, _ = run(capsys, "faces", "-")  # was "-: no such file"
    frame = pd.read_csv(io.StringIO(out))
    assert rc == 0 and sorted(set(frame["source"].map(lambda s: Path(s).name))) == [
        "astronaut_eileen_collins.jpg",
        "grace_hopper.jpg",
    ]  # the file named twice (itself, and in its folder) read once


def test_the_batch_commands_take_files_from(tmp_path, capsys, monkeypatch):
    imgs = write_images(tmp_path / "imgs", 3)
    listing = tmp_path / "list.csv"  # a name a table could take
    listing.write_bytes(b"\0".join(os.fsencode(p) for p in imgs[:2]) + b"\0")  # find -print0
    stub = stub_cli_model(monkeypatch, Stub16())
    _embed_model(monkeypatch, stub)
    rc, _, _ = run(capsys, "embed", "--files-from", str(listing), "-o", str(tmp_path / "e.csv"))
    assert rc == 0 and len(pd.read_csv(tmp_path / "e.csv")) == 2
    db = str(tmp_path / "i.db")
    rc, out, _ = run(capsys, "index", "add", "--files-from", str(listing), "--db", db)
    assert rc == 0 and out.startswith("2 files added")
    _stdin(monkeypatch, os.fsencode(imgs[2]) + b"\n")
    rc, out, _ = run(capsys, "summarize", "-", "--files-from", str(listing), "-n", "1")
    assert rc == 0 and "cluster 1: 3 faces" in out
    rc, _, err = run(capsys, "faces", "--files-from", str(listing), "--out", str(listing))
    assert rc == 2 and "is the --files-from list" in err
    _stdin(monkeypatch, b"")
    rc, _, err = run(capsys, "faces", "-", "--files-from", "-")
    assert rc == 2 and "can be read only once" in err

    import exprsim.apps.classify as cl

    seen: list[Any] = []

    def classify(files, *args, **kwargs):
        seen.append(files)
        return cl.ClassificationResult((), "stub@1", 1, ("a",))

    monkeypatch.setattr(cl, "classify_images", classify)
    rc, _, _ = run(capsys, "classify", "--files-from", str(listing))
    assert rc == 0 and seen == [[str(p) for p in imgs[:2]]]


def test_a_photo_given_as_the_list_is_one_line_not_a_traceback(capsys, tmp_path: Path) -> None:
    photo = sample_path("grace_hopper.jpg")
    code, _, err = run(
        capsys, "faces", "--files-from", str(photo), "--out", str(tmp_path / "f.csv")
    )
    assert code == 2 and "not a list of paths (binary data)" in err  # was: RuntimeError
    assert len(err.strip().splitlines()) == 1
    code, _, err = run(capsys, "faces", "--files-from", "", "--out", str(tmp_path / "f.csv"))
    assert code == 2 and "--files-from: empty name" in err  # was: ignored


def test_an_unknown_users_home_is_no_such_file(capsys, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("~nosuchuser-exprsim/x.jpg\n"))
    code, _, err = run(capsys, "faces", "-", "--out", str(tmp_path / "f.csv"))
    assert code != 0 and "no such file" in err and "Traceback" not in err


def test_tag_takes_a_list_of_paths(tmp_path, capsys, monkeypatch):
    imgs = write_images(tmp_path / "imgs", 3)
    listing = tmp_path / "list.csv"  # a name a table could take
    listing.write_bytes(b"\n".join(os.fsencode(p) for p in imgs[:2]) + b"\n")
    stub = stub_cli_model(monkeypatch, Stub16())
    _embed_model(monkeypatch, stub)
    db = str(tmp_path / "i.db")
    assert run(capsys, "index", "add", str(imgs[0]), "--db", db)[0] == 0

    import exprsim.apps.tag as tag_app

    seen: list[Any] = []

    def tag(self, files, *args, **kwargs):
        seen.append(list(files))
        return tag_app.TagResults()

    monkeypatch.setattr(tag_app.Tagger, "tag", tag)
    _stdin(monkeypatch, os.fsencode(imgs[2]) + b"\n")
    rc, _, err = run(capsys, "tag", "-", "--files-from", str(listing), "--db", db)
    assert rc == 0, err  # was: "-: no such file", and --files-from unknown
    assert seen == [[str(imgs[2]), str(imgs[0]), str(imgs[1])]]
    rc, _, _ = run(capsys, "tag", "--files-from", str(listing), "--db", db)
    assert rc == 0 and seen[-1] == [str(p) for p in imgs[:2]]
    rc, _, err = run(capsys, "tag", "--files-from", str(listing), "--db", db, "-o", str(listing))
    assert rc == 2 and "is the --files-from list" in err
    rc, _, err = run(capsys, "tag", "list", "--files-from", str(listing), "--db", db)
    assert rc == 2 and "tag list does not take --files-from" in err
    rc, _, err = run(capsys, "tag", "--db", db)
    assert rc == 2 and "tag needs an action" in err and len(err.strip().splitlines()) == 1
    rc, _, err = run(capsys, "tag", str(imgs[0]))
    assert rc == 2 and "tag IMAGE...: --db FILE is required" in err


def test_quiet_and_verbose_after_the_subcommand(tmp_path, capsys, monkeypatch):
    """``exprsim index add DIR --db F -q`` was "unrecognized arguments: -q"."""
    from exprsim.cli import build_parser

    parser = build_parser()
    for argv, quiet, verbose in (
        (["faces", "x.jpg"], False, False),
        (["-q", "faces", "x.jpg"], True, False),
        (["faces", "x.jpg", "-q"], True, False),
        (["index", "add", "x", "--db", "i.db", "--quiet"], True, False),
        (["-v", "index", "info", "--db", "i.db"], False, True),
        (["index", "info", "-v", "--db", "i.db"], False, True),
    ):
        args = parser.parse_args(argv)
        assert (args.quiet, args.verbose) == (quiet, verbose), argv
    stub = stub_cli_model(monkeypatch, Stub16())
    _embed_model(monkeypatch, stub)
    imgs = write_images(tmp_path / "imgs", 2)
    rc, out, err = run(
        capsys, "index", "add", str(tmp_path / "imgs"), "--db", str(tmp_path / "i.db"), "-q"
    )
    assert rc == 0 and out.startswith("2 files added") and "img/s" not in err  # no bar
    assert len(imgs) == 2


def test_an_error_names_the_subcommand_as_typed(capsys, tmp_path):
    rc, _, err = run(capsys, "index", "info", "--db", str(tmp_path / "none.db"))
    assert rc == 2 and err.startswith("exprsim index info: error: ")  # was "exprsim index:"
