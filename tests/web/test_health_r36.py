"""Round 36 (a review of the round): `/api/health` said "ok" while searches answered 503
for an index of another model of the same name (other weights): it says "degraded"."""

from __future__ import annotations

from pathlib import Path

import pytest

from exprsim.index.store import FaceIndex
from exprsim.models.embedder import load_model
from face_tables import unit_faces

pytest.importorskip("fastapi")


def test_health_is_degraded_for_an_index_of_another_content(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from exprsim.web.app import ServeConfig, create_app

    embedder = load_model()
    db = tmp_path / "f.db"
    with FaceIndex(db) as ix:
        other = "sha256:" + "b" * 16
        ix.add_table(unit_faces(["/x/a.jpg"], 0), embedder.config.name_version, model_digest=other)
    client = TestClient(create_app(ServeConfig(db=str(db)), embedder=embedder))
    doc = client.get("/api/health").json()
    assert doc["status"] == "degraded" and "content sha256:bbbb" in doc["problem"]
