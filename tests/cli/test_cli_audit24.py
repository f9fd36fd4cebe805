"""Round 24 (docs/robustness.md): what ``exprsim embed`` prints when every input fails,
and which model ``exprsim models`` ships."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_run import run

from exprsim.models.embedder import _weights_dir


def test_embed_of_unreadable_files_prints_no_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg")
    rc, out, err = run(capsys, "embed", str(bad), "-o", str(tmp_path / "y.csv"))
    # was "0 faces from 0/1 image in 0.0 s (0.0 faces/s)" on stdout, like a success
    assert rc == 1 and out == ""
    assert "no file could be read; " in err and not (tmp_path / "y.csv").exists()


def test_models_names_the_shipped_version(capsys: pytest.CaptureFixture) -> None:
    rc, out, _ = run(capsys, "models")
    config = json.loads((_weights_dir("default") / "config.json").read_text())
    expected = f"{config['model']}@{config['version']}"
    line = next(s for s in out.splitlines() if s.strip().startswith("default"))
    assert rc == 0 and expected in line and "(weights " in line


def test_calibrate_saves_the_threshold_before_a_report_the_disk_refuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """Audit: `tag calibrate --html F --save` wrote -o, then the page, then the threshold:
    a refused page threw away the calibration without saving it."""
    import shutil

    import numpy as np

    from exprsim.apps import tag as tag_mod
    from exprsim.report import html as html_mod

    folder = tmp_path / "m"
    shutil.copytree(_weights_dir("default"), folder)
    t = np.round(np.arange(0.1, 1.51, 0.025), 6)
    f1 = 1.0 - np.abs(t - 0.6)
    cal = tag_mod.TagCalibration(t, f1, f1, f1, 8, 100, 800, 0.2)
    monkeypatch.setattr(tag_mod, "calibrate_from_ferplus", lambda *a, **k: cal)

    def full(*_a, **_k):
        raise OSError(28, "No space left on device", str(tmp_path / "cal.html"))

    monkeypatch.setattr(html_mod.Page, "save", full)
    argv = ["tag", "calibrate", "--model", str(folder), "--save", "--html"]
    rc, _, err = run(capsys, *argv, str(tmp_path / "cal.html"))
    assert rc != 0 and "No space left" in err
    assert json.loads((folder / "config.json").read_text())["tag_threshold"] == 0.6


def test_subclasses_writes_its_page_and_json_together(tmp_path: Path) -> None:
    """Audit: `subclasses --html F --json-out J` wrote the page, then the JSON: a refused
    JSON left the new page beside the old JSON. Both now come from `write_together`."""
    from exprsim.io import write_together
    from file_limit import run_with_file_limit

    a, b = tmp_path / "a.html", tmp_path / "b.json"
    a.write_bytes(b"old page")
    b.write_bytes(b"old json")

    big = b"x" * 10_000
    code = f"""
        from exprsim.io import write_together
        try:
            write_together([("a.html", b"new page"), ("b.json", b"x" * {len(big)})])
        except OSError as exc:
            print("refused:", exc.filename, exc.strerror)
    """
    proc = run_with_file_limit(code, 5_000, tmp_path)
    assert "refused: b.json File too large" in proc.stdout, proc.stderr
    assert a.read_bytes() == b"old page" and b.read_bytes() == b"old json"  # neither
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    assert write_together([(a, b"new page"), (b, big)]) == [a, b]
    assert a.read_bytes() == b"new page" and b.read_bytes() == big


def test_an_error_naming_a_file_stays_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Audit: `exprsim video` of a missing file named with a newline and a right-to-left
    override printed its error on two lines, the override raw."""
    name = tmp_path / "bad\nname \u202e.mp4"
    rc, _, err = run(capsys, "video", str(name), "--out", str(tmp_path / "out"))
    assert rc == 2 and len(err.strip().splitlines()) == 1, err
    assert "\u202e" not in err and "\\u202e" in err and "\\n" in err
