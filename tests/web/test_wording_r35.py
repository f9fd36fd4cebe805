"""Round 35: the web app counts in words ("1 face", "3 faces"), as the CLI, not
"face(s)" / "cluster(s)"."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi", reason="the web extra is not installed")


def test_summary_note_counts_in_words(make_client, photo) -> None:
    client = make_client()
    assert client.post("/api/index", files={"file": photo()}).status_code == 200
    r = client.get("/api/summary?n=3").json()
    assert r["note"] == "1 cluster, not 3: the index holds only 1 distinct face among 1"


def test_pages_count_in_words(make_client) -> None:
    client = make_client()
    for page in ("/", "/tags", "/summary", "/video"):
        r = client.get(page)
        assert r.status_code == 200 and "(s)" not in r.text, page
    for page in ("/", "/tags"):  # the pages that count faces have the function
        assert "function count(n, noun)" in client.get(page).text
