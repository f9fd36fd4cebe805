"""Frame reading: containers, sampling by rate and by count, timestamps, truncation."""

from __future__ import annotations

import numpy as np
import pytest

from exprsim.video.frames import FrameReader, VideoError, read_frames

from .conftest import numbered_frames, write_clip


@pytest.fixture(scope="module")
def clip30(tmp_path_factory):
    """3 s at 30 fps (90 tiny frames), index first."""
    return write_clip(tmp_path_factory.mktemp("f") / "c30.mp4", numbered_frames(90), fps=30)


def test_fps_sampling_and_timestamps(clip30):
    with FrameReader(clip30, fps=5) as reader:
        assert reader.info.width == 64 and reader.info.height == 48
        assert reader.info.fps == pytest.approx(30)
        assert reader.expected_samples() == 15
        frames = list(reader)
    assert [f.index for f in frames] == list(range(0, 90, 6))
    np.testing.assert_allclose([f.time for f in frames], np.arange(15) * 0.2, atol=1e-6)
    assert frames[0].image.shape == (48, 64, 3) and frames[0].image.dtype == np.uint8
    assert not reader.truncated and reader.n_decoded == 90
    assert reader.sample_period == pytest.approx(0.2)


def test_every_nth_and_max_frames(clip30):
    frames = read_frames(clip30, every=4)
    assert [f.index for f in frames] == list(range(0, 90, 4))
    np.testing.assert_allclose([f.time for f in frames], np.arange(0, 90, 4) / 30, atol=1e-6)
    assert len(read_frames(clip30, fps=5, max_frames=3)) == 3
    # a rate above the source's takes every frame once
    assert len(read_frames(clip30, fps=100)) == 90


@pytest.mark.parametrize(
    ("suffix", "codec"), [(".webm", "libvpx-vp9"), (".avi", "mpeg4"), (".mov", "libx264")]
)
def test_other_containers(tmp_path, suffix, codec):
    path = write_clip(tmp_path / f"c{suffix}", numbered_frames(20), fps=10, codec=codec)
    frames = read_frames(path, fps=5)
    assert [f.index for f in frames] == list(range(0, 20, 2))
    np.testing.assert_allclose([f.time for f in frames], np.arange(10) * 0.2, atol=1e-3)
    # brightness survives the codec: frames come back in order
    means = [f.image.mean() for f in frames]
    np.testing.assert_allclose(means, [(i * 7) % 200 + 20 for i in range(0, 20, 2)], atol=4)


def test_image_sequence_folder(tmp_path):
    from PIL import Image

    for i, im in enumerate(numbered_frames(10)):
        Image.fromarray(im).save(tmp_path / f"f{i:03d}.png")
    # a folder is a sequence of chosen frames: every one is used, whatever --fps says
    with FrameReader(tmp_path, fps=5, sequence_fps=10) as reader:
        frames = list(reader)
    assert reader.info.codec == "images" and reader.info.n_frames == 10
    assert [f.index for f in frames] == list(range(10))
    np.testing.assert_allclose([f.time for f in frames], np.arange(10) / 10)
    assert reader.expected_samples() == 10
    with FrameReader(tmp_path, every=2, sequence_fps=10) as reader:
        assert [f.index for f in reader] == [0, 2, 4, 6, 8]


def test_truncated_stream_ends_cleanly_with_warning(tmp_path, caplog):
    full = write_clip(tmp_path / "full.mp4", numbered_frames(60, 128, 96), fps=10)
    data = full.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with caplog.at_level("WARNING"), FrameReader(cut, fps=5) as reader:
        frames = list(reader)
    assert 0 < len(frames) < 30
    assert reader.truncated and reader.warnings
    assert any(w in caplog.text for w in ("truncated", "reading stopped", "undecodable"))
    # what was read is intact and in order
    assert [f.index for f in frames] == list(range(0, 2 * len(frames), 2))


def test_cut_index_and_garbage_raise_video_error(tmp_path):
    full = write_clip(tmp_path / "late.mp4", numbered_frames(20), fps=10, faststart=False)
    cut = tmp_path / "late_cut.mp4"
    cut.write_bytes(full.read_bytes()[:-200])  # the index (moov) sits at the end
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video" * 100)
    for bad in (cut, junk, tmp_path / "missing.mp4"):
        with pytest.raises(VideoError):
            read_frames(bad)
    with pytest.raises(VideoError):
        FrameReader(full, fps=0)


def test_opens_but_no_frame_decodes_raises_video_error(tmp_path):
    """Text named like an image opens (FFmpeg's image demuxer) but decodes nothing: an
    error, like a file that cannot be opened, not an empty analysis."""
    fake = tmp_path / "text.jpg"
    fake.write_bytes(b"hello, not a picture\n")
    reader = FrameReader(fake, every=1)  # opening succeeds
    with pytest.raises(VideoError, match="no frame could be decoded"):
        list(reader)


def test_corrupt_packets_are_skipped_and_counted(tmp_path, caplog):
    """Garbage written over the middle of an mp4: the frames after the damage are still read
    (skipping undecodable packets), and the loss is reported."""
    full = write_clip(tmp_path / "full.mp4", numbered_frames(80, 128, 96), fps=10)
    data = bytearray(full.read_bytes())
    rng = np.random.default_rng(0)
    start = len(data) // 3
    data[start : start + 600] = rng.integers(0, 256, 600, dtype=np.uint8).tobytes()
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(bytes(data))
    with caplog.at_level("WARNING"), FrameReader(bad, every=1) as reader:
        frames = list(reader)
    indices = [f.index for f in frames]
    assert indices == sorted(indices)
    # frames from the last third of the clip survive the damage in the first third
    assert len(frames) >= 40, len(frames)
    assert reader.truncated and reader.warnings
