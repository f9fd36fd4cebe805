"""Screenshots of the web app for the README (docs/screenshots/), in headless Chromium.

    .venv/bin/python scripts/web_screenshots.py

Builds a face index of the bundled sample photos in a temporary folder with the shipped
model, serves it on a free loopback port, and drives the pages as a user would.
"""

from __future__ import annotations

import socket
import tempfile
import threading
import time
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "docs" / "screenshots"
CHROMIUM = "/usr/bin/chromium"


def main() -> None:
    import uvicorn
    from playwright.sync_api import sync_playwright

    from exprsim import load_model
    from exprsim.index.store import FaceIndex
    from exprsim.samples import sample_dir, sample_images, sample_path
    from exprsim.web import ServeConfig, create_app

    OUT.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="exprsim-shots-"))
    embedder = load_model()
    db = tmp / "faces.db"
    with FaceIndex(db, embedder=embedder) as index:
        index.add(sample_images())
        index.rebuild_ann()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(ServeConfig(db=str(db)), embedder=embedder)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}"
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_page(viewport={"width": 1100, "height": 850})
        page.goto(url + "/")
        page.set_input_files("input[type=file]", str(sample_path("pexels_langer_frame432.jpg")))
        page.wait_for_selector(".result .hits .card", timeout=60_000)
        page.screenshot(path=str(OUT / "photos.png"), full_page=True)
        page.goto(url + "/summary")
        page.fill("#n", "4")
        page.click("#go")
        page.wait_for_selector(".reps .card", timeout=60_000)
        page.wait_for_timeout(1500)
        page.screenshot(path=str(OUT / "summary.png"), full_page=True)
        page.goto(url + "/tags")
        page.fill("input[name=name]", "smile")
        page.set_input_files("input[name=file]", str(sample_path("pexels_langer_frame432.jpg")))
        page.click("#add button")
        page.wait_for_selector("[data-tag=smile]", timeout=60_000)
        page.wait_for_timeout(1000)
        page.screenshot(path=str(OUT / "tags.png"), full_page=True)
        page.goto(url + "/video")
        page.set_input_files("input[type=file]", str(sample_dir() / "langer_clip.mp4"))
        page.wait_for_selector("iframe", timeout=300_000)
        page.wait_for_timeout(2000)
        page.screenshot(path=str(OUT / "video.png"))
        browser.close()
    server.should_exit = True
    print(f"screenshots in {OUT}")


if __name__ == "__main__":
    main()
