"""The video report: one self-contained HTML page, plus the demo's video section.

:func:`video_page` builds the page from a :class:`~exprsim.video.pipeline.VideoAnalysis`:
an overview (video, sampling, rejections, stage timings), then per person a statistics
table, a timeline plot (presence, accepted/rejected faces, top emotion probabilities,
tagged moments) and the expression-summary montage (one representative face per cluster,
then the members of each cluster).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


def timeline_plot(analysis: Any, person: int) -> bytes:
    """PNG timeline of one person: presence strip (green: accepted, grey: rejected),
    emotion probabilities of the smoothed embedding over time, tagged moments shaded."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from exprsim.report.plots import fig_to_png

    idx = np.flatnonzero(analysis.persons == person)
    times = np.array([analysis.faces[i].time for i in idx])
    ok = np.array([analysis.faces[i].quality.ok for i in idx], dtype=bool)
    end = max(analysis.n_sampled * analysis.sample_period, float(times.max(initial=0.0)) + 0.1)
    has_emotions = bool(analysis.classes) and ok.any()
    fig = Figure(figsize=(8.0, 3.2 if has_emotions else 1.4))
    FigureCanvasAgg(fig)
    if has_emotions:
        ax_p, ax_e = fig.subplots(
            2, 1, sharex=True, gridspec_kw={"height_ratios": [1, 4], "hspace": 0.08}
        )
    else:
        ax_p, ax_e = fig.add_subplot(111), None
    ax_p.scatter(times[ok], np.zeros(ok.sum()), marker="|", s=200, color="#2a7", label="accepted")
    ax_p.scatter(
        times[~ok], np.zeros((~ok).sum()), marker="|", s=200, color="#aaa", label="rejected"
    )
    ax_p.set_yticks([])
    ax_p.set_xlim(0, end)
    ax_p.set_ylabel("on screen", rotation=0, ha="right", va="center", fontsize=8)
    stats = next(s for s in analysis.person_stats if s.person == person)
    for m in stats.tagged_moments:
        for ax in (ax_p, ax_e):
            if ax is not None:
                ax.axvspan(m.start - 0.05, m.end + 0.05, color="#fc6", alpha=0.35, lw=0)
        ax_p.text(m.start, 0.3, m.tag, fontsize=7, va="bottom")
    if ax_e is not None:
        acc = idx[ok]
        probs = analysis.emotions[acc]
        for c, name in enumerate(analysis.classes):
            if np.nanmax(probs[:, c]) > 0.05:
                ax_e.plot(times[ok], probs[:, c], marker=".", markersize=3, lw=1, label=name)
        ax_e.set_ylim(0, 1.02)
        ax_e.set_ylabel("probability", fontsize=8)
        ax_e.set_xlabel("time (s)")
        ax_e.legend(fontsize=7, ncol=4, loc="upper right")
        ax_e.grid(alpha=0.3)
    else:
        ax_p.set_xlabel("time (s)")
    return fig_to_png(fig)


def _space_text(analysis: Any) -> str:
    if analysis.expression_space != "pvae":
        return f"expression embeddings ({analysis.model})"
    known = sum(1 for v in analysis.neutral_faces.values() if v)
    return (
        f"perceptual-VAE codes ({analysis.config.pvae_model}); neutral face estimated for "
        f"{known} of {analysis.n_persons} person(s), the fallback neutral face for the rest"
    )


