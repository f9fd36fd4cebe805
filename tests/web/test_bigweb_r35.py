"""Round 35 (the web app over a large index): the Tags page's threshold filters kept
distances (each move of the slider scanned the index) and says when it lists only the
nearest faces; the album summary says when it clustered a sample, and its kept answers
tell a restored backup written again from the index before."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("fastapi", reason="the web extra is not installed")

from face_tables import unit_faces


def _faces(n: int, seed: int, prefix: str) -> pd.DataFrame:
    return unit_faces([f"/photos/{prefix}_{i}.jpg" for i in range(n)], seed)


def _model(client) -> str:
    return client.get("/api/health").json()["model"]


def test_a_tags_threshold_filters_kept_distances(make_client, tmp_path, monkeypatch) -> None:
    from exprsim.index import FaceIndex
    from exprsim.web import app as web_app

    client = make_client()
    model = _model(client)
    with FaceIndex(tmp_path / "faces.db") as ix:
        ix.add_table(_faces(600, 0, "p"), model=model)
        ref = _faces(1, 1, "r")[[f"e{i}" for i in range(16)]].to_numpy()[0]
        ix.add_tag_reference("happy", ref, model=model)
    import exprsim.apps.tag as tag_mod

    scans = []
    real = tag_mod.nearest_reference
    monkeypatch.setattr(tag_mod, "nearest_reference", lambda *a: scans.append(1) or real(*a))
    answers = [client.get(f"/api/tags/happy/faces?threshold={t}").json() for t in (0.5, 1.9, 2.0)]
    assert len(scans) == 1  # one scan, three thresholds
    assert answers[0]["count"] < answers[1]["count"] <= 600
    assert answers[2]["count"] == 600 and answers[2]["shown"] == web_app.TAG_FACES_SHOWN
    assert len(answers[2]["faces"]) == web_app.TAG_FACES_SHOWN
    page = client.get("/tags").text
    assert "shown)" in page and "setTimeout" in page  # said on the page; a drag waits


def test_a_sampled_summary_says_so(make_client, tmp_path) -> None:
    import importlib

    from exprsim.index import FaceIndex

    sample = importlib.import_module("exprsim.apps.summarize").MAX_EXACT
    n = sample + 100
    client = make_client()
    with FaceIndex(tmp_path / "faces.db") as ix:
        ix.add_table(_faces(n, 2, "p"), model=_model(client))
    doc = client.get("/api/summary?n=3").json()
    assert sum(c["size"] for c in doc["clusters"]) == n
    assert f"an even sample of {sample:,} of the {n:,} distinct faces" in doc.get("note", "")
    assert "res.note" in client.get("/summary").text  # the page shows it


def test_copies_within_the_sample_are_no_sample(make_client, tmp_path) -> None:
    """Review: more faces than the sample, but fewer distinct ones (copies of photos):
    every distinct face is clustered, and the note said a sample was."""
    import importlib

    from exprsim.index import FaceIndex

    sample = importlib.import_module("exprsim.apps.summarize").MAX_EXACT
    faces = _faces(sample // 2, 6, "p")
    both = pd.concat([faces, faces.assign(source=faces["source"] + ".copy.jpg")])
    client = make_client()
    with FaceIndex(tmp_path / "faces.db") as ix:
        ix.add_table(pd.concat([both, both.head(200).assign(source=lambda d: d["source"] + "2")]),
                     model=_model(client))  # fmt: skip
    doc = client.get("/api/summary?n=3").json()
    assert sum(c["size"] for c in doc["clusters"]) == sample + 200
    assert "sample" not in doc.get("note", "")


def test_a_restored_backup_written_again_is_another_state(make_client, tmp_path) -> None:
    """Backup, add faces A, summarise, restore, add as many faces B: the same generation,
    count and ids, and the summary showed A's photos."""
    from exprsim.index import FaceIndex

    client = make_client()
    db = tmp_path / "faces.db"
    model = _model(client)
    with FaceIndex(db) as ix:
        ix.add_table(_faces(40, 3, "base"), model=model)
    shutil.copy(db, tmp_path / "backup.db")
    with FaceIndex(db) as ix:
        ix.add_table(_faces(30, 4, "A"), model=model)
    before = client.get("/api/summary?n=3").json()
    assert any("A_" in f for c in before["clusters"] for f in c["member_files"])
    shutil.copy(tmp_path / "backup.db", db)
    for tail in ("-wal", "-shm"):
        Path(f"{db}{tail}").unlink(missing_ok=True)
    with FaceIndex(db) as ix:
        ix.add_table(_faces(30, 5, "B"), model=model)
    after = client.get("/api/summary?n=3").json()
    files = [f for c in after["clusters"] for f in c["member_files"]]
    assert not any("A_" in f for f in files) and any("B_" in f for f in files)
