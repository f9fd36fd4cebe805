"""``Retry-After`` as an HTTP date ending in ``-0000`` (round 35): ``parsedate_to_datetime``
gives a naive datetime for it, which ``timestamp()`` read as local time, so a server's
"retry in 100 s" was "retry now" at UTC+5:30 and "wait 3.5 h more" at UTC-3:30."""

from __future__ import annotations

import datetime
import os
import time
from collections.abc import Callable, Iterator

import pytest

from exprsim.fec.fetch import _retry_after


@pytest.fixture
def zone() -> Iterator[Callable[[str, int], None]]:
    """``zone(name, offset)`` sets the process's time zone (``TZ`` and ``tzset``) and
    checks that it took (``offset``: seconds east of UTC); the zone before is restored."""
    before = os.environ.get("TZ")

    def set_zone(name: str, offset: int) -> None:
        os.environ["TZ"] = name
        time.tzset()
        if time.localtime(0).tm_gmtoff != offset:
            pytest.skip(f"no time zone data for {name}")

    yield set_zone
    if before is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = before
    time.tzset()


def _http_date(seconds_from_now: float, zone_text: str) -> str:
    when = datetime.datetime.fromtimestamp(time.time() + seconds_from_now, datetime.UTC)
    return when.strftime("%a, %d %b %Y %H:%M:%S ") + zone_text


@pytest.mark.parametrize(
    ("name", "offset"), [("Asia/Kolkata", 19_800), ("America/St_Johns", -12_600), ("UTC", 0)]
)
@pytest.mark.parametrize("zone_text", ["-0000", "GMT", "+0000"])
def test_an_http_date_is_utc_in_any_local_zone(
    zone: Callable[[str, int], None], name: str, offset: int, zone_text: str
) -> None:
    zone(name, offset)
    wait = _retry_after({"Retry-After": _http_date(100, zone_text)})
    assert wait is not None
    # whole seconds in the header: 99 to 100 s (was 0 at +5:30, 12,700 at -3:30 for -0000)
    assert 98.0 <= wait <= 100.5


def test_a_date_in_the_past_and_plain_seconds(zone: Callable[[str, int], None]) -> None:
    """Guards: a past date waits 0 s; seconds are read as they are; junk is ``None``."""
    zone("Asia/Kolkata", 19_800)
    assert _retry_after({"Retry-After": _http_date(-100, "-0000")}) == 0.0
    assert _retry_after({"Retry-After": "7"}) == 7.0
    assert _retry_after({"Retry-After": "soon"}) is None
    assert _retry_after({}) is None and _retry_after(None) is None
