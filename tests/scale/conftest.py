"""Fixtures of the Ray engine's tests."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def ray_never_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ray importable, and ``ray.init`` a failure (before the fixes it hung or retried)."""
    ray = pytest.importorskip("ray", reason="Ray not installed: pip install 'exprsim[ray]'")

    def init(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("ray.init was reached")

    monkeypatch.setattr(ray, "init", init)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
