"""The argparse range types and the output-path checks of exprsim.cli.argtypes."""

from __future__ import annotations

import argparse
import os

import pytest

from exprsim.cli.argtypes import (
    float_in,
    int_at_least,
    require_writable,
    writable_dir_target,
    writable_file_target,
)

not_root = pytest.mark.skipif(
    hasattr(os, "geteuid") and os.geteuid() == 0, reason="root may write anywhere"
)


@pytest.mark.parametrize(("text", "ok"), [("1", True), ("5", True), ("0", False), ("6", False)])
def test_int_at_least_bounds(text, ok):
    parse = int_at_least(1, 5)
    if ok:
        assert parse(text) == int(text)
    else:
        with pytest.raises(argparse.ArgumentTypeError, match="must be"):
            parse(text)


def test_int_at_least_rejects_non_integers():
    for text in ("1.5", "x", ""):
        with pytest.raises(argparse.ArgumentTypeError, match="expected an integer"):
            int_at_least(0)(text)


def test_float_in_open_and_closed_ends():
    assert float_in(0.0, 1.0)("0") == 0.0
    assert float_in(0.0, 1.0)("1") == 1.0
    with pytest.raises(argparse.ArgumentTypeError, match=r"\(0.0, 1.0\]"):
        float_in(0.0, 1.0, lo_open=True)("0")
    for text in ("nan", "inf", "-0.1", "1.5"):
        with pytest.raises(argparse.ArgumentTypeError):
            float_in(0.0, 1.0)(text)
    assert float_in(0.0)("1e9") == 1e9  # no upper end by default


def test_writable_file_target_accepts_new_and_existing_files(tmp_path):
    assert writable_file_target(tmp_path / "new.json") is None
    existing = tmp_path / "old.json"
    existing.write_text("keep")
    assert writable_file_target(existing) is None
    assert existing.read_text() == "keep"  # checked, not touched
    assert not (tmp_path / "new.json").exists()  # nothing created


def test_writable_file_target_refuses_folders_and_missing_parents(tmp_path):
    assert "is a folder" in str(writable_file_target(tmp_path))
    problem = writable_file_target(tmp_path / "no" / "such" / "r.json")
    assert problem is not None and "does not exist" in problem
    blocker = tmp_path / "file"
    blocker.write_text("")
    # round 25: a file where the folder should be is named as such (was "does not exist")
    assert f"({blocker} is a file, not a folder)" in str(writable_file_target(blocker / "r.json"))
    assert not (tmp_path / "no").exists()


@not_root
def test_writable_file_target_refuses_read_only_places(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    (ro / "f.json").write_text("")
    os.chmod(ro / "f.json", 0o444)
    os.chmod(ro, 0o555)
    try:
        assert "not writable" in str(writable_file_target(ro / "new.json"))
        assert "permission denied" in str(writable_file_target(ro / "f.json"))
    finally:
        os.chmod(ro, 0o755)


def test_writable_dir_target(tmp_path):
    assert writable_dir_target(tmp_path) is None
    assert writable_dir_target(tmp_path / "a" / "b") is None  # created later, not now
    assert not (tmp_path / "a").exists()
    f = tmp_path / "f"
    f.write_text("")
    assert "not a folder" in str(writable_dir_target(f))
    assert "not a folder" in str(writable_dir_target(f / "sub"))


def test_require_writable_names_the_flag_and_checks_files_or_folders(tmp_path):
    from exprsim.errors import ExprsimError

    a_file = tmp_path / "f.txt"
    a_file.write_text("x")
    require_writable(None, "--json")  # nothing asked, nothing checked
    require_writable(str(tmp_path / "new.json"), "--json")
    require_writable(str(tmp_path / "new-folder"), "--out", folder=True)
    with pytest.raises(ExprsimError, match=r"^--json .*is a folder"):
        require_writable(str(tmp_path), "--json")
    with pytest.raises(ExprsimError, match=r"^--out .*not a folder"):
        require_writable(str(a_file), "--out", folder=True)
    assert a_file.read_text() == "x"  # nothing created or changed
