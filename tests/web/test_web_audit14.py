"""Fourteenth robustness round, web app: an upload waiting for another writer of the
index does not hold up the searches."""

from __future__ import annotations

import threading
import time

import pytest


@pytest.mark.timeout(120)
def test_searches_go_on_while_an_upload_waits_for_another_writer(make_client, photo, tmp_path):
    from exprsim.index.store import FaceIndex

    c = make_client()
    r = c.post("/api/index", files={"file": photo("grace_hopper.jpg")})
    assert r.status_code == 200, r.text
    release = threading.Event()
    holding = threading.Event()

    def other_writer() -> None:  # `exprsim index add` of a large folder, elsewhere
        with FaceIndex(tmp_path / "faces.db", create=False) as ix, ix._writer_lock():
            holding.set()
            release.wait(20)  # then lets go whatever happened (the old code's search waited)

    writer = threading.Thread(target=other_writer)
    writer.start()
    assert holding.wait(30)
    answers: list[int] = []
    upload = threading.Thread(
        target=lambda: answers.append(
            c.post("/api/index", files={"file": photo("astronaut_eileen_collins.jpg")}).status_code
        )
    )
    upload.start()
    time.sleep(1.0)  # the upload now waits for the other writer
    try:
        t0 = time.perf_counter()
        r = c.post("/api/search", files={"file": photo("grace_hopper.jpg")})
        waited = time.perf_counter() - t0
    finally:
        release.set()
        writer.join(30)
        upload.join(60)
    # was: the search waited for the model lock, which the upload held while it waited
    assert r.status_code == 200 and waited < 10, (r.status_code, waited)
    assert answers == [200]
