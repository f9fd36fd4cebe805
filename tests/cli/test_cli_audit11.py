"""Audit 11 (/tmp/audit11/c.md), CLI side: with stderr going to a file, every log line was
written twice. Each test failed before its fix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from exprsim.index import FaceIndex


def test_a_log_line_is_written_once_when_stderr_is_a_file(tmp_path: Path) -> None:
    db = tmp_path / "empty.db"
    FaceIndex(str(db)).close()
    log = tmp_path / "err.log"
    with log.open("wb") as err:
        done = subprocess.run(
            [sys.executable, "-m", "exprsim", "index", "rebuild", "--db", str(db)],
            stdout=subprocess.PIPE,
            stderr=err,
            timeout=120,
            check=False,
        )
    assert done.returncode == 0 and b"rebuilt exact index" in done.stdout
    lines = [ln for ln in log.read_text().splitlines() if "built exact index" in ln]
    assert lines == ["INFO exprsim.index.store: built exact index over 0 faces in 0.00 s"]


def test_evaluate_takes_data_dir_and_says_how_to_give_one(tmp_path: Path, capsys) -> None:
    from cli_run import run

    rc, _, err = run(capsys, "evaluate", "--data-dir", str(tmp_path))
    assert rc == 2 and f"{tmp_path}: no fer2013.csv" in err  # was: unrecognized --data-dir
    assert "--data-dir DIR or $EXPRSIM_FER_DIR" in err and "../shared" not in err
    rc, _, err = run(capsys, "evaluate", "--data-dir", str(tmp_path), "--fec-test", "t.csv")
    assert rc == 2 and "--data-dir is the FER+ folder of image models" in err


def test_an_installed_package_does_not_look_for_data_beside_site_packages(
    tmp_path: Path, monkeypatch
) -> None:
    import exprsim.data.fer as fer

    lib = tmp_path / "venv" / "lib" / "python3.11"
    (lib / "shared" / "data" / "fer2013").mkdir(parents=True)  # nothing a user put there
    module = lib / "site-packages" / "exprsim" / "data" / "fer.py"
    monkeypatch.setattr(fer, "__file__", str(module))
    monkeypatch.delenv("EXPRSIM_FER_DIR", raising=False)
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    assert fer.default_data_dir() == tmp_path / "shared" / "data" / "fer2013"  # the cwd's
    checkout = tmp_path / "checkout"
    (checkout / "src" / "exprsim" / "data").mkdir(parents=True)
    (checkout / "pyproject.toml").write_text("")
    (tmp_path / "shared" / "data" / "fer2013").mkdir(parents=True)
    monkeypatch.setattr(fer, "__file__", str(checkout / "src" / "exprsim" / "data" / "fer.py"))
    monkeypatch.chdir("/")
    assert fer.default_data_dir() == tmp_path / "shared" / "data" / "fer2013"  # beside it
