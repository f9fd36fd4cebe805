"""Round 25 (docs/robustness.md): ``exprsim video`` on a named pipe nothing writes to
waited for ever (and a Ctrl-C then read as "cannot open video: Interrupted system
call"); it is now given ``PIPE_WAIT_S``, as images are. A pipe with a writer is read."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import exprsim.io
from exprsim.video.frames import FrameReader, VideoError

from .conftest import write_clip


def test_a_pipe_nothing_writes_to_is_refused_in_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(exprsim.io, "PIPE_WAIT_S", 0.5)
    fifo = tmp_path / "v.mp4"
    os.mkfifo(fifo)
    done: list[BaseException] = []

    def read() -> None:
        try:
            with FrameReader(fifo, fps=5) as reader:
                list(reader)
        except BaseException as exc:  # handed to the test
            done.append(exc)

    t = threading.Thread(target=read, daemon=True)
    t0 = time.monotonic()
    t.start()
    t.join(20)
    if t.is_alive():  # the old code: unblock it and fail
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("the read waited for ever for a writer")
    assert time.monotonic() - t0 < 10
    assert isinstance(done[0], VideoError)
    assert "a pipe that nothing wrote to within 0.5 s" in str(done[0])


def test_a_pipe_with_a_writer_is_read(tmp_path: Path) -> None:
    frames = [np.full((48, 64, 3), 30 * i, np.uint8) for i in range(6)]
    clip = write_clip(tmp_path / "c.ts", frames, fps=10, fmt="mpegts")
    fifo = tmp_path / "p.ts"
    os.mkfifo(fifo)

    def write() -> None:
        time.sleep(0.3)  # the reader is waiting first
        with open(fifo, "wb") as fh:
            fh.write(clip.read_bytes())

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    with FrameReader(fifo, every=1) as reader:
        got = list(reader)
    writer.join(10)
    assert len(got) == 6


def test_a_broken_link_among_frames_keeps_its_place(tmp_path: Path) -> None:
    """f2.jpg a link to nowhere: f3 became frame 1 at 0.04 s without a word (a corrupt
    f2.jpg kept its slot, with a warning); now the broken link does too. A FIFO named
    like a frame is still no frame."""
    from PIL import Image

    folder = tmp_path / "frames"
    folder.mkdir()
    for i in (1, 3):
        Image.fromarray(np.full((48, 64, 3), 40 * i, np.uint8)).save(folder / f"f{i}.jpg")
    os.symlink(tmp_path / "nowhere.jpg", folder / "f2.jpg")
    os.mkfifo(folder / "f4.jpg")
    with FrameReader(folder) as reader:
        got = list(reader)
    assert [f.index for f in got] == [0, 2]  # f3 is the third frame, not the second
    assert any("f2.jpg" in w for w in reader.warnings)


def test_the_default_video_stream_is_read_and_named(tmp_path: Path, caplog) -> None:
    """A 96 x 54 preview stream first and the film (the default stream, what players
    show) second: the preview was read without a word."""
    import av

    path = tmp_path / "two.mkv"
    with av.open(str(path), "w") as out:
        small, big = out.add_stream("libx264", rate=5), out.add_stream("libx264", rate=5)
        small.width, small.height, big.width, big.height = 96, 54, 160, 96
        small.pix_fmt = big.pix_fmt = "yuv420p"
        small.disposition, big.disposition = 0, av.stream.Disposition.default
        for i in range(5):
            for stream, (w, h) in ((small, (96, 54)), (big, (160, 96))):
                frame = av.VideoFrame.from_ndarray(np.full((h, w, 3), 40 * i, np.uint8), "rgb24")
                frame.pts = i
                for packet in stream.encode(frame):
                    out.mux(packet)
        for stream in (small, big):
            for packet in stream.encode():
                out.mux(packet)
    with FrameReader(path, every=1) as reader:
        frames = list(reader)
    assert (reader.info.width, reader.info.height) == (160, 96)  # was 96 x 54
    assert len(frames) == 5 and frames[0].image.shape[:2] == (96, 160)
    assert "2 video streams; reading stream #1 (160x96, the default)" in caplog.text
