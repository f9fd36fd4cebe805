"""Round 24: ``FetchConfig`` and ``CropConfig`` take whole numbers for counts (a NaN
``max_bytes`` let every download through, ``size=112.5`` failed on every face, 10**6
workers would start that many) and a five-point ``box_layout``."""

from __future__ import annotations

import math

import pytest

from exprsim.errors import ExprsimError
from exprsim.fec.crops import CropConfig
from exprsim.fec.fetch import FetchConfig


@pytest.mark.parametrize(
    "kw",
    [
        {"max_bytes": math.nan},
        {"min_bytes": math.nan},
        {"workers": 2.5},
        {"workers": True},
        {"workers": 10**6},
        {"retries": 10**9},
        {"user_agent": None},
    ],
)
def test_fetch_config_refuses(kw: dict) -> None:
    with pytest.raises(ExprsimError, match=next(iter(kw))):
        FetchConfig(**kw)


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"size": 112.5}, "size"),
        ({"workers": 10**6}, "workers"),
        ({"box_layout": ((0, 0),)}, "box_layout"),
        ({"box_layout": ((0, 0),) * 4 + ((math.nan, 0),)}, "box_layout"),
    ],
)
def test_crop_config_refuses(kw: dict, match: str) -> None:
    with pytest.raises(ExprsimError, match=match):
        CropConfig(**kw)


def test_the_defaults_pass() -> None:
    FetchConfig()
    CropConfig()
