"""HTML pages are self-contained and escape their text."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from exprsim.report.html import Page, data_uri


def test_page_is_self_contained_and_escaped(tmp_path: Path) -> None:
    crop = np.full((8, 8, 3), 200, np.uint8)
    page = Page("Search <results>", subtitle="exprsim search q.jpg")
    page.heading("Query & matches").paragraph("a <script>alert(1)</script> b", note=True)
    page.image(crop, caption="a crop")
    page.gallery([crop, None, np.zeros((8, 8), np.uint8)], captions=["d=0.1", "none", "<x>"])
    page.table(pd.DataFrame({"name": ["a<b"], "d": [0.123456], "ok": [True]}))
    page.table([{"k": 1, "v": None}, {"k": 2, "w": "x"}])
    page.table([(1, 2.5)], columns=["a", "b"])
    out = page.save(tmp_path / "sub" / "page.html")
    text = out.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    assert "<script" not in text and "&lt;script&gt;" in text
    assert "Search &lt;results&gt;" in text and "a&lt;b" in text and "0.1235" in text
    # no external reference of any kind
    assert not re.search(r"https?://", text)
    srcs = re.findall(r'src="([^"]*)"', text)
    assert len(srcs) == 3 and all(
        s.startswith(("data:image/png;base64,", "data:image/jpeg;base64,")) for s in srcs
    )
    assert "<link" not in text and "@import" not in text and "url(" not in text
    png = base64.b64decode(srcs[0].split(",", 1)[1])
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_data_uri_detects_jpeg() -> None:
    assert data_uri(b"\xff\xd8\xff\xe0rest").startswith("data:image/jpeg;base64,")
    assert data_uri(b"\x89PNG....").startswith("data:image/png;base64,")


def test_table_truncates() -> None:
    page = Page("t")
    page.table([{"i": i} for i in range(10)], max_rows=3)
    html = page.render()
    assert html.count("<tr>") == 4 and "7 more rows not shown" in html


def test_big_galleries_stay_light():
    from exprsim.report.html import MAX_GALLERY, Page

    rng = np.random.default_rng(0)
    faces = [rng.integers(0, 255, (112, 112, 3), dtype=np.uint8) for _ in range(MAX_GALLERY + 20)]
    page = Page("faces").gallery(faces, size=48)
    text = page.render()
    assert text.count("<img ") == MAX_GALLERY and "20 more faces not shown" in text
    assert "data:image/jpeg" in text and "data:image/png" not in text
    # 96-pixel JPEGs of noise, the worst case: under 12 KB each (PNG: ~37 KB at 112 px)
    assert len(text) / MAX_GALLERY < 12_000


def test_gallery_refuses_more_captions_than_images_and_adds_nothing():
    page = Page("t")
    before = page.render()
    with pytest.raises(ValueError, match="3 captions for 2 images"):
        page.gallery([None, None], captions=["a", "b", "c"])
    assert page.render() == before
    page.gallery([None, None], captions=["a"])  # fewer captions: the rest are blank
    assert page.render().count("<figcaption>") == 2
