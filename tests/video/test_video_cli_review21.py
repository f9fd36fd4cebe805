"""``exprsim video --identity iou`` after the review of round 21: ``--eps`` and
``--min-samples`` given at all are refused (at their default value they were taken), and
left out they still reach DBSCAN's defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from exprsim.cli import main
from exprsim.errors import ExprsimError


@pytest.fixture
def reached(monkeypatch: pytest.MonkeyPatch) -> list[tuple[float, int]]:
    """The analysis (the work) ends the command at once; the (eps, min_samples) of the
    video config it gets are recorded."""
    import exprsim.models.embedder as embedder
    import exprsim.video.pipeline as pipeline

    seen: list[tuple[float, int]] = []

    def analyze(path: object, model: object, config: Any, **kw: object) -> None:
        seen.append((config.eps, config.min_samples))
        raise ExprsimError("WORK BEGAN")

    monkeypatch.setattr(embedder, "load_model", lambda *a, **k: None)
    monkeypatch.setattr(pipeline, "analyze_video", analyze)
    return seen


def _video(tmp_path: Path, capsys: pytest.CaptureFixture, *flags: str) -> tuple[int, str]:
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"")
    rc = main(["-q", "video", str(clip), "--out", str(tmp_path / "out"), *flags])
    return rc, capsys.readouterr().err.strip()


@pytest.mark.parametrize("flags", [["--eps", "0.5"], ["--min-samples", "3"]])
def test_dbscan_options_at_their_default_are_refused_with_iou(
    tmp_path: Path, capsys: pytest.CaptureFixture, flags: list[str], reached: list
) -> None:
    from exprsim.video.tracks import DEFAULT_EPS, DEFAULT_MIN_SAMPLES

    assert (DEFAULT_EPS, DEFAULT_MIN_SAMPLES) == (0.5, 3)  # the values given above
    rc, err = _video(tmp_path, capsys, "--identity", "iou", *flags)
    assert rc == 2 and f"{flags[0]} is only used with --identity dlib" in err  # was: taken
    assert not reached


def test_guard_defaults_reach_the_video_config(
    tmp_path: Path, capsys: pytest.CaptureFixture, reached: list
) -> None:
    from exprsim.video.tracks import DEFAULT_EPS, DEFAULT_MIN_SAMPLES

    for identity in ("iou", "dlib"):
        rc, err = _video(tmp_path, capsys, "--identity", identity)
        assert rc == 2 and "WORK BEGAN" in err, err
    rc, err = _video(tmp_path, capsys, "--identity", "dlib", "--eps", "0.3")
    assert rc == 2 and "WORK BEGAN" in err, err
    assert reached == [(DEFAULT_EPS, DEFAULT_MIN_SAMPLES)] * 2 + [(0.3, DEFAULT_MIN_SAMPLES)]
