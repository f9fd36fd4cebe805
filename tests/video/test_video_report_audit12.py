"""Audit 12, finding 1: the video report draws figures for a bounded number of persons
(the most time on screen), lists every other person in a compact table, and its montage
decodes only the thumbnails it draws. The analyses are built directly (no video)."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest

from exprsim.apps.summarize import Cluster, Summary
from exprsim.faces.types import Quality
from exprsim.video import report
from exprsim.video.frames import VideoInfo
from exprsim.video.pipeline import (
    PersonStats,
    PersonSummary,
    StageTimes,
    TaggedMoment,
    VideoAnalysis,
    VideoConfig,
    VideoFace,
)

CLASSES = ("happy", "neutral", "sad")


def _jpeg(seed: int, side: int = 16) -> bytes:
    import cv2

    im = np.random.default_rng(seed).integers(0, 255, size=(side, side, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(".jpg", im)
    assert ok
    return buf.tobytes()


def _png() -> bytes:
    import cv2

    ok, buf = cv2.imencode(".png", np.zeros((4, 4, 3), np.uint8))
    assert ok
    return buf.tobytes()


def _analysis(seconds: list[float], cluster_sizes: list[list[int]]) -> VideoAnalysis:
    """Person ``p`` has ``sum(cluster_sizes[p])`` accepted faces (one per sampled frame, in
    a run of its own), ``seconds[p]`` on screen and one summary cluster per size."""
    rng = np.random.default_rng(0)
    thumb = _jpeg(1)
    faces, persons, stats, summaries = [], [], [], []
    q = Quality(5.0, 0.0, 0.0, 0.0, True)
    box = np.array([10, 10, 60, 60], np.float32)
    for p, sizes in enumerate(cluster_sizes):
        first = len(faces)
        for _ in range(sum(sizes)):
            slot = len(faces)
            faces.append(VideoFace(slot, slot, slot / 5, 0, box, 0.9, q, thumb))
            persons.append(p)
        idx = tuple(range(first, len(faces)))
        shares = dict(zip(CLASSES, rng.dirichlet(np.ones(3)), strict=True))
        stats.append(
            PersonStats(
                p, len(idx), 0.01, seconds[p], first / 5, (len(faces) - 1) / 5, len(idx),
                {}, shares, (TaggedMoment("wave", first / 5, first / 5 + 0.4, 2),),
            )
        )  # fmt: skip
        clusters, start = [], 0
        for rank, size in enumerate(sizes):
            members = tuple(range(start, start + size))
            clusters.append(Cluster(rank, members, np.zeros(size), np.zeros(16, np.float32)))
            start += size
        labels = np.repeat(np.arange(len(sizes)), sizes)
        summaries.append(PersonSummary(p, idx, Summary("ward", labels, tuple(clusters))))
    n = len(faces)
    emb = rng.normal(size=(n, 16)).astype(np.float32)
    return VideoAnalysis(
        info=VideoInfo("film", 640, 480, 5.0, n / 5, n, "images"),
        config=VideoConfig(every=1),
        n_sampled=n,
        sample_period=0.2,
        faces=tuple(faces),
        persons=np.array(persons, np.int64),
        tracks=np.array(persons, np.int64),
        embeddings=emb,
        smoothed=emb,
        classes=CLASSES,
        emotions=rng.dirichlet(np.ones(3), size=n).astype(np.float32),
        tags=tuple(() for _ in range(n)),
        person_stats=tuple(stats),
        summaries=tuple(summaries),
        rejected={},
        identity_method="iou",
        model="exprnet_s@test",
        timings=StageTimes(),
    )


def _stub_figures(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Any]]:
    """Replace both per-person figures with a tiny PNG; returns their recorded calls."""
    import exprsim.report.plots as plots

    calls: dict[str, list[Any]] = {"timeline": [], "montage": []}
    png = _png()

    def timeline(analysis: Any, person: int) -> bytes:
        calls["timeline"].append(person)
        return png

    def montage(groups: Any, titles: Any = None, per_row: int = 10) -> bytes:
        calls["montage"].append((groups, per_row))
        return png

    monkeypatch.setattr(report, "timeline_plot", timeline)
    monkeypatch.setattr(plots, "cluster_montage", montage)
    return calls


def _other_persons(html: str) -> list[int]:
    """Person ids in the rows of the "Other persons" table (first column)."""
    at = html.index("<h3>Other persons (")
    table = html[html.index("<table>", at) : html.index("</table>", at)]
    return [int(v) for v in re.findall(r"<tr><td>(\d+)</td>", table)]


def test_many_persons_get_a_bounded_number_of_figures_and_a_row_each(monkeypatch):
    n = 150
    seconds = [float(s) for s in np.random.default_rng(3).integers(1, 20, size=n)]  # ties
    analysis = _analysis(seconds, [[2, 1]] * n)
    calls = _stub_figures(monkeypatch)
    html = report.video_page(analysis).render()
    cap = getattr(report, "MAX_PERSON_SECTIONS", 24)  # the snapshot has no cap at all
    want = sorted(range(n), key=lambda p: (-seconds[p], p))[:cap]  # most screen time
    n_timelines, n_montages = len(calls["timeline"]), len(calls["montage"])
    assert (n_timelines, n_montages) == (cap, cap)
    assert sorted(calls["timeline"]) == sorted(want)
    sections = [int(v) for v in re.findall(r"<h3>Person (\d+):", html)]
    assert sections == sorted(want)  # in the order of first appearance
    others = _other_persons(html)
    assert others == sorted(set(range(n)) - set(want))  # every other person, once
    assert f"the other {n - cap} persons are summarised" in html
    assert "persons.csv" in html and "analysis.json" in html


def test_few_persons_keep_full_sections_without_the_table(monkeypatch):
    """Guard (passes on the snapshot too): up to the cap, every person has its section."""
    analysis = _analysis([3.0, 1.0, 2.0], [[2], [1, 1], [3]])
    calls = _stub_figures(monkeypatch)
    html = report.video_page(analysis).render()
    assert calls["timeline"] == [0, 1, 2] and len(calls["montage"]) == 3
    assert "Other persons" not in html and "summarised" not in html


def test_sections_and_table_with_the_real_figures(monkeypatch):
    """The real matplotlib figures with a cap of 2: two sections with figures, the other
    three persons as table rows with their headline numbers."""
    monkeypatch.setattr(report, "MAX_PERSON_SECTIONS", 2, raising=False)
    analysis = _analysis([1.0, 4.0, 2.0, 5.0, 0.5], [[2, 1]] * 5)
    html = report.video_page(analysis).render()
    assert re.findall(r"<h3>Person (\d+):", html) == ["1", "3"]
    # a timeline (PNG) and a montage (JPEG since round 24: 2 of the 6 JPEGs) each
    assert html.count("data:image/png") == 2 and html.count("data:image/jpeg") == 6
    assert _other_persons(html) == [0, 2, 4]
    st = analysis.person_stats[4]
    top, share = max(st.emotion_shares.items(), key=lambda kv: kv[1])
    assert f"{top} ({share:.0%})" in html


def test_montage_decodes_only_the_thumbnails_it_draws(monkeypatch):
    import cv2

    decoded = []
    real = cv2.imdecode

    def counting(buf: Any, flags: int) -> Any:
        decoded.append(1)
        return real(buf, flags)

    analysis = _analysis([1.0], [[25, 3, 12]])
    calls = _stub_figures(monkeypatch)
    monkeypatch.setattr(cv2, "imdecode", counting)
    report.video_page(analysis)
    ((groups, per_row),) = calls["montage"]
    assert [len(g) for g in groups] == [min(s, per_row) for s in (25, 3, 12)]
    assert all(isinstance(im, np.ndarray) for g in groups for im in g)
    # 3 representatives (gallery) + the faces drawn in the montage, not all 40
    assert len(decoded) == 3 + sum(min(s, per_row) for s in (25, 3, 12))
