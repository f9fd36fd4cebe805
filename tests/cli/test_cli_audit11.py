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


def test_video_refuses_an_even_smoothing_window(tmp_path: Path, capsys) -> None:
    from cli_run import one_line, run

    from exprsim.samples import sample_path

    clip = str(sample_path("langer_clip.mp4"))
    rc, _, err = run(capsys, "video", clip, "--smooth", "4", "--out", str(tmp_path / "v"))
    assert rc == 2 and "--smooth must be odd" in one_line(err)  # was: smoothed over 5 faces
    assert not (tmp_path / "v").exists()


def test_the_dlib_message_names_what_needs_it(monkeypatch) -> None:
    import pytest

    import exprsim.faces.landmarks as lm
    from exprsim.errors import BackendUnavailableError
    from exprsim.faces.identity import IdentityEncoder
    from exprsim.video.pipeline import _identity_encoder as pick

    monkeypatch.setattr(lm, "dlib_probe", lambda: "missing dlib")
    with pytest.raises(BackendUnavailableError, match=r"^identity exclusion needs dlib"):
        IdentityEncoder()
    with pytest.raises(BackendUnavailableError, match=r"^grouping faces into persons"):
        pick("dlib")  # was "identity exclusion needs dlib" in a video


def test_index_add_refuses_a_faiss_backend_without_faiss_before_the_model(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    from cli_run import one_line, run

    import exprsim.cli.apps_cmd as apps_cmd

    def no_model(args):
        raise AssertionError("the model was loaded before the check")

    monkeypatch.setattr(apps_cmd, "_embedder", no_model)
    monkeypatch.setitem(sys.modules, "faiss", None)
    db = tmp_path / "i.db"
    rc, _, err = run(capsys, "index", "add", str(tmp_path), "--db", str(db), "--ann", "faiss-ivf")
    assert rc == 2 and "needs faiss, which is not installed" in one_line(err)
    assert not db.exists()
