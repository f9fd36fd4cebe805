"""Round 26 (docs/robustness.md): the video timeline."""

from __future__ import annotations

from fractions import Fraction

import cv2
import numpy as np
import pytest
from PIL import Image

from exprsim.video.frames import FrameReader
from exprsim.video.pipeline import VideoConfig, analyze_video

from .conftest import FACE, LEFT, compose, write_clip


def test_time_on_screen_of_joined_recordings_is_not_cut_to_the_first_ones_duration(
    face_patches, embedder, tmp_path
):
    # one 2-s MPEG-TS recording three times end to end: every part starts at time 0 and
    # declares 2 s; the reader times the second and third parts on (2-4 s, 4-6 s)
    part = write_clip(
        tmp_path / "part.ts", [compose(face_patches, {"grace": LEFT})] * 20, fps=10, fmt="mpegts"
    )
    joined = tmp_path / "joined.ts"
    joined.write_bytes(part.read_bytes() * 3)
    a = analyze_video(joined, embedder, VideoConfig(fps=5, identity="iou"), classifier=None)
    (st,) = a.person_stats
    assert st.frames_present == a.n_sampled == 30
    assert st.last_seen == pytest.approx(5.8, abs=1e-3)
    assert st.time_on_screen == pytest.approx(6.0, abs=1e-3)  # was 2.0, the declared duration


@pytest.mark.parametrize("sar", [Fraction(4, 3), Fraction(3, 4)])
def test_pixels_that_are_not_square_are_stretched_as_players_show_them(
    face_patches, embedder, tmp_path, sar
):
    # the same 480x256 picture stored squeezed: 360x256 with pixels 4:3 wide, or 480x192
    # with pixels 3:4 wide (tall), each shown at 480x256
    shown = compose(face_patches, {"grace": LEFT})
    h, w = shown.shape[:2]
    stored_size = (round(w / sar), h) if sar > 1 else (w, round(h * sar))
    stored = cv2.resize(shown, stored_size, interpolation=cv2.INTER_AREA)
    clip = write_clip(tmp_path / "sar.mp4", [stored] * 5, fps=5, sar=sar)
    reader = FrameReader(clip, fps=5)
    (first, *_) = list(reader)
    assert (reader.info.width, reader.info.height) == (w, h) == first.image.shape[1::-1]
    assert np.abs(first.image.astype(int) - shown).mean() < 6  # was another shape
    a = analyze_video(clip, embedder, VideoConfig(fps=5, identity="iou"), classifier=None)
    x = LEFT[0]
    box = a.faces[0].box
    # the face patch is square: its box is about square where it was 3:4 (or 4:3)
    assert 0.85 < (box[2] - box[0]) / (box[3] - box[1]) < 1.15
    assert x <= box[0] and box[2] <= x + FACE + 2


@pytest.mark.parametrize("suffix", ["gif", "webp"])
def test_the_held_last_frame_of_an_animation_counts_its_own_duration(
    face_patches, embedder, tmp_path, suffix
):
    # 5 frames of 0.2 s, then the last held 3 s: 4 s of Grace on screen
    frames = [
        Image.fromarray(compose(face_patches, {"grace": (30 + 20 * i, 40)})) for i in range(6)
    ]
    path = tmp_path / f"held.{suffix}"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=[200] * 5 + [3000])
    a = analyze_video(path, embedder, VideoConfig(fps=5, identity="iou"), classifier=None)
    (st,) = a.person_stats
    assert st.frames_present == 6
    assert st.time_on_screen == pytest.approx(4.0, abs=1e-3)  # the WebP's was 1.2


def test_boxes_of_a_video_whose_frame_size_changes_are_in_the_first_size(
    face_patches, embedder, tmp_path
):
    # a 480x256 recording, then the same picture at 960x512, joined end to end
    shown = compose(face_patches, {"grace": LEFT})
    big = cv2.resize(shown, (960, 512), interpolation=cv2.INTER_LINEAR)
    a = write_clip(tmp_path / "a.ts", [shown] * 10, fps=10, fmt="mpegts")
    b = write_clip(tmp_path / "b.ts", [big] * 10, fps=10, fmt="mpegts")
    joined = tmp_path / "sizes.ts"
    joined.write_bytes(a.read_bytes() + b.read_bytes())
    out = analyze_video(joined, embedder, VideoConfig(fps=5, identity="iou"), classifier=None)
    assert (out.info.width, out.info.height) == (480, 256)
    boxes = np.array([f.box for f in out.faces])
    assert len(boxes) == out.n_sampled == 10
    # the second half's boxes were twice as far out (up to x 2 x 210): now where the first's are
    np.testing.assert_allclose(boxes[5:], boxes[:5], atol=6)
    assert any("frame size changes from 480x256 to 960x512" in w for w in out.warnings)


def test_a_frame_file_name_that_is_not_utf8_is_written_escaped(face_patches, embedder, tmp_path):
    import os

    import pandas as pd

    frames = tmp_path / "frames"
    frames.mkdir()
    picture = Image.fromarray(compose(face_patches, {"grace": LEFT}))
    picture.save(frames / "001.png")
    picture.save(os.fsdecode(bytes(frames) + b"/002caf\xe9.png"))
    a = analyze_video(frames, embedder, VideoConfig(identity="iou"), classifier=None)
    a.save(tmp_path / "out")  # was a UnicodeEncodeError after the whole analysis, no table
    table = pd.read_csv(tmp_path / "out" / "faces.csv")
    assert sorted(table["frame_file"]) == ["001.png", "002caf\\xe9.png"]
    # written whole, as the quality check saw them (sharpness had 3 decimals, boxes 1)
    sharpness = [f.quality.sharpness for f in a.faces]
    assert table["sharpness"].tolist() == pytest.approx(sharpness, rel=1e-12)
    assert table["x1"].tolist() == pytest.approx([float(f.box[0]) for f in a.faces], rel=1e-12)
    whole = pd.read_parquet(tmp_path / "out" / "faces.parquet")
    assert whole["sharpness"].tolist() == sharpness


def test_an_empty_faces_parquet_reads_beside_a_full_one(
    face_patches, embedder, clip_factory, tmp_path
):
    import pandas as pd

    from .conftest import InterruptingDetector, numbered_frames

    cfg = VideoConfig(fps=5, identity="iou")
    empty = analyze_video(
        clip_factory("blank26.mp4", numbered_frames(4), fps=5),
        embedder,
        cfg,
        detector=InterruptingDetector(0),
        classifier=None,
        keep_on_interrupt=True,
    )
    clip = clip_factory("grace26.mp4", [compose(face_patches, {"grace": LEFT})] * 4, fps=5)
    full = analyze_video(clip, embedder, cfg, classifier=None)
    empty.save(tmp_path / "a", html=False)
    full.save(tmp_path / "b", html=False)
    shards = tmp_path / "shards"
    shards.mkdir()
    for name in ("a", "b"):
        (tmp_path / name / "faces.parquet").rename(shards / f"{name}.parquet")
    # was "Unsupported cast from string to null": every column of the empty one typed null
    both = pd.read_parquet(shards)
    assert len(both) == len(full.faces) > 0


def test_a_missing_pvae_folder_is_named_as_missing(tmp_path):
    from exprsim.errors import ModelError
    from exprsim.video.pipeline import load_pvae_encoder

    with pytest.raises(ModelError, match="no such folder"):  # was "is not a perceptual-VAE run"
        load_pvae_encoder(str(tmp_path / "runs" / "pvae-m2"))
    with pytest.raises(ModelError, match="is not a perceptual-VAE run"):
        load_pvae_encoder(str(tmp_path))
