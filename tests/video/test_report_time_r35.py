"""Time in the video report (round 35): the timeline's axis ends at the video's end (it ran
to 10,000 s for a 3-s clip sampled at 0.0001 fps), in minutes or hours for long videos;
an unknown rate or duration reads "unknown" (was "nan"); long and very short durations
are readable ("26 h 00 min 00 s", not "93600.00 s"; "0.012 s", not "0.0 s"). The analyses
are built directly (no video); the axis is read from the figure that is drawn."""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any

import pytest

from exprsim.video import report
from exprsim.video.frames import VideoInfo
from exprsim.video.pipeline import VideoAnalysis

from .test_video_report_audit12 import _analysis, _stub_figures

NAN = math.nan


def _timed(
    times: list[float],
    duration: float,
    fps: float,
    n_sampled: int,
    period: float,
    on_screen: float | None = None,
) -> VideoAnalysis:
    """One person whose faces are at ``times``, in a video of ``duration`` at ``fps``."""
    base = _analysis([1.0], [[len(times)]])
    faces = tuple(dataclasses.replace(f, time=t) for f, t in zip(base.faces, times, strict=True))
    (st,) = base.person_stats
    st = dataclasses.replace(
        st,
        time_on_screen=on_screen if on_screen is not None else len(times) * period,
        first_seen=times[0],
        last_seen=times[-1],
        tagged_moments=(),
    )
    info = VideoInfo("film.mp4", 640, 480, fps, duration, 0, "h264")
    return dataclasses.replace(
        base,
        info=info,
        faces=faces,
        person_stats=(st,),
        n_sampled=n_sampled,
        sample_period=period,
    )


def _axis(monkeypatch: pytest.MonkeyPatch, analysis: VideoAnalysis) -> tuple[float, float, str]:
    """The x limits and label of the timeline drawn for person 0."""
    import exprsim.report.plots as plots

    drawn: list[Any] = []
    monkeypatch.setattr(plots, "fig_to_png", lambda fig, *a, **k: drawn.append(fig) or b"")
    report.timeline_plot(analysis, 0)
    (fig,) = drawn
    axes = fig.get_axes()
    low, high = axes[0].get_xlim()
    return low, high, axes[-1].get_xlabel()


def _overview(analysis: VideoAnalysis) -> dict[str, Any]:
    return {r["what"]: r["value"] for r in report._overview_rows(analysis)}


# ------------------------------------------------------------------ 1: the axis's end


def test_the_axis_ends_at_the_duration_with_coarse_sampling(monkeypatch) -> None:
    """``--fps 0.0001`` on a 3-s clip: one sample standing for 10,000 s."""
    analysis = _timed([0.0], duration=3.0, fps=10.0, n_sampled=1, period=10_000.0)
    assert _axis(monkeypatch, analysis) == (0.0, 3.0, "time (s)")  # was (0, 10000)


def test_the_axis_of_a_video_of_unknown_length_ends_near_its_last_sample(monkeypatch) -> None:
    """Unknown duration, one sample at 0 s every 10,000 s of a 10 fps stream: the axis
    stops within a source frame of the only sample, not 10,000 s later."""
    analysis = _timed([0.0], duration=NAN, fps=10.0, n_sampled=1, period=10_000.0)
    low, high, _ = _axis(monkeypatch, analysis)
    assert low == 0.0 and 0.0 < high <= 0.1 + 1e-12  # was 10000


def test_the_axis_of_a_live_stream_covers_its_samples(monkeypatch) -> None:
    """Guard (passes before too): 15 samples 0.2 s apart, length unknown: 0-3 s."""
    analysis = _timed([k / 5 for k in range(15)], NAN, 10.0, n_sampled=15, period=0.2)
    assert _axis(monkeypatch, analysis) == (0.0, pytest.approx(3.0), "time (s)")


@pytest.mark.parametrize("how", ["interrupted", "truncated", "max_frames"])
def test_the_axis_of_a_video_stopped_early_is_the_part_read(monkeypatch, how) -> None:
    """Review: 10 faces at 0-9 s of a 2-hour video stopped early were drawn in the first
    0.14% of a 0-120 min axis."""
    analysis = _timed([float(k) for k in range(10)], 7200.0, 10.0, n_sampled=10, period=1.0)
    if how == "max_frames":
        cfg = dataclasses.replace(analysis.config, max_frames=10)
        analysis = dataclasses.replace(analysis, config=cfg)
    else:
        analysis = dataclasses.replace(analysis, **{how: True})
    assert _axis(monkeypatch, analysis) == (0.0, 10.0, "time (s)")
    whole = _timed([float(k) for k in range(10)], 7200.0, 10.0, n_sampled=7200, period=1.0)
    assert _axis(monkeypatch, whole)[1:] == (120.0, "time (min)")  # guard: read whole


