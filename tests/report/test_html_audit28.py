"""Round 28 (docs/robustness.md, the accessibility audit): reports as WCAG 2.1 AA asks."""

from __future__ import annotations

import re

import numpy as np
import pytest

from exprsim.report.html import Page, distance_rows


def _luminance(hex_colour: str) -> float:
    """WCAG 2.1 relative luminance of ``#rgb`` / ``#rrggbb``."""
    h = hex_colour.lstrip("#")
    if len(h) == 3:
        h = "".join(c * 2 for c in h)
    channels = [int(h[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def _contrast(a: str, b: str) -> float:
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def test_the_reference_contrast_is_wcags():
    assert _contrast("#000", "#fff") == pytest.approx(21.0)
    assert _contrast("#777", "#fff") == pytest.approx(4.48, abs=0.01)  # the audit's 4.47:1


@pytest.mark.parametrize("module", ["exprsim.report.html", "exprsim.web.pages"])
def test_grey_text_has_the_contrast_of_aa(module):
    """`.meta` was #777 on white: 4.48:1, under the 4.5 AA asks of small text."""
    import importlib

    css = importlib.import_module(module)._CSS
    for selector in (".meta", "figcaption", ".gallery figure", "body"):
        m = re.search(re.escape(selector) + r"\{[^}]*color:(#[0-9a-fA-F]{3,6})", css)
        if m:
            assert _contrast(m.group(1), "#fff") >= 4.5, (selector, m.group(1))


def test_a_page_has_a_main_landmark_a_viewport_and_named_scrolling_tables():
    page = Page("Report").heading("Faces").table([{"a": 1, "b": "x"}])
    text = page.render()
    assert "<main>" in text and "</main>" in text
    assert 'name="viewport"' in text
    assert '<div class="tablewrap" tabindex="0" role="region" aria-label="table: Faces">' in text


def test_images_never_get_wider_than_the_page_and_say_what_they_show():
    png = np.zeros((4, 4, 3), np.uint8)
    text = Page("R").image(png, width=360, alt='a "map" <of> faces').render()
    img = re.search(r"<img [^>]*>", text).group(0)
    assert 'width="360"' in img and "max-width:100%" in img  # was width alone: 376 px at 320
    assert 'alt="a &quot;map&quot; &lt;of&gt; faces"' in img


def test_gallery_alt_texts_may_differ_from_the_captions():
    png = np.zeros((4, 4, 3), np.uint8)
    text = Page("R").gallery([png, png], captions=["d=0.1", "d=0.2"], alts=["a.jpg, 0.1"]).render()
    alts = re.findall(r'<img [^>]*alt="([^"]*)"', text)
    assert alts == ["a.jpg, 0.1", "d=0.2"]  # the second: its caption, as before
    assert re.findall(r"<figcaption>([^<]*)</figcaption>", text) == ["d=0.1", "d=0.2"]


def test_distance_rows_match_a_plain_loop():
    rng = np.random.default_rng(0)
    e = rng.normal(size=(4, 16))
    rows = distance_rows(e, ["#1", "#2", "#3", "#4"])
    for i, row in enumerate(rows):
        assert row[""] == f"#{i + 1}"
        for j in range(4):
            assert row[f"#{j + 1}"] == pytest.approx(
                round(float(np.sqrt(((e[i] - e[j]) ** 2).sum())), 2), abs=0.0051
            )
    with pytest.raises(ValueError, match="distinct names"):
        distance_rows(e, ["a", "a", "b", "c"])


def test_the_summary_gives_the_heat_maps_numbers_and_the_members_files(tmp_path):
    """The representatives' distances were colours only; member thumbnails said "d=0.02"."""
    from exprsim.apps.summarize import summarize, summary_page

    rng = np.random.default_rng(1)
    e = rng.normal(size=(12, 16)).astype(np.float32)
    e /= np.linalg.norm(e, axis=1, keepdims=True)

    class Item:
        def __init__(self, i: int) -> None:
            self.embedding = e[i]
            self.source = str(tmp_path / f"photo{i}.jpg")
            self.face_index = 0
            self.aligned = type("A", (), {"crop": np.full((16, 16, 3), 9 * i, np.uint8)})()

    summary = summarize([Item(i) for i in range(12)], n_clusters=3)
    text = summary_page(summary).render()
    assert "the numbers are in the table below" in text
    assert 'aria-label="table: Distances between the representatives"' in text
    alts = re.findall(r'<img [^>]*alt="([^"]*)"', text)
    assert any(re.fullmatch(r"photo\d+\.jpg face 0, distance \d\.\d\d", a) for a in alts)
    assert any(a.startswith("2-D map of 12 faces") for a in alts)
