"""Audit 7 (video and media decoding): mirrored display matrices and EXIF stills, joined
recordings whose timestamps restart, frame numbers after a lost packet, the shown size of
rotated clips, a pixel limit on frames, animated WebP, and EXIF that Pillow cannot write
back in a folder of frames. Each test failed before its fix."""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from exprsim.cli import main
from exprsim.io import load_image
from exprsim.video.frames import FrameReader, VideoError
from exprsim.video.pipeline import VideoConfig, analyze_video

from .conftest import numbered_frames, write_clip

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from corpus import png_bomb

#: FFmpeg display matrices (16.16 fixed point, as in an mp4 ``tkhd`` box)
ONE, W_ONE = 65536, 1 << 30


def pattern(w: int = 96, h: int = 64) -> np.ndarray:
    """A frame whose every flip and turn looks different: red grows to the right, green
    downwards, and the top-left corner is blue."""
    img = np.zeros((h, w, 3), np.uint8)
    img[:, :, 0] = np.linspace(0, 255, w).astype(np.uint8)[None, :]
    img[:, :, 1] = np.linspace(0, 255, h).astype(np.uint8)[:, None]
    img[: h // 4, : w // 4, 2] = 255
    return img


def closest(image: np.ndarray, ref: np.ndarray) -> str:
    """Which view of ``ref`` ``image`` is (mean absolute difference)."""
    views = {
        "upright": ref,
        "mirrored": ref[:, ::-1],
        "upside down": ref[::-1],
        "turned 180": ref[::-1, ::-1],
        "transposed": ref.swapaxes(0, 1),
        "turned cw": np.rot90(ref, -1),
        "turned ccw": np.rot90(ref, 1),
        "transversed": ref[::-1, ::-1].swapaxes(0, 1),
    }
    diffs = {
        k: float(np.abs(image.astype(int) - v).mean())
        for k, v in views.items()
        if v.shape == image.shape
    }
    return min(diffs, key=diffs.__getitem__)


def clip_with_matrix(path: Path, stored: list[np.ndarray], matrix: tuple[int, ...]) -> Path:
    """An mp4 of ``stored`` frames whose ``tkhd`` display matrix is ``matrix``."""
    write_clip(path, stored, fps=5)
    data = bytearray(path.read_bytes())
    i = data.find(b"tkhd")
    off = i + 8 + (32 if data[i + 4] == 1 else 20) + 8 + 8
    data[off : off + 36] = struct.pack(">9i", *matrix)
    path.write_bytes(bytes(data))
    return path


# ------------------------------------------------------------------ 2: mirror images


@pytest.mark.parametrize(
    ("stored", "matrix"),
    [
        # front cameras: stored mirrored, the matrix mirrors back (was turned upside down)
        (lambda f: f[:, ::-1], (-ONE, 0, 0, 0, ONE, 0, 0, 0, W_ONE)),
        # stored upside down, flipped back (was left upside down)
        (lambda f: f[::-1], (ONE, 0, 0, 0, -ONE, 0, 0, 0, W_ONE)),
        # stored transposed (a quarter turn and a mirror)
        (lambda f: f.swapaxes(0, 1), (0, ONE, 0, ONE, 0, 0, 0, 0, W_ONE)),
        # the quarter turns without a mirror stay as they were
        (lambda f: np.rot90(f, -1), (0, -ONE, 0, ONE, 0, 0, 0, 0, W_ONE)),
        (lambda f: np.rot90(f, 1), (0, ONE, 0, -ONE, 0, 0, 0, 0, W_ONE)),
        (lambda f: f[::-1, ::-1], (-ONE, 0, 0, 0, -ONE, 0, 0, 0, W_ONE)),
    ],
    ids=["hflip", "vflip", "transpose", "rot90", "rot270", "rot180"],
)
def test_display_matrices_with_mirrors_are_shown_as_players_show_them(tmp_path, stored, matrix):
    ref = pattern()
    frames = [np.ascontiguousarray(stored(ref))] * 3
    clip = clip_with_matrix(tmp_path / "m.mp4", frames, matrix)
    with FrameReader(clip, every=1) as reader:
        first = next(iter(reader))
    assert closest(first.image, ref) == "upright"


@pytest.mark.parametrize("orientation", range(1, 9))
def test_a_still_given_as_a_video_is_turned_as_load_image_turns_it(tmp_path, orientation):
    """EXIF 2 and 4 came out upside down, 5 and 7 wrong: `video` and `faces` disagreed."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"exif{orientation}.jpg"
    Image.fromarray(pattern()).save(path, "JPEG", exif=exif, quality=95)
    expected = load_image(path)
    reader = FrameReader(path, fps=5)
    assert (reader.info.width, reader.info.height) == expected.shape[1::-1]  # from the start
    (frame,) = list(reader)
    assert frame.image.shape == expected.shape
    assert np.abs(frame.image.astype(int) - expected).mean() < 4


# ------------------------------------------------------------------ 3: timestamps restart


def test_joined_recordings_are_read_to_the_end(tmp_path):
    """Two MPEG-TS recordings joined end to end, both starting at time 0 (the second at
    another size): the second was never sampled (5 of 10 frames, no warning)."""
    a = write_clip(tmp_path / "a.ts", numbered_frames(12, 64, 48), fps=12, fmt="mpegts")
    b = write_clip(tmp_path / "b.ts", numbered_frames(12, 96, 64), fps=12, fmt="mpegts")
    joined = tmp_path / "joined.ts"
    joined.write_bytes(a.read_bytes() + b.read_bytes())
    reader = FrameReader(joined, fps=5)
    frames = list(reader)
    times = [f.time for f in frames]
    assert reader.n_decoded == 24
    assert len(frames) == 10, times  # 2 s at 5 fps
    assert times == sorted(set(times))  # increasing
    # the second recording (96x64), scaled to fit the first one's 64x48 (round 26): black
    # above and below it
    assert {f.image.shape for f in frames} == {(48, 64, 3)}
    assert all((f.image[0] == 0).all() and f.image[24].min() > 0 for f in frames[5:])
    assert all(f.image[0].min() > 0 for f in frames[:5])
    assert times[5] == pytest.approx(1.0, abs=0.05)  # timed on from the end of the first
    assert any("timestamps jump back" in w for w in reader.warnings)


# ------------------------------------------------------------------ 4: lost packets


def test_frame_numbers_stay_the_sources_after_an_undecodable_packet(tmp_path):
    rng = np.random.default_rng(1)
    frames = [
        np.ascontiguousarray(rng.integers(0, 255, (12, 16, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1))
        for _ in range(36)
    ]  # fmt: skip
    clip = write_clip(tmp_path / "cfr.mp4", frames, fps=12)
    data = bytearray(clip.read_bytes())
    start = len(data) // 2
    data[start : start + 3000] = np.random.default_rng(0).integers(0, 256, 3000, np.uint8).tobytes()
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(bytes(data))
    reader = FrameReader(bad, every=1)
    got = list(reader)
    assert reader.bad_packets >= 1 and len(got) < 36
    # every frame number is the one its timestamp says (was: the count of decoded frames)
    assert [f.index for f in got] == [round(f.time * 12) for f in got]


# ------------------------------------------------------------------ 5: shown size


def test_a_rotated_clip_reports_the_size_it_is_shown_at(tmp_path):
    ref = pattern()
    clip = clip_with_matrix(
        tmp_path / "phone.mp4",
        [np.ascontiguousarray(np.rot90(ref, -1))] * 3,
        (0, -ONE, 0, ONE, 0, 0, 0, 0, W_ONE),
    )
    reader = FrameReader(clip, every=1)
    first = next(iter(reader))
    assert first.image.shape == ref.shape
    assert (reader.info.width, reader.info.height) == (96, 64)  # was the stored 64x96
    reader.close()


# ------------------------------------------------------------------ 6: pixel limit


def test_frames_over_max_pixels_are_refused_before_decoding(tmp_path, clip_factory):
    clip = clip_factory("px.mp4", numbered_frames(3, 64, 48))
    with pytest.raises(VideoError, match=r"frame too large \(64x48 pixels; limit 3000"):
        FrameReader(clip, max_pixels=3000)
    assert len(read_all(clip, max_pixels=64 * 48)) == 3
    with pytest.raises(VideoError, match="max_pixels must be"):
        FrameReader(clip, max_pixels=0)
    from exprsim.video.frames import MAX_FRAME_PIXELS

    assert 7680 * 4320 <= MAX_FRAME_PIXELS < 8192 * 8192  # 8K passes, the 199 KB bomb does not
    assert VideoConfig().max_pixels == MAX_FRAME_PIXELS


def read_all(source: Path, **kw) -> list:
    with FrameReader(source, every=1, **kw) as reader:
        return list(reader)


def test_a_huge_still_given_as_a_video_is_refused_from_its_header(tmp_path):
    """A 16000 x 16000 PNG took 1.3 GB through `video` (`faces` refuses it)."""
    big = tmp_path / "big.png"
    big.write_bytes(png_bomb(16000, 16000))
    with pytest.raises(VideoError, match=r"frame too large \(16000x16000 pixels"):
        FrameReader(big)


def test_a_frame_growing_past_the_limit_stops_reading_with_a_warning(tmp_path):
    """The size in the header is not the size of every frame: each one is checked."""
    a = write_clip(tmp_path / "a.ts", numbered_frames(24, 64, 48), fps=12, fmt="mpegts")
    b = write_clip(tmp_path / "b.ts", numbered_frames(6, 128, 96), fps=12, fmt="mpegts")
    joined = tmp_path / "grows.ts"
    joined.write_bytes(a.read_bytes() + b.read_bytes())
    reader = FrameReader(joined, every=1, max_pixels=5000)  # the header says 64x48
    frames = list(reader)
    assert [f.index for f in frames] == list(range(24))
    assert reader.truncated
    assert any("frame too large (128x96 pixels; limit 5000" in w for w in reader.warnings)


def test_analysis_and_cli_refuse_frames_over_the_limit(tmp_path, clip_factory, capsys, embedder):
    clip = clip_factory("lim.mp4", numbered_frames(3, 64, 48))
    with pytest.raises(VideoError, match="frame too large"):
        analyze_video(clip, embedder, VideoConfig(max_pixels=1000), classifier=None)
    big = tmp_path / "big.png"
    big.write_bytes(png_bomb(16000, 16000))
    for argv in ([str(big)], [str(clip), "--max-pixels", "1000"]):
        assert main(["-q", "video", *argv, "--out", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "frame too large" in err[0], err


# ------------------------------------------------------------------ 10: animated WebP


def animated_webp(path: Path, frames: list[np.ndarray], durations: list[int]) -> Path:
    ims = [Image.fromarray(f) for f in frames]
    ims[0].save(
        path, "WEBP", save_all=True, append_images=ims[1:], duration=durations, lossless=True
    )
    return path


def test_an_animated_webp_is_read_at_its_frame_times(tmp_path):
    """Was "no frame could be decoded (1 undecodable packet(s))": FFmpeg does not decode
    animated WebP, Pillow does."""
    frames = numbered_frames(6, 64, 48)
    path = animated_webp(tmp_path / "anim.webp", frames, [100, 100, 100, 500, 500, 500])
    reader = FrameReader(path, every=1)
    assert (reader.info.codec, reader.info.n_frames) == ("webp", 6)
    assert (reader.info.width, reader.info.height) == (64, 48)
    got = list(reader)
    assert [f.time for f in got] == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.8, 1.3])
    assert [f.index for f in got] == list(range(6))
    assert all(np.array_equal(g.image, f) for g, f in zip(got, frames, strict=True))
    by_rate = [f.time for f in FrameReader(path, fps=5)]  # sampled by its own times
    assert by_rate == pytest.approx([0.0, 0.2, 0.8, 1.3])


def test_video_cli_analyses_an_animated_webp(tmp_path, capsys, monkeypatch, embedder):
    import exprsim.models.embedder as emb_mod

    monkeypatch.setattr(emb_mod, "load_model", lambda name="default": embedder)
    path = animated_webp(tmp_path / "anim.webp", numbered_frames(4, 64, 48), [200] * 4)
    out = tmp_path / "o"
    assert main(["-q", "video", str(path), "--out", str(out)]) == 0, capsys.readouterr().err
    assert capsys.readouterr().out.startswith("4 frames")
    assert (out / "analysis.json").is_file()


# ------------------------------------------------------------------ 1: EXIF in a folder


def test_a_frames_folder_with_unwritable_exif_keeps_every_frame(tmp_path):
    """A JPEG whose EXIF Pillow reads but cannot write back (a mistyped tag): was a
    struct.error traceback, the whole folder lost."""
    import io

    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "Cam"
    buf = io.BytesIO()
    Image.fromarray(pattern()).save(buf, "JPEG", exif=exif)
    folder = tmp_path / "frames"
    folder.mkdir()
    Image.fromarray(pattern()).save(folder / "f1.png")
    (folder / "f2.jpg").write_bytes(
        buf.getvalue().replace(b"\x01\x0f\x00\x02", b"\x01\x19\x00\x02")
    )
    Image.fromarray(pattern()).save(folder / "f3.png")
    frames = read_all(folder)
    assert [f.file for f in frames] == ["f1.png", "f2.jpg", "f3.png"]
    assert frames[1].image.shape == (96, 64, 3)  # turned as its EXIF says