def test_the_axis_never_runs_past_the_last_face_when_the_duration_is_known(monkeypatch) -> None:
    """Recordings joined end to end: faces after the first one's declared 3 s."""
    times = [k / 5 for k in range(26)]  # 0 to 5.0 s
    analysis = _timed(times, duration=3.0, fps=10.0, n_sampled=26, period=0.2)
    assert _axis(monkeypatch, analysis) == (0.0, 5.0, "time (s)")  # was 5.2


@pytest.mark.parametrize(
    ("hours", "unit", "end"),
    [(26, "h", 26.0), (2, "min", 120.0)],
)
def test_long_videos_are_drawn_in_hours_or_minutes(monkeypatch, hours, unit, end) -> None:
    times = [3600.0 * k * hours / 26 for k in range(26)]
    analysis = _timed(times, 3600.0 * hours, 26 / (3600 * hours), 26, 3600.0 * hours / 26)
    low, high, label = _axis(monkeypatch, analysis)
    assert (low, label) == (0.0, f"time ({unit})")  # was "time (s)", ticks to 80000
    assert high == pytest.approx(end)


# ------------------------------------------------------------------ 2, 3: the words


def test_an_unknown_rate_and_duration_read_unknown(monkeypatch) -> None:
    """An animated WebP declares neither: "nan / nan s" before."""
    analysis = _timed([0.0, 1.0, 2.0], NAN, NAN, n_sampled=3, period=0.2)
    assert _overview(analysis)["source fps / duration"] == "unknown / unknown"
    _stub_figures(monkeypatch)
    html = re.sub(r"data:[^\"']*", "", report.video_page(analysis).render())  # images
    assert "nan" not in html.lower()


def test_long_and_short_durations_are_readable(monkeypatch) -> None:
    long = _timed([3600.0 * k for k in range(26)], 93_600.0, 1 / 3600, 26, 3600.0)
    assert _overview(long)["source fps / duration"] == "0.00027778 fps / 26 h 00 min 00 s"
    _stub_figures(monkeypatch)
    html = report.video_page(long).render()
    assert "Person 0: 1% of sampled frames, 26 h 00 min 00 s on screen" in html
    assert "93600" not in html  # was "93600.0 s on screen", "0.000 / 93600.00 s"
    # 12 ms on screen at 1000 fps: persons.csv says 0.012, the heading said "0.0 s"
    short = _timed([k / 1000 for k in range(12)], 2.0, 1000.0, 12, 0.001, on_screen=0.012)
    assert _overview(short)["source fps / duration"] == "1000 fps / 2 s"
    html = report.video_page(short).render()
    assert "0.012 s on screen" in html
    cells = re.findall(r"<td class=\"s\">([^<]*)</td>", html)
    assert "0.012 s" in cells and "0.011 s" in cells  # time on screen, last seen


def test_persons_without_a_section_read_the_same(monkeypatch) -> None:
    """The "Other persons" table wrote round(0.012, 1) = 0.0."""
    monkeypatch.setattr(report, "MAX_PERSON_SECTIONS", 0)
    analysis = _timed([k / 1000 for k in range(12)], 2.0, 1000.0, 12, 0.001, on_screen=0.012)
    _stub_figures(monkeypatch)
    html = report.video_page(analysis).render()
    at = html.index("<h3>Other persons (")
    table = html[at : html.index("</table>", at)]
    assert '<td class="s">0.012 s</td>' in table and ">0.0<" not in table


def test_the_csv_and_json_keep_plain_seconds() -> None:
    """Guard: only the page's words change; the tables written next to it do not."""
    analysis = _timed([3600.0 * k for k in range(26)], 93_600.0, 1 / 3600, 26, 3600.0)
    row = analysis.persons_frame().iloc[0]
    assert (row["time_on_screen_s"], row["last_seen_s"]) == (93_600.0, 90_000.0)
    assert analysis.to_frame()["time"].tolist() == [3600.0 * k for k in range(26)]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0, "0 s"),
        (0.012, "0.012 s"),
        (0.00027778, "0.00028 s"),
        (0.5, "0.5 s"),
        (2.8, "2.8 s"),
        (59.994, "59.99 s"),
        (59.996, "1 min 00 s"),
        (62.5, "1 min 02.5 s"),
        (3723.0, "1 h 02 min 03 s"),
        (93_600.0, "26 h 00 min 00 s"),
        (NAN, "unknown"),
        (math.inf, "unknown"),
    ],
)
def test_the_duration_words(seconds: float, text: str) -> None:
    assert report.duration_text(seconds) == text
