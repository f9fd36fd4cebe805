"""Audit 11 (/tmp/audit11/c.md): ``create_app`` without the web extra raised a bare
``ModuleNotFoundError``; every other optional backend says which extra to install."""

from __future__ import annotations

import sys

import pytest

from exprsim.errors import BackendUnavailableError


def test_create_app_without_fastapi_names_the_extra(monkeypatch, tmp_path) -> None:
    from exprsim.web import ServeConfig, create_app

    monkeypatch.setitem(sys.modules, "fastapi", None)  # import fastapi -> ImportError
    with pytest.raises(BackendUnavailableError, match=r"pip install 'exprsim\[web\]'"):
        create_app(ServeConfig(db=str(tmp_path / "i.db")))
    assert not (tmp_path / "i.db").exists()
