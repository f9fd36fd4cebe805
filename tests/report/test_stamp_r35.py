"""Round 35 (time): a page says when it was made with its offset from UTC (it gave the
server's local time alone: 10:22 in Kolkata, 01:22 in St John's, for one moment)."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from exprsim.report.html import Page, generated_stamp

MOMENT = dt.datetime(2026, 12, 6, 4, 52, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("zone", "want"),
    [
        ("UTC", "2026-12-06 04:52 (UTC+00:00)"),
        ("Asia/Kolkata", "2026-12-06 10:22 (UTC+05:30)"),
        ("America/St_Johns", "2026-12-06 01:22 (UTC-03:30)"),
    ],
)
def test_the_stamp_names_its_offset(monkeypatch: pytest.MonkeyPatch, zone: str, want: str) -> None:
    monkeypatch.setenv("TZ", zone)
    time.tzset()
    try:
        assert generated_stamp(MOMENT) == want
        assert "(UTC" in Page("t").render()
    finally:
        monkeypatch.undo()
        time.tzset()
