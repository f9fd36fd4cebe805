"""``/api/health`` says what searches would answer: degraded while the index holds another
model's embeddings (searches answer 503 then), with the way forward."""

from __future__ import annotations

import sqlite3

import pytest


@pytest.mark.slow
def test_health_says_degraded_while_the_index_is_of_another_model(make_client, photo, tmp_path):
    c = make_client()
    assert c.post("/api/index", files={"file": photo()}).status_code == 200
    health = c.get("/api/health").json()
    assert health["status"] == "ok" and "problem" not in health
    con = sqlite3.connect(tmp_path / "faces.db")
    con.execute("UPDATE meta SET value = 'older@1' WHERE key = 'model'")
    con.commit()
    con.close()
    r = c.get("/api/health")
    assert r.status_code == 200
    health = r.json()
    assert health["status"] == "degraded" and health["index_model"] == "older@1"
    assert "exprsim index reembed" in health["problem"] and str(tmp_path) not in health["problem"]
    r = c.post("/api/search?k=1", files={"file": photo()})
    assert r.status_code == 503 and "exprsim index reembed" in r.json()["error"]
