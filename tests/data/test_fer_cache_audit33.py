"""Round 33: a FER cache folder that cannot be used (a file in its path) was reported as
"a damaged parsed FER table", though nothing was damaged."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from exprsim.data import fer


def test_an_unusable_cache_folder_is_not_called_damaged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "afile").write_text("x")
    with caplog.at_level(logging.INFO, logger="exprsim.data.fer"):
        assert fer._cached_table(tmp_path / "afile" / "sub" / "fer-0123456789abcdef.npz") is None
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("cannot read the parsed FER cache" in r.getMessage() for r in caplog.records)


def test_a_damaged_table_is_still_said_to_be_damaged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bad = tmp_path / "fer-0123456789abcdef.npz"
    bad.write_bytes(b"not an npz")
    with caplog.at_level(logging.INFO, logger="exprsim.data.fer"):
        assert fer._cached_table(bad) is None
    assert any("damaged" in r.getMessage() for r in caplog.records)
