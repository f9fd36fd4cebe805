"""``exprsim video``: bad input gives one line and exit 2; a run writes the report."""

from __future__ import annotations

import pytest

from exprsim.cli import main

from .conftest import LEFT, compose


@pytest.mark.parametrize(
    "extra",
    [
        ["missing.mp4"],
        ["{clip}", "--every", "0"],
        ["{clip}", "--fps", "-1"],
        ["{clip}", "--embedding", "pvae"],
        ["{clip}", "--pvae-model", "{clip}"],
        ["{clip}", "--embedding", "pvae", "--pvae-model", "{clip}"],
    ],
)
def test_bad_input_one_line_nonzero(tmp_path, capsys, extra):
    clip = tmp_path / "junk.mp4"
    clip.write_bytes(b"junk")
    argv = ["video", *[a.format(clip=clip) for a in extra], "--out", str(tmp_path / "o")]
    try:
        rc = main(argv)
    except SystemExit as exc:  # out-of-range numbers: argparse's one usage line
        rc = exc.code
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and err[-1].startswith("exprsim video: error: argument")
        return
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("exprsim video: error:")


def test_unreadable_video_one_line(tmp_path, capsys, monkeypatch, embedder):
    import exprsim.models.embedder as emb_mod

    monkeypatch.setattr(emb_mod, "load_model", lambda name="default": embedder)
    clip = tmp_path / "junk.mp4"
    clip.write_bytes(b"junk" * 50)
    assert main(["video", str(clip), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot open video" in err[0]


def test_video_without_a_decodable_frame_one_line(tmp_path, capsys, monkeypatch, embedder):
    import exprsim.models.embedder as emb_mod

    monkeypatch.setattr(emb_mod, "load_model", lambda name="default": embedder)
    fake = tmp_path / "text.jpg"
    fake.write_bytes(b"hello, not a picture\n")
    out = tmp_path / "o"
    assert main(["-q", "video", str(fake), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no frame could be decoded" in err[0], err
    assert not out.exists()  # no empty report


def test_truncated_video_warning_not_repeated(tmp_path, capsys, caplog, monkeypatch, embedder):
    """A truncated clip: a report of what was read, and its warning logged once (the CLI
    does not print it a second time)."""
    import exprsim.models.embedder as emb_mod

    from .conftest import numbered_frames, write_clip

    monkeypatch.setattr(emb_mod, "load_model", lambda name="default": embedder)
    full = write_clip(tmp_path / "full.mp4", numbered_frames(40, 128, 96), fps=10)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    out = tmp_path / "o"
    with caplog.at_level("WARNING"):
        rc = main(["-q", "video", str(cut), "--out", str(out), "--identity", "iou"])
    assert rc == 0 and (out / "report.html").is_file()
    logged = [r.getMessage() for r in caplog.records if r.name == "exprsim.video.frames"]
    assert logged, "the truncation is reported"
    assert "warning:" not in capsys.readouterr().err


@pytest.mark.slow
def test_cli_run_writes_outputs(
    tmp_path, capsys, monkeypatch, embedder, face_patches, clip_factory
):
    import exprsim.models.embedder as emb_mod

    monkeypatch.setattr(emb_mod, "load_model", lambda name="default": embedder)
    clip = clip_factory("cli.mp4", [compose(face_patches, {"grace": LEFT}) for _ in range(10)])
    out = tmp_path / "out"
    rc = main(["-q", "video", str(clip), "--out", str(out), "--every", "2", "--identity", "iou"])
    assert rc == 0
    assert "5 frames, 5 faces (5 accepted, 0 rejected), 1 person ->" in capsys.readouterr().out
    for name in ("faces.parquet", "faces.csv", "persons.csv", "analysis.json", "report.html"):
        assert (out / name).is_file()
