"""Round 26 (docs/robustness.md): the same photo uploaded twice at once."""

from __future__ import annotations

import asyncio
import io
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the web extra is not installed")

from exprsim.web import uploads

PNG = b"\x89PNG\r\n\x1a\n" + bytes(200)


class _Upload:
    def __init__(self, data: bytes, filename: str) -> None:
        self._buf = io.BytesIO(data)
        self.filename = filename

    async def read(self, n: int) -> bytes:
        await asyncio.sleep(0)  # the other request runs between chunks
        return self._buf.read(n)


def test_one_photo_uploaded_twice_at_once_is_kept_once(tmp_path: Path, monkeypatch) -> None:
    real = uploads.sync_file

    def slow_sync(path: Path) -> None:  # an fsync takes a while: the window of the race
        time.sleep(0.05)
        real(path)

    monkeypatch.setattr(uploads, "sync_file", slow_sync)

    async def both():
        return await asyncio.gather(
            *(
                uploads.store_upload(_Upload(PNG, name), tmp_path, 1 << 20, ("image",), True)
                for name in ("a.png", "b.png")
            )
        )

    first, second = asyncio.run(both())
    kept = [p.name for p in tmp_path.iterdir()]
    assert len(kept) == 1, kept  # was two files: the photo indexed twice
    assert sorted([first.duplicate, second.duplicate]) == [False, True]
    assert first.path == second.path


def test_a_decoded_photo_keeps_its_decode_slot_until_its_faces_are_found(
    make_client, photo, monkeypatch
) -> None:
    import exprsim.web.app as web_app

    real = web_app._State.faces_of
    free: list[int] = []

    def faces_of(self, image):
        free.append(self.decode_slots._value)  # slots free while the faces are found
        return real(self, image)

    monkeypatch.setattr(web_app._State, "faces_of", faces_of)
    client = make_client()
    r = client.post("/api/faces", files={"file": photo()})
    assert r.status_code == 200, r.text
    # was 2: the slot was given back at once, and decoded photos (100 MB and more each)
    # piled up waiting for the model (3.7 GB for 30 uploads at once)
    assert free == [1]


def test_a_query_parameter_the_route_does_not_take_is_refused(make_client, photo) -> None:
    client = make_client()
    r = client.post("/api/search?top_k=1", files={"file": photo()})
    assert r.status_code == 422 and "unknown query parameter `top_k`" in r.text  # was 200
    r = client.post("/api/tags?face=2", data={"name": "x"}, files={"file": photo()})
    assert r.status_code == 422 and "a form field here" in r.text  # was face 0, tagged
    assert client.get("/api/health?x=1").status_code == 422
    assert client.get("/api/health").status_code == 200
    r = client.post("/api/search?k=1&face=0", files={"file": photo()})
    assert r.status_code == 200, r.text  # what it takes still goes


def test_messages_say_what_happened(make_client, photo) -> None:
    client = make_client()
    assert client.post("/api/index", files={"file": photo()}).status_code == 200
    # the same photo searched: its own faces left out, and said so (was {"hits": []} alone)
    r = client.post("/api/search", files={"file": photo()}).json()
    assert r["hits"] == [] and sum(r["excluded"].values()) >= 1
    again = client.post("/api/index", files={"file": photo()}).json()
    assert again["skipped"] == 1  # the page now says "already in the index" for it
    assert "already in the index" in client.get("/").text
    # one face indexed, three clusters asked for: the answer says why it has one
    r = client.get("/api/summary?n=3").json()
    assert len(r["clusters"]) == 1 and "not 3" in r["note"]
    # an unknown tag's 404 names it cut short (was repeated whole)
    r = client.get("/api/tags/" + "x" * 5000 + "/faces")
    assert r.status_code == 404 and len(r.text) < 300


def test_a_form_field_the_route_does_not_take_is_refused(make_client, photo) -> None:
    client = make_client()
    r = client.post("/api/search", data={"face": "2"}, files={"file": photo()})
    assert r.status_code == 422 and "(a query parameter here)" in r.text  # was face 0
    r = client.post("/api/tags", data={"name": "x", "colour": "red"}, files={"file": photo()})
    assert r.status_code == 422 and "unknown form field `colour`" in r.text
    ok = client.post("/api/tags", data={"name": "x", "face": "0"}, files={"file": photo()})
    assert ok.status_code == 200, ok.text


def test_a_page_answers_with_a_page_when_the_index_is_gone(make_client, tmp_path) -> None:
    client = make_client()
    assert client.get("/").status_code == 200
    (tmp_path / "faces.db").rename(tmp_path / "moved.db")
    r = client.get("/")
    assert r.status_code == 503 and r.headers["content-type"].startswith("text/html")
    assert "index database is gone" in r.text  # was a raw JSON body
    api = client.get("/api/health")
    assert api.status_code == 503 and "error" in api.json()  # the API keeps its JSON
