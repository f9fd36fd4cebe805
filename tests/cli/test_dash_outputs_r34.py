"""Round 34: ``--json -``, ``--html -`` (and an output folder ``-``) wrote a file or folder
named ``-`` in the working folder, exit 0 (``-`` is stdin for inputs; ``-o -`` was
refused). They are refused before any work, in one line saying what to give instead."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_run import one_line, run

from exprsim.samples import sample_path

CASES = [
    (["classify", "{img}", "--json", "-"], "--json -: '-' is not an output here; name a file"),
    (["summarize", "{img}", "--html", "-"], "--html -: '-' is not an output here; name a file"),
    (["faces", "{img}", "--crops", "-"], "--crops -: '-' is not an output here; name a folder"),
    (["index", "add", "{img}", "--db", "-"], "--db -: '-' is not an output here; name a file"),
]


@pytest.mark.parametrize(("argv", "said"), CASES)
def test_a_dash_output_is_refused(
    argv: list[str],
    said: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    img = str(sample_path("grace_hopper.jpg"))
    rc, _, err = run(capsys, *[img if a == "{img}" else a for a in argv])
    assert rc == 2 and said in one_line(err)
    assert ("/dev/stdout" in err) == (argv[-2] in ("--json", "--html"))
    assert list(tmp_path.iterdir()) == []  # was: a file or folder named "-"


@pytest.mark.parametrize("command", ["train", "ensemble"])
def test_a_dash_run_folder_is_refused(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """Review: `train --out -` still made a run folder called `-`."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.json").write_text("{}")
    argv = ["train", "--config", "c.json"] if command == "train" else ["ensemble", "a", "b"]
    rc, _, err = run(capsys, *argv, "--out", "-")
    assert rc == 2 and "--out -: '-' is not an output here; name a folder" in one_line(err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.json"]
