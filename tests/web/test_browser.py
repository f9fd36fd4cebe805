"""The pages in real headless Chromium (Playwright): upload, boxes, search by clicking a
face, album summary, tags with a live threshold slider, video progress and report."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(tmp_path, random_model_dir):
    uvicorn = pytest.importorskip("uvicorn")
    from exprsim.models.embedder import load_model
    from exprsim.web import ServeConfig, create_app

    app = create_app(
        ServeConfig(db=str(tmp_path / "faces.db")), embedder=load_model(str(random_model_dir))
    )
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not srv.started:
        assert time.time() < deadline and thread.is_alive()
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def page(tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium not installed (apt-get install chromium)")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        pg = browser.new_page(viewport={"width": 1100, "height": 900})
        errors: list[str] = []
        pg.on("pageerror", lambda e: errors.append(str(e)))
        yield pg
        browser.close()
        assert not errors, errors  # no JavaScript error on any page


def test_upload_search_summary_tags_video(server, page, tmp_path):
    from exprsim.samples import sample_dir, sample_path

    grace = str(sample_path("grace_hopper.jpg"))
    page.goto(server + "/")
    page.check("#keep")  # also index the photos
    page.set_input_files(
        "input[type=file]", [grace, str(sample_path("pexels_langer_frame144.jpg"))]
    )
    page.wait_for_selector(".result .box", timeout=60_000)
    page.wait_for_selector(".result .hits .card", timeout=60_000)
    # (locators, not wait_for_function: the pages' Content-Security-Policy forbids eval)
    page.locator(".result .meta").nth(3).wait_for(timeout=60_000)
    page.click(".result .box")  # clicking a face searches with it
    page.wait_for_selector(".result .hits .card", timeout=60_000)
    page.screenshot(path=str(tmp_path / "home.png"))

    page.goto(server + "/summary")
    page.wait_for_selector(".reps .card", timeout=60_000)
    assert page.locator(".reps .card").count() >= 1

    page.goto(server + "/tags")
    page.fill("input[name=name]", "calm")
    page.set_input_files("input[name=file]", grace)
    page.click("#add button")
    page.wait_for_selector("[data-tag=calm]", timeout=60_000)
    page.locator("#count", has_text="calm").wait_for()
    page.eval_on_selector("#th", "e => { e.value = 0.01; e.dispatchEvent(new Event('input')); }")
    page.locator("#count", has_text="1 face").wait_for()
    page.eval_on_selector("#th", "e => { e.value = 2; e.dispatchEvent(new Event('input')); }")
    page.locator("#count", has_text="2 face").wait_for()

    page.goto(server + "/video")
    page.set_input_files("input[type=file]", str(sample_dir() / "langer_clip.mp4"))
    page.wait_for_selector("iframe", timeout=240_000)
    assert "person" in page.inner_text("#job")
