"""Round 24: ``ServeConfig`` checks itself. A single host name given as a string was
matched letter by letter (``Host: l`` passed ``"localhost"``), an empty token turned
authentication off, and other bad values failed only once requests came (a 500 on each,
or every upload refused as the client's fault)."""

from __future__ import annotations

import math

import pytest

from exprsim.errors import ExprsimError
from exprsim.web import ServeConfig


def test_one_host_name_is_one_name_in_lower_case() -> None:
    cfg = ServeConfig(db="x.db", allowed_hosts="LocalHost")  # type: ignore[arg-type]
    assert cfg.allowed_hosts == ("localhost",)
    assert ServeConfig(db="x.db", allowed_hosts=("A.example", "b")).allowed_hosts == (
        "a.example",
        "b",
    )


def test_a_host_given_as_a_string_no_longer_matches_its_letters(make_client) -> None:
    client = make_client(allowed_hosts="localhost")
    assert client.get("/api/health", headers={"Host": "l"}).status_code == 403  # was 200
    assert client.get("/api/health", headers={"Host": "localhost"}).status_code == 200


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"token": ""}, "token"),
        ({"token": 5}, "token"),
        ({"max_upload_mb": "25"}, "max_upload_mb"),
        ({"max_upload_mb": math.nan}, "max_upload_mb"),
        ({"max_upload_mb": -1}, "max_upload_mb"),
        ({"max_pixels": -1}, "max_pixels"),
        ({"max_pixels": "x"}, "max_pixels"),
        ({"max_queued_videos": 0}, "max_queued_videos"),
        ({"max_queued_videos": 2.5}, "max_queued_videos"),
        ({"keep_videos_days": 0}, "keep_videos_days"),
        ({"keep_videos_days": math.nan}, "keep_videos_days"),
        ({"allowed_hosts": ("ok", "")}, "allowed_hosts"),
        ({"db": ""}, "db"),
    ],
)
def test_bad_values_are_refused_when_the_config_is_made(kw: dict, match: str) -> None:
    args = {"db": "x.db"} | kw
    with pytest.raises(ExprsimError, match=match):
        ServeConfig(**args)
