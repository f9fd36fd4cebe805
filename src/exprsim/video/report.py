"""The video report: one self-contained HTML page.

:func:`video_page` builds the page from a :class:`~exprsim.video.pipeline.VideoAnalysis`:
an overview (video, sampling, rejections, stage timings), the persons table, then for the
:data:`MAX_PERSON_SECTIONS` persons with the most screen time a section each: a timeline
plot (presence, accepted/rejected faces, top emotion probabilities, tagged moments) and the
expression-summary montage (one representative face per cluster, then the first
:data:`MONTAGE_PER_ROW` members of each cluster). Every other person is one row of the
"Other persons" table, so the page's size and the time to draw it stay bounded however
many persons a video has (``--identity iou`` gives about one person per shot). Nothing is
left out of the tables and JSON written next to the page (``persons.csv``,
``analysis.json``, ``faces.csv``).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from exprsim.errors import printable
from exprsim.wording import count

log = logging.getLogger(__name__)

#: Persons (the most time on screen first; ties: the earlier person) who get a full section
#: with the two figures. A section costs one to two seconds of matplotlib and ~125 KB of
#: page; the others get a table row. Measured on a 160-person folder of frames (busy 2-core
#: machine): the page took 37 s and 3.2 MB, against 175 s and 19.9 MB with every section.
MAX_PERSON_SECTIONS = 24
#: markers of the timeline's emotions, one per class (with line styles: never colour alone)
EMOTION_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
#: Faces drawn per cluster in a person's expression-summary montage (only these are decoded).
MONTAGE_PER_ROW = 10
#: the timeline's axis is in minutes past this many seconds, in hours past the second
AXIS_MINUTES, AXIS_HOURS = 3600.0, 5 * 3600.0


def duration_text(seconds: float | None) -> str:
    """A length or time of the video as the report writes it: ``"unknown"`` (NaN, infinite,
    ``None``), two significant figures under a second (``"0.012 s"``), seconds with up to
    two decimals under a minute (``"2.8 s"``), then ``"1 min 02.5 s"`` and
    ``"26 h 00 min 00 s"`` (the CSV and JSON files keep plain seconds)."""
    if seconds is None or not math.isfinite(seconds):
        return "unknown"
    sign, s = ("-" if seconds < 0 else ""), abs(float(seconds))
    if s < 1.0:
        text = "0" if s == 0 else f"{s:.2g}"
        return f"{sign}{text} s" if text != "1" else f"{sign}1 s"
    hundredths = round(s * 100)
    if hundredths < 6000:
        return sign + f"{hundredths / 100:.2f}".rstrip("0").rstrip(".") + " s"
    if s < 3600 - 0.05:
        minutes, tenths = divmod(round(s * 10), 600)
        whole, tenth = divmod(tenths, 10)
        return f"{sign}{minutes} min {whole:02d}{f'.{tenth}' if tenth else ''} s"
    hours, rest = divmod(round(s), 3600)
    return f"{sign}{hours} h {rest // 60:02d} min {rest % 60:02d} s"


def rate_text(fps: float) -> str:
    """A frame rate with its significant digits (``"0.00027778 fps"``, ``"29.97 fps"``),
    ``"unknown"`` when not known."""
    return f"{fps:.5g} fps" if math.isfinite(fps) and fps > 0 else "unknown"


def timeline_end(analysis: Any) -> float:
    """Seconds the timelines span: the video's duration where it is known and the whole
    video was read (or the last face's time when later: recordings joined end to end),
    else the sampled frames' span (the last face, or the last sample of a constant rate)
    plus one sample at most (never more than that span, or a source frame, again): the
    part read of a video stopped early (Ctrl-C, ``max_frames``, a web job's cap) was
    squeezed into the start of the whole video's axis."""
    last = max((float(f.time) for f in analysis.faces), default=0.0)
    duration = float(analysis.info.duration)
    cap = getattr(analysis.config, "max_frames", None)
    partial = (
        analysis.interrupted
        or analysis.truncated
        or (cap is not None and analysis.n_sampled >= cap)
    )
    if math.isfinite(duration) and duration > 0 and not partial:
        return max(duration, last)
    period = float(analysis.sample_period)
    if not (math.isfinite(period) and period > 0):
        return last if last > 0 else 1.0
    last = max(last, (analysis.n_sampled - 1) * period)
    fps = float(analysis.info.fps)
    frame = 1.0 / fps if math.isfinite(fps) and fps > 0 else 0.0
    end = last + min(period, max(last, frame))
    return end if end > 0 else min(period, 1.0)


def _axis_unit(end: float) -> tuple[str, float]:
    """The timeline's unit for an axis of ``end`` seconds, and its length in seconds."""
    if end > AXIS_HOURS:
        return "h", 3600.0
    if end > AXIS_MINUTES:
        return "min", 60.0
    return "s", 1.0


def timeline_plot(analysis: Any, person: int) -> bytes:
    """PNG timeline of one person: presence strip (green ticks: accepted, grey crosses:
    rejected), emotion probabilities of the smoothed embedding over time (each emotion its
    own colour, marker and line style), tagged moments shaded."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from exprsim.report.plots import fig_to_png

    idx = np.flatnonzero(analysis.persons == person)
    times = np.array([analysis.faces[i].time for i in idx])
    ok = np.array([analysis.faces[i].quality.ok for i in idx], dtype=bool)
    end = timeline_end(analysis)
    unit, scale = _axis_unit(end)
    times = times / scale
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
        times[~ok], np.zeros((~ok).sum()), marker="x", s=30, color="#888", label="rejected"
    )
    ax_p.set_yticks([])
    ax_p.set_xlim(0, end / scale)
    ax_p.set_ylabel("on screen", rotation=0, ha="right", va="center", fontsize=8)
    stats = next(s for s in analysis.person_stats if s.person == person)
    for m in stats.tagged_moments:
        for ax in (ax_p, ax_e):
            if ax is not None:
                ax.axvspan(*_span(m, scale), color="#fc6", alpha=0.35, lw=0)
        ax_p.text(m.start / scale, 0.3, m.tag, fontsize=7, va="bottom")
    if ax_e is not None:
        acc = idx[ok]
        probs = analysis.emotions[acc]
        lines = ("-", "--", ":", "-.")
        for c, name in enumerate(analysis.classes):
            if np.nanmax(probs[:, c]) > 0.05:  # not colour alone: marker and line style too
                style = {"marker": EMOTION_MARKERS[c % len(EMOTION_MARKERS)], "markersize": 3}
                ax_e.plot(times[ok], probs[:, c], ls=lines[c % 4], lw=1, label=name, **style)
        ax_e.set_ylim(0, 1.02)
        ax_e.set_ylabel("probability", fontsize=8)
        ax_e.set_xlabel(f"time ({unit})")
        ax_e.legend(fontsize=7, ncol=4, loc="upper right")
        ax_e.grid(alpha=0.3)
    else:
        ax_p.set_xlabel(f"time ({unit})")
    return fig_to_png(fig)


def _span(moment: Any, scale: float) -> tuple[float, float]:
    """A tagged moment's shading on an axis in units of ``scale`` seconds (0.05 s wider
    each side, so that a moment of one face shows)."""
    return (moment.start - 0.05) / scale, (moment.end + 0.05) / scale


def _space_text(analysis: Any) -> str:
    if analysis.expression_space != "pvae":
        return f"expression embeddings ({analysis.model})"
    known = sum(1 for v in analysis.neutral_faces.values() if v)
    return (
        f"perceptual-VAE codes ({analysis.config.pvae_model}); neutral face estimated for "
        f"{known} of {count(analysis.n_persons, 'person')}, the fallback neutral face for the rest"
    )


def video_page(analysis: Any, title: str | None = None) -> Any:
    """A :class:`~exprsim.report.html.Page` for a :class:`VideoAnalysis`: figures for at
    most :data:`MAX_PERSON_SECTIONS` persons (:func:`sectioned_persons`), one table row for
    each of the others."""
    from exprsim.report.html import Page

    info = analysis.info
    page = Page(title or f"Video: {printable(Path(info.source).name)}", subtitle=analysis.model)
    if analysis.interrupted or analysis.truncated:
        page.paragraph(
            "Partial result: "
            + ("interrupted; " if analysis.interrupted else "")
            + "; ".join(analysis.warnings),
            note=True,
        )
    page.heading("Overview")
    page.table(_overview_rows(analysis))
    page.heading("Time per stage", level=3)
    page.table(analysis.timings.rows())
    page.heading("Persons")
    if analysis.person_stats:
        page.table(_persons_table(analysis))
    else:
        page.paragraph("no persons found", note=True)
    summaries = {s.person: s for s in analysis.summaries}
    shown = sectioned_persons(analysis.person_stats)
    rest = [st for st in analysis.person_stats if st.person not in shown]
    if rest:
        page.paragraph(
            f"Sections with figures for the {len(shown)} persons with the most time on "
            f"screen; the other {len(rest)} persons are summarised one row each in the "
            "table of other persons below. Every person's numbers are in the tables and "
            "JSON this command writes (persons.csv, faces.csv, analysis.json).",
            note=True,
        )
    for st in analysis.person_stats:
        if st.person in shown:
            _person_section(page, analysis, st, summaries.get(st.person))
    if rest:
        page.heading(f"Other persons ({len(rest)}, without figures)", level=3)
        page.table([_compact_row(st, summaries.get(st.person)) for st in rest], max_rows=None)
    page.heading("Faces")
    frame = analysis.to_frame()
    frame = frame.drop(columns=[f"e{d}" for d in range(16)], errors="ignore")
    frame["time"] = [duration_text(t) for t in frame["time"]]
    page.table(frame, max_rows=300)
    return page


def _moments_text(moments: Any) -> str:
    return "; ".join(f"{m.tag} {duration_text(m.start)} to {duration_text(m.end)}" for m in moments)


def _persons_table(analysis: Any) -> Any:
    """:meth:`VideoAnalysis.persons_frame` with its times written for reading
    (:func:`duration_text`; the ``_s`` columns of ``persons.csv`` are plain seconds)."""
    frame = analysis.persons_frame()
    for name in ("time_on_screen", "first_seen", "last_seen"):
        frame[f"{name}_s"] = [duration_text(v) for v in frame[f"{name}_s"]]
    frame["tagged_moments"] = [_moments_text(st.tagged_moments) for st in analysis.person_stats]
    return frame.rename(
        columns={f"{n}_s": n for n in ("time_on_screen", "first_seen", "last_seen")}
    )


def sectioned_persons(person_stats: Any, limit: int | None = None) -> set[int]:
    """Ids of the persons who get a full section: the ``limit`` (default
    :data:`MAX_PERSON_SECTIONS`) with the most time on screen, ties to the earlier person."""
    limit = MAX_PERSON_SECTIONS if limit is None else limit
    ranked = sorted(person_stats, key=lambda st: (-st.time_on_screen, st.person))
    return {st.person for st in ranked[: max(limit, 0)]}


def _compact_row(st: Any, ps: Any) -> dict[str, Any]:
    """One row of the "Other persons" table: the headline numbers of a person's section."""
    top = max(st.emotion_shares.items(), key=lambda kv: kv[1], default=None)
    return {
        "person": st.person,
        "time_on_screen": duration_text(st.time_on_screen),
        "appearance_rate": round(st.appearance_rate, 4),
        "first_seen": duration_text(st.first_seen),
        "last_seen": duration_text(st.last_seen),
        "faces_accepted": st.faces_accepted,
        "top_emotion": f"{top[0]} ({top[1]:.0%})" if top else "",
        "tagged_moments": len(st.tagged_moments),
        "summary_clusters": len(ps.summary.clusters) if ps is not None else 0,
    }


def _overview_rows(analysis: Any) -> list[dict[str, Any]]:
    """The overview table: video, sampling, faces, rejections, identities, emotions."""
    info, cfg = analysis.info, analysis.config
    n_ok = int(sum(f.quality.ok for f in analysis.faces))
    rejected = ", ".join(f"{k}: {v}" for k, v in analysis.rejected.items()) or "none"
    emotions = ", ".join(analysis.classes) or "not available (no matching reference set)"
    rows: list[tuple[str, Any]] = [
        ("video", f"{info.width}x{info.height}, {info.codec}"),
        ("source fps / duration", f"{rate_text(info.fps)} / {duration_text(info.duration)}"),
        ("sampling", _sampling_text(cfg, info)),
        ("frames sampled", analysis.n_sampled),
        ("faces (accepted)", f"{len(analysis.faces)} ({n_ok})"),
        ("rejected by reason", rejected),
        ("identity grouping", analysis.identity_method),
        ("persons", analysis.n_persons),
        ("emotions", emotions),
        ("summaries cluster", _space_text(analysis)),
    ]
    return [{"what": what, "value": value} for what, value in rows]


def _sampling_text(cfg: Any, info: Any) -> str:
    """How the frames were sampled: a rate, every N-th frame, or every image of a folder."""
    if cfg.every is None:
        return f"{cfg.fps:g} fps"
    what = "image" if info.codec == "images" else "frame"
    return f"every {what}" if cfg.every == 1 else f"every {cfg.every} {what}s"


def _person_section(page: Any, analysis: Any, st: Any, ps: Any) -> None:
    """One person: heading, timeline, tagged moments, expression-summary montage."""
    from exprsim.report.plots import cluster_montage

    page.heading(
        f"Person {st.person}: {st.appearance_rate:.0%} of sampled frames, "
        f"{duration_text(st.time_on_screen)} on screen",
        level=3,
    )
    page.image(
        timeline_plot(analysis, st.person),
        caption="timeline",
        alt=f"timeline of person {st.person}: when the face is on screen, and the "
        "probability of each emotion over time; every face's time and emotion are in the "
        "Faces table",
    )
    if st.tagged_moments:
        page.table(
            [
                {
                    "tag": m.tag,
                    "start": duration_text(m.start),
                    "end": duration_text(m.end),
                    "faces": m.n_faces,
                }
                for m in st.tagged_moments
            ]
        )
    if ps is None:
        why = (
            "the analysis was interrupted before this person's expression summary"
            if analysis.interrupted and st.faces_accepted
            else "no face of this person passed the quality check"
        )
        page.paragraph(why, note=True)
        return
    reps = ps.representatives
    clusters = ps.summary.clusters
    page.gallery(
        [analysis.faces[i].thumb for i in reps],
        [
            f"#{c.rank + 1}: {count(c.size, 'face')}, t={duration_text(analysis.faces[r].time)}"
            for c, r in zip(clusters, reps, strict=True)
        ],
        size=96,
    )
    groups = [  # only the faces the montage draws are decoded
        [analysis.faces[ps.faces[m]].thumb for m in c.members[:MONTAGE_PER_ROW]] for c in clusters
    ]
    page.image(
        cluster_montage(
            groups, [f"#{c.rank + 1} ({c.size})" for c in clusters], per_row=MONTAGE_PER_ROW
        ),
        caption=f"expression summary ({ps.summary.method}, {count(len(clusters), 'cluster')}), "
        "closest to each centre first",
    )
