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
    assert "5 frames, 5 faces (0 rejected detections), 1 person(s)" in capsys.readouterr().out
    for name in ("faces.parquet", "faces.csv", "persons.csv", "analysis.json", "report.html"):
        assert (out / name).is_file()
