"""Progress bars in a log (stderr not a terminal): plain lines, never carriage returns."""

from __future__ import annotations

import io
from pathlib import Path

from exprsim.cli import main
from exprsim.cli.logstream import LogStream
from exprsim.samples import sample_path


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_bar_in_a_log_is_a_line_per_interval_and_its_last_state() -> None:
    from tqdm import tqdm

    out, clock = io.StringIO(), _Clock()
    log = LogStream(out, interval=30.0, clock=clock)
    bar = tqdm(total=100, file=log, desc="faces", mininterval=0, ncols=60, ascii=True)
    for i in range(100):
        clock.now = i + 1  # a second per step: n faces done at n s
        bar.update(1)
        if i == 40:
            tqdm.write("exprsim faces: a.jpg: empty file", file=log)
    bar.close()
    lines = out.getvalue().split("\n")
    assert "\r" not in out.getvalue() and lines[-1] == ""
    bars = [line for line in lines if line.startswith("faces:")]
    # the first state, then one every 30 s (0, 30, 60, 90), and the last one
    assert [b.split("|")[0].strip() for b in bars] == ["faces:   0%", "faces:  30%",
        "faces:  60%", "faces:  90%", "faces: 100%"]  # fmt: skip
    assert "exprsim faces: a.jpg: empty file" in lines  # a line of its own, no bar on it
    assert print_passes_through()


def print_passes_through() -> bool:
    out = io.StringIO()
    log = LogStream(out)
    print("plain", file=log)
    print("", file=log)  # an empty line printed by a command stays
    log.write("")
    return out.getvalue() == "plain\n\n"


def test_a_piped_stderr_gets_clean_error_lines(capsys, tmp_path: Path) -> None:
    album = tmp_path / "album"
    album.mkdir()
    for i in range(3):
        (album / f"e{i}.jpg").write_bytes(b"")
    (album / "g.jpg").write_bytes(sample_path("grace_hopper.jpg").read_bytes())
    code = main(["faces", str(album), "--out", str(tmp_path / "f.csv")])  # not -q: a bar
    err = capsys.readouterr().err
    assert code == 0 and "faces: 100%" in err
    assert "\r" not in err  # was: every error line began with a copy of the bar
    for i in range(3):
        assert f"exprsim faces: {album / f'e{i}.jpg'}: empty file" in err.splitlines()


def test_text_around_carriage_returns_is_kept_whole() -> None:
    def logged(*writes: str) -> str:
        out = io.StringIO()
        log = LogStream(out)
        for w in writes:
            log.write(w)
        return out.getvalue()

    # was: "line oneline two\n" (a Windows line ending taken for a redraw)
    assert logged("line one\r\n", "line two\n") == "line one\nline two\n"
    # was: "Downloading100%\nnext\n"
    assert logged("Downloading\r50%\r100%\nnext\n") == "Downloading\n50%\n100%\nnext\n"
    assert logged("abc\rdef\n") == "abc\ndef\n"