def video_page(analysis: Any, title: str | None = None) -> Any:
    """A :class:`~exprsim.report.html.Page` for a :class:`VideoAnalysis`."""
    from exprsim.report.html import Page
    from exprsim.report.plots import cluster_montage

    info = analysis.info
    page = Page(title or f"Video: {Path(info.source).name}", subtitle=analysis.model)
    if analysis.interrupted or analysis.truncated:
        page.paragraph(
            "Partial result: "
            + ("interrupted; " if analysis.interrupted else "")
            + "; ".join(analysis.warnings),
            note=True,
        )
    page.heading("Overview")
    n_ok = int(sum(f.quality.ok for f in analysis.faces))
    page.table(
        [
            {"what": "video", "value": f"{info.width}x{info.height}, {info.codec}"},
            {"what": "source fps / duration", "value": f"{info.fps:.3f} / {info.duration:.2f} s"},
            {
                "what": "sampling",
                "value": (
                    f"every {analysis.config.every} frames"
                    if analysis.config.every
                    else f"{analysis.config.fps:g} fps"
                ),
            },
            {"what": "frames sampled", "value": analysis.n_sampled},
            {"what": "faces (accepted)", "value": f"{len(analysis.faces)} ({n_ok})"},
            {
                "what": "rejected by reason",
                "value": ", ".join(f"{k}: {v}" for k, v in analysis.rejected.items()) or "none",
            },
            {"what": "identity grouping", "value": analysis.identity_method},
            {"what": "persons", "value": analysis.n_persons},
            {
                "what": "emotions",
                "value": ", ".join(analysis.classes) or "not available (no matching reference set)",
            },
            {"what": "summaries cluster", "value": _space_text(analysis)},
        ]
    )
    page.heading("Time per stage", level=3)
    page.table(analysis.timings.rows())
    page.heading("Persons")
    if analysis.person_stats:
        page.table(analysis.persons_frame())
    else:
        page.paragraph("no persons found", note=True)
    summaries = {s.person: s for s in analysis.summaries}
    for st in analysis.person_stats:
        page.heading(
            f"Person {st.person}: {st.appearance_rate:.0%} of sampled frames, "
            f"{st.time_on_screen:.1f} s on screen",
            level=3,
        )
        page.image(timeline_plot(analysis, st.person), caption="timeline")
        if st.tagged_moments:
            page.table(
                [
                    {"tag": m.tag, "start_s": m.start, "end_s": m.end, "faces": m.n_faces}
                    for m in st.tagged_moments
                ]
            )
        ps = summaries.get(st.person)
        if ps is None:
            page.paragraph("no face of this person passed the quality check", note=True)
            continue
        reps = ps.representatives
        clusters = ps.summary.clusters
        page.gallery(
            [analysis.faces[i].thumb for i in reps],
            [
                f"#{c.rank + 1}: {c.size} faces, t={analysis.faces[r].time:.1f}s"
                for c, r in zip(clusters, reps, strict=True)
            ],
            size=96,
        )
        groups = [[analysis.faces[ps.faces[m]].thumb for m in c.members] for c in clusters]
        page.image(
            cluster_montage(groups, [f"#{c.rank + 1} ({c.size})" for c in clusters]),
            caption=f"expression summary ({ps.summary.method}, {len(clusters)} clusters), "
            "closest to each centre first",
        )
    page.heading("Faces")
    frame = analysis.to_frame()
    page.table(frame.drop(columns=[f"e{d}" for d in range(16)], errors="ignore"), max_rows=300)
    return page


def demo_section(page: Any, out_dir: str | Path, embedder: Any, progress: bool = False) -> Any:
    """``make demo``'s video part: analyse the bundled clip into ``out_dir/video`` and add
    a short section (link, persons, representative faces) to ``page``.

    Returns:
        The :class:`VideoAnalysis`.
    """
    from exprsim.samples import sample_dir
    from exprsim.video.pipeline import analyze_video

    out = Path(out_dir) / "video"
    clip = sample_dir() / "langer_clip.mp4"
    analysis = analyze_video(clip, embedder=embedder, progress=progress)
    paths = analysis.save(out)
    page.heading("5. Video: persons, expressions over time, expression summary")
    page.paragraph(
        f"{clip.name} ({analysis.info.duration:.1f} s, {analysis.n_sampled} frames sampled at "
        f"{analysis.config.fps:g} fps): {len(analysis.faces)} faces, "
        f"{analysis.n_persons} person(s), identities by {analysis.identity_method}. "
        f"Full report: video/{paths['html'].name}; tables: video/faces.parquet, "
        "video/faces.csv, video/persons.csv."
    )
    page.table(analysis.persons_frame())
    for ps in analysis.summaries:
        page.gallery(
            [analysis.faces[i].thumb for i in ps.representatives],
            [f"person {ps.person} #{k + 1}" for k in range(len(ps.representatives))],
            size=80,
        )
    return analysis
