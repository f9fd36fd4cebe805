"""Counts in messages: ``count(1, "face")`` is "1 face", ``count(2, "face")`` "2 faces"."""

from __future__ import annotations


def count(n: int | float, noun: str, plural: str | None = None) -> str:
    """``n`` and ``noun``, plural unless ``n`` is 1 (``plural``: default ``noun + "s"``)."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"
