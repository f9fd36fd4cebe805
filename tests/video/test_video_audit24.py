"""Round 24 (docs/robustness.md): a ``video --out`` save killed among the renames of its
files (after every file was whole) left files of two runs side by side; the next save, or
``exprsim video`` before it decodes anything, now moves the rest of the killed run's files
into place."""

from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from exprsim.video.pipeline import (
    REPORT_FILES,
    VideoConfig,
    analyze_video,
    finish_killed_saves,
)

from .conftest import InterruptingDetector, numbered_frames


def _analysis(clip_factory, embedder, n: int):
    clip = clip_factory(f"plain{n}.mp4", numbered_frames(n), fps=5)
    cfg = VideoConfig(fps=5, identity="iou")
    return analyze_video(clip, embedder, cfg, detector=InterruptingDetector(0), classifier=None)


def _killed_save(analysis, out: Path, renames: int, tmp_path: Path, when: str = "replace") -> None:
    """``analysis.save(out)`` in a child process killed (``os._exit``: no ``finally``, as
    ``kill -9``) after its ``renames``-th rename into ``out``, or (``when="sync_file"``)
    when it syncs its first file, before any rename."""
    blob = tmp_path / "analysis.pkl"
    blob.write_bytes(pickle.dumps(analysis))
    code = textwrap.dedent(f"""
        import os, pickle
        import exprsim.io
        import exprsim.video.pipeline as pipeline
        real, done = os.replace, [0]
        def replace(src, dst):
            real(src, dst)
            if os.path.dirname(os.fspath(dst)) == {str(out)!r}:  # a rename into out
                done[0] += 1
                if done[0] == {renames}:
                    os._exit(9)
        def sync_file(path):
            os._exit(9)
        if {when!r} == "replace":
            pipeline.os.replace = replace
        else:
            exprsim.io.sync_file = sync_file
        analysis = pickle.loads(open({str(blob)!r}, "rb").read())
        analysis.save({str(out)!r})
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 9, proc.stderr


@pytest.mark.parametrize("renames", [1, 4])
def test_a_save_killed_among_its_renames_is_finished(
    clip_factory, embedder, tmp_path: Path, renames: int
) -> None:
    # faceless clips: the tables of the two runs are alike, analysis.json and the page not
    old, new = _analysis(clip_factory, embedder, 3), _analysis(clip_factory, embedder, 6)
    out = tmp_path / "out"
    new.save(tmp_path / "ref")
    old.save(out)
    mine = ("analysis.json", "report.html")  # the 4th and 5th of the renames
    theirs = {n: (tmp_path / "ref" / n).read_bytes() for n in mine}
    assert all((out / n).read_bytes() != theirs[n] for n in mine)
    _killed_save(new, out, renames, tmp_path)
    assert ((out / "analysis.json").read_bytes() == theirs["analysis.json"]) == (renames == 4)
    assert (out / "report.html").read_bytes() != theirs["report.html"]  # a mix, if 4
    assert finish_killed_saves(out) == 1
    assert all((out / n).read_bytes() == theirs[n] for n in mine)  # was: the old ones
    for name in REPORT_FILES.values():
        assert (out / name).read_bytes() == (tmp_path / "ref" / name).read_bytes()
    assert finish_killed_saves(out) == 0
    new.save(out)  # the next save sweeps the emptied temporary folder
    assert sorted(p.name for p in out.iterdir()) == sorted(REPORT_FILES.values())


def test_a_save_killed_before_its_files_were_whole_keeps_the_earlier_run(
    clip_factory, embedder, tmp_path: Path
) -> None:
    old, new = _analysis(clip_factory, embedder, 3), _analysis(clip_factory, embedder, 6)
    out = tmp_path / "out"
    old.save(out)
    before = {n: (out / n).read_bytes() for n in REPORT_FILES.values()}
    _killed_save(new, out, 0, tmp_path, when="sync_file")  # at its first file's sync
    assert finish_killed_saves(out) == 0  # not marked complete: nothing moved
    assert {n: (out / n).read_bytes() for n in REPORT_FILES.values()} == before
    old.save(out)  # and the next save sweeps the killed run's folder
    assert sorted(p.name for p in out.iterdir()) == sorted(REPORT_FILES.values())


def test_exprsim_video_finishes_a_killed_save_before_it_decodes(
    clip_factory, embedder, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from exprsim.cli import main

    old, new = _analysis(clip_factory, embedder, 3), _analysis(clip_factory, embedder, 6)
    out = tmp_path / "out"
    old.save(out)
    _killed_save(new, out, 2, tmp_path)
    clip = clip_factory("plain3.mp4", numbered_frames(3), fps=5)
    # refused after the --out checks, before any frame is decoded
    assert main(["-q", "video", str(clip), "--out", str(out), "--smooth", "4"]) == 2
    info = (out / REPORT_FILES["json"]).read_text()
    assert f'"frames_sampled": {new.n_sampled}' in info  # the killed run's, moved in place
    assert "--smooth must be odd" in capsys.readouterr().err


def test_a_save_that_fails_among_its_renames_does_not_say_the_earlier_run_is_whole(
    tmp_path: Path,
) -> None:
    import argparse
    import errno

    from exprsim.cli.video_cmd import _save_report
    from exprsim.errors import ExprsimError

    class HalfMoved:
        interrupted = False

        def save(self, out_dir):
            exc = OSError(errno.EIO, "Input/output error")
            exc.moved_into_place = 2  # type: ignore[attr-defined]
            raise exc

    args = argparse.Namespace(out=str(tmp_path / "out"))
    with pytest.raises(ExprsimError) as caught:
        _save_report(args, HalfMoved())
    assert "left whole" not in str(caught.value)  # was: "... are left whole"
    assert "beside an earlier run's: run it again" in str(caught.value)


def test_a_stopped_run_never_replaces_a_complete_report(
    clip_factory, embedder, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Audit: Ctrl-C on `exprsim video CLIP --out DIR` over a complete report of DIR
    replaced it by the partial one (11 of 120 frames)."""
    import argparse
    from dataclasses import replace

    from exprsim.cli.video_cmd import INTERRUPTED_REPORT, _save_report

    old, new = _analysis(clip_factory, embedder, 6), _analysis(clip_factory, embedder, 3)
    out = tmp_path / "out"
    old.save(out)
    before = {n: (out / n).read_bytes() for n in REPORT_FILES.values()}
    stopped = replace(new, interrupted=True)
    args = argparse.Namespace(out=str(out))
    assert _save_report(args, stopped) == 130
    assert {n: (out / n).read_bytes() for n in REPORT_FILES.values()} == before
    aside = out / INTERRUPTED_REPORT
    assert '"interrupted": true' in (aside / REPORT_FILES["json"]).read_text()
    err = capsys.readouterr().err
    assert f"into {aside}" in err and "complete report of an earlier run" in err
    # over a partial report, a partial one is written in place as before
    stopped.save(tmp_path / "partial")
    args = argparse.Namespace(out=str(tmp_path / "partial"))
    assert _save_report(args, replace(old, interrupted=True)) == 130
    assert not (tmp_path / "partial" / INTERRUPTED_REPORT).exists()


@pytest.mark.parametrize("name", sorted(REPORT_FILES.values()))
def test_a_folder_where_a_report_file_goes_is_refused_before_decoding(
    tmp_path: Path, clip_factory, name: str, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    """Round 25: a folder named ``report.html`` (or another report file) in ``--out`` was
    found only when the analysis was done and its report moved in; now before any frame
    is read."""
    import exprsim.video.pipeline as pipeline
    from exprsim.cli import main

    def no_analysis(*args, **kwargs):
        raise AssertionError("the video was analysed")

    monkeypatch.setattr(pipeline, "analyze_video", no_analysis)
    clip = clip_factory("refused.mp4", numbered_frames(3), fps=5)
    out = tmp_path / "out"
    (out / name).mkdir(parents=True)
    assert main(["video", str(clip), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{name} there is a folder, where the report writes a file" in err
    assert sorted(p.name for p in out.iterdir()) == [name]
