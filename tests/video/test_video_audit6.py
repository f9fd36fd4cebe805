"""``exprsim video``, sixth audit: folders of frames in natural order with each frame's file
named in the face table; album art is not a video; ``--tags`` never turns a file into a
database; options that another one makes useless are refused."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from exprsim.cli import main
from exprsim.errors import ExprsimError

from .conftest import LEFT, compose, numbered_frames

#: the columns of the face table before ``frame_file`` was added (kept, in this order)
OLD_FACE_COLUMNS = [
    "time", "frame", "slot", "face", "person", "track", "x1", "y1", "x2", "y2", "score",
    "sharpness", "yaw", "pitch", "roll", "quality_ok", "reasons", "emotion_1", "p_1",
    "emotion_2", "p_2", "emotion_3", "p_3", "tags", *(f"e{d}" for d in range(16)),
]  # fmt: skip


@pytest.fixture
def fake_model(monkeypatch, embedder):
    """``load_model`` gives the test embedder (no trained weights needed)."""
    import exprsim.models.embedder as emb_mod

    monkeypatch.setattr(emb_mod, "load_model", lambda name="default": embedder)
    return embedder


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("exprsim video: error:"), err
    return err[0]


# ----------------------------------------------------------------------------- 8: folders


def test_natural_key_orders_numbers_by_value() -> None:
    from exprsim.video.frames import natural_key

    names = ["frame10.png", "frame2.png", "frame1.png", "frame01.png", "a9b10.jpg",
             "a9b9.jpg", "frame" + "9" * 5000 + ".png", "img_100.jpg"]  # fmt: skip
    assert sorted(names, key=natural_key) == [
        "a9b9.jpg", "a9b10.jpg", "frame01.png", "frame1.png", "frame2.png",
        "frame10.png", "frame" + "9" * 5000 + ".png", "img_100.jpg",
    ]  # fmt: skip


def test_folder_frames_read_in_natural_order_with_their_names(tmp_path: Path) -> None:
    """frame10.png is the 10th frame (0.36 s at 25 fps), not the 2nd (was: name order)."""
    from exprsim.video.frames import FrameReader

    images = numbered_frames(12)
    for i, im in enumerate(images, start=1):
        Image.fromarray(im).save(tmp_path / f"frame{i}.png")
    frames = list(FrameReader(tmp_path))
    assert [f.file for f in frames] == [f"frame{i}.png" for i in range(1, 13)]
    assert [f.index for f in frames] == list(range(12))
    assert frames[9].time == pytest.approx(9 / 25)
    # the pixels follow the names (frame i has the brightness of numbered frame i - 1)
    assert [int(f.image.mean()) for f in frames] == [int(im.mean()) for im in images]


def test_face_table_names_the_frame_file(tmp_path: Path, capsys, fake_model, face_patches):
    """faces.csv / faces.parquet: the face in frame10.png is at 0.08 s (3rd of frame1,
    frame2, frame10) and its row names the file; the old columns keep their order."""
    import pandas as pd

    from exprsim.video.pipeline import FACE_TABLE_COLUMNS

    folder = tmp_path / "seq"
    folder.mkdir()
    for i in (1, 2, 10):
        placed = {"grace": LEFT} if i == 10 else {}
        Image.fromarray(compose(face_patches, placed)).save(folder / f"frame{i}.png")
    out = tmp_path / "out"
    assert main(["-q", "video", str(folder), "--out", str(out), "--identity", "iou"]) == 0
    assert list(FACE_TABLE_COLUMNS) == [*OLD_FACE_COLUMNS, "frame_file"]
    for table in (pd.read_csv(out / "faces.csv"), pd.read_parquet(out / "faces.parquet")):
        assert list(table.columns) == list(FACE_TABLE_COLUMNS)
        assert table["frame_file"].tolist() == ["frame10.png"]
        assert table["time"].tolist() == [pytest.approx(0.08)] and table["frame"].tolist() == [2]


def test_video_file_rows_have_an_empty_frame_file(clip_factory, embedder, face_patches):
    from exprsim.video.pipeline import VideoConfig, analyze_video

    clip = clip_factory("audit6.mp4", [compose(face_patches, {"grace": LEFT})] * 4)
    a = analyze_video(clip, embedder, VideoConfig(every=2, identity="iou"), classifier=None)
    table = a.to_frame()
    assert len(table) == 2 and table["frame_file"].tolist() == ["", ""]


# ----------------------------------------------------------------------------- 9: album art


def _song_with_cover(path: Path) -> Path:
    """An MP3 whose only video stream is its cover picture (``attached_pic``)."""
    av = pytest.importorskip("av")
    try:
        av.codec.Codec("libmp3lame", "w")
    except Exception:  # pragma: no cover - an FFmpeg build without the MP3 encoder
        pytest.skip("this FFmpeg cannot encode MP3")
    out = av.open(str(path), "w")
    audio = out.add_stream("libmp3lame", rate=44100)
    cover = out.add_stream("mjpeg")
    cover.width, cover.height, cover.pix_fmt = 64, 80, "yuvj420p"
    cover.disposition = av.stream.Disposition.attached_pic
    for packet in cover.encode(av.VideoFrame.from_ndarray(np.full((80, 64, 3), 200, np.uint8))):
        out.mux(packet)
    for packet in cover.encode():
        out.mux(packet)
    frame = av.AudioFrame.from_ndarray(
        np.zeros((1, 1152), np.float32), format="fltp", layout="mono"
    )
    frame.sample_rate = 44100
    for i in range(100):  # 2.6 s of silence
        frame.pts = i * 1152
        for packet in audio.encode(frame):
            out.mux(packet)
    for packet in audio.encode():
        out.mux(packet)
    out.close()
    return path


def test_album_art_is_not_a_video(tmp_path: Path, capsys, fake_model) -> None:
    """An MP3 with cover art: "no video stream" (was: the cover analysed as a 1-frame video
    at 90000 fps, with a "truncated file?" warning, exit 0)."""
    from exprsim.video.frames import FrameReader, VideoError

    song = _song_with_cover(tmp_path / "song.mp3")
    with pytest.raises(VideoError, match="no video stream"):
        FrameReader(song)
    out = tmp_path / "o"
    assert main(["-q", "video", str(song), "--out", str(out)]) == 2
    assert "song.mp3: no video stream" in _one_line_error(capsys)
    assert not out.exists()


def test_video_stream_skips_attached_pictures() -> None:
    """The first video stream that is not an attached picture is read (a cover stored
    before the video, as some muxers order them)."""
    from exprsim.video.frames import video_stream

    def stream(disposition: int) -> SimpleNamespace:
        return SimpleNamespace(disposition=disposition)

    cover, video, default = stream(0x0400 | 0x0001), stream(0x0001), stream(0)
    assert video_stream(SimpleNamespace(streams=SimpleNamespace(video=[cover, video]))) is video
    assert video_stream(SimpleNamespace(streams=SimpleNamespace(video=[default]))) is default
    assert video_stream(SimpleNamespace(streams=SimpleNamespace(video=[cover]))) is None
    assert video_stream(SimpleNamespace(streams=SimpleNamespace(video=[]))) is None


# ----------------------------------------------------------------------------- 10: --tags


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("empty", "an empty file, not an exprsim index"),
        ("missing", "no such database"),
        ("folder", "is a directory, expected a database file"),
    ],
)
def test_tag_references_refuse_empty_missing_or_folder(tmp_path: Path, kind, message) -> None:
    from exprsim.video.pipeline import load_tag_references

    db = tmp_path / "typo.db"
    if kind == "empty":
        db.touch()
    elif kind == "folder":
        db.mkdir()
    with pytest.raises(ExprsimError, match=message):
        load_tag_references(db)
    if kind == "empty":
        assert db.read_bytes() == b""  # was: exprsim's tables created in it
    assert sorted(p.name for p in tmp_path.iterdir()) == ([] if kind == "missing" else ["typo.db"])


def test_cli_tags_leaves_an_empty_file_untouched(
    tmp_path: Path, capsys, fake_model, clip_factory, face_patches
) -> None:
    clip = clip_factory("tags6.mp4", [compose(face_patches, {"grace": LEFT})] * 2)
    typo = tmp_path / "typo.db"
    typo.touch()
    rc = main(["-q", "video", str(clip), "--out", str(tmp_path / "o"), "--tags", str(typo)])
    assert rc == 2
    assert "typo.db: an empty file, not an exprsim index" in _one_line_error(capsys)
    assert typo.read_bytes() == b"" and sorted(tmp_path.iterdir()) == [typo]


def test_tag_references_read_from_a_real_database(tmp_path: Path, embedder) -> None:
    """A database holding references still gives them (opened read only)."""
    from exprsim.index.store import FaceIndex
    from exprsim.video.pipeline import load_tag_references

    db = tmp_path / "refs.db"
    vec = np.zeros(16, np.float32)
    vec[3] = 1.0
    with FaceIndex(db, embedder=embedder) as index:
        index.add_tag_reference("smile", vec, embedder.config.name_version)
    emb, names = load_tag_references(db, embedder)
    assert names == ["smile"] and emb.shape == (1, 16)
    np.testing.assert_allclose(emb[0], vec)


# ----------------------------------------------------------------------------- 13: options


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--tag-threshold", "0.3"], "--tag-threshold is only used with --tags"),
        (["--neutral", "none"], "--neutral is only used with --embedding pvae"),
        (["--fps", "2", "--every", "3"], "--fps and --every exclude each other"),
        (["--every", "3", "--fps", "2"], "--fps and --every exclude each other"),
        (["{folder}", "--fps", "2"], "--fps applies to video files"),
    ],
)
def test_ignored_option_combinations_refused(
    tmp_path: Path, capsys, fake_model, extra, message
) -> None:
    """Each was silently ignored (exit 0); now one line and exit 2, before any work."""
    clip = tmp_path / "v.mp4"
    clip.write_bytes(b"not read: the options are refused first")
    folder = tmp_path / "frames"
    folder.mkdir()
    Image.fromarray(numbered_frames(1)[0]).save(folder / "f1.png")
    source = str(folder) if "{folder}" in extra else str(clip)
    extra = [a for a in extra if a != "{folder}"]
    out = tmp_path / "o"
    assert main(["-q", "video", source, "--out", str(out), *extra]) == 2
    assert message in _one_line_error(capsys)
    assert not out.exists()


@pytest.mark.parametrize(
    "extra",
    [
        ["--every", "2", "--fps", "5"],  # --fps at its default
        ["--neutral", "auto"],  # the default, without pvae
        ["--every", "1"],  # a folder sampled with --every
    ],
)
def test_options_at_their_defaults_pass(tmp_path: Path, capsys, fake_model, extra) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, im in enumerate(numbered_frames(2), start=1):
        Image.fromarray(im).save(folder / f"f{i}.png")
    out = tmp_path / "o"
    rc = main(["-q", "video", str(folder), "--out", str(out), "--identity", "iou", *extra])
    assert rc == 0, capsys.readouterr().err
    assert (out / "faces.csv").is_file()


def test_video_stream_reads_a_disposition_given_as_a_flag() -> None:
    """Sixteenth audit round: PyAV 14.1 to 17.0 give ``stream.disposition`` as an
    ``enum.Flag``, not an int; ``int()`` of it failed every video at the declared floor."""
    import enum

    from exprsim.video.frames import video_stream

    class Disposition(enum.Flag):  # as PyAV 14.1-17.0 have it
        default = 0x0001
        attached_pic = 0x0400

    cover = SimpleNamespace(disposition=Disposition.attached_pic | Disposition.default)
    video = SimpleNamespace(disposition=Disposition.default)
    assert video_stream(SimpleNamespace(streams=SimpleNamespace(video=[cover, video]))) is video
