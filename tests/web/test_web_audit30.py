"""Round 30: the photo page's first search leaves the face to the server, and the answer
says which face it took (docs/robustness.md, "thirtieth round")."""

from __future__ import annotations


def test_search_says_which_face_it_took(make_client, photo) -> None:
    client = make_client()
    r = client.post("/api/search", files={"file": photo()})
    assert r.status_code == 200 and r.json()["face"] == 0, r.text
    r = client.post("/api/search?face=0", files={"file": photo()})
    assert r.status_code == 200 and r.json()["face"] == 0, r.text
    r = client.post("/api/search?face=5", files={"file": photo()})
    assert r.status_code == 422 and "no face number 5" in r.text
