"""The web app over a random-weight model (tests never need trained weights)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("multipart")


@pytest.fixture
def make_client(tmp_path, random_model_dir):
    from fastapi.testclient import TestClient

    from exprsim.models.embedder import load_model
    from exprsim.web import ServeConfig, create_app

    embedder = load_model(str(random_model_dir))

    def make(**kw) -> TestClient:
        cfg = ServeConfig(db=str(tmp_path / "faces.db"), **kw)
        return TestClient(create_app(cfg, embedder=embedder), raise_server_exceptions=False)

    return make


def _photo(name: str = "grace_hopper.jpg") -> tuple[str, bytes, str]:
    from exprsim.samples import sample_path

    return (name, Path(sample_path(name)).read_bytes(), "image/jpeg")


@pytest.fixture
def photo():
    """``photo(name)`` -> a multipart file tuple of a bundled sample photo."""
    return _photo
