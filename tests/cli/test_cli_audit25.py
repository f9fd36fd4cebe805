"""Round 25 (docs/robustness.md), the command line: a ``--`` after an option was refused
when a path came before the options (``exprsim faces a.jpg -q -- -n.jpg``: "unrecognized
arguments: -- -n.jpg"); an output whose folder is a file was told its folder "does not
exist"."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from exprsim.cli import main
from exprsim.samples import sample_path


def test_names_after_a_double_dash_are_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    shutil.copyfile(sample_path("grace_hopper.jpg"), "a.jpg")
    shutil.copyfile(sample_path("astronaut_eileen_collins.jpg"), "-n.jpg")
    assert main(["faces", "a.jpg", "-o", "t.csv", "-q", "--", "-n.jpg"]) == 0
    assert list(pd.read_csv("t.csv")["source"]) == ["a.jpg", "-n.jpg"]
    assert main(["faces", "-o", "u.csv", "-q", "--", "a.jpg", "-n.jpg"]) == 0
    assert list(pd.read_csv("u.csv")["source"]) == ["a.jpg", "-n.jpg"]
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:  # an unknown option before it: refused
        main(["faces", "a.jpg", "--bogus", "--", "-n.jpg"])
    assert exit_info.value.code == 2
    assert "unrecognized arguments: --bogus -- -n.jpg" in capsys.readouterr().err


def test_an_output_under_a_file_says_the_file_is_no_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "f.jpg"
    blocker.write_bytes(b"x")
    code = main(["faces", str(sample_path("grace_hopper.jpg")), "-o", str(blocker / "t.csv")])
    assert code == 2
    assert f"{blocker} is a file, not a folder" in capsys.readouterr().err
