"""Eighteenth audit round, the web app: names shown as they are, uploads' names kept."""

from __future__ import annotations

import pytest

from exprsim.web.uploads import display_name, safe_name


@pytest.mark.parametrize(
    ("stored", "shown"),
    [
        ("/photos/a\nb.jpg", "a\\nb.jpg"),  # was "a b.jpg", like "a b.jpg" itself
        ("/photos/a\rb.jpg", "a\\rb.jpg"),
        ("/photos/photo_\u202egnp.jpg", "photo_\\u202egnp.jpg"),  # was read right to left
        ("/photos/\x1b[31mred.jpg", "\\x1b[31mred.jpg"),
        ("/uploads/0123456789abcdef01234567-été.jpg", "été.jpg"),
        ("/photos/a b.jpg", "a b.jpg"),
    ],
)
def test_indexed_names_are_shown_printable(stored: str, shown: str) -> None:
    assert display_name(stored) == shown


@pytest.mark.parametrize(
    "name",
    ["नमस्ते.jpg", "สวัสดี.jpg", "قُبلة.jpg", "😀.jpg", "👍🏽 party.jpg", "été 2024.jpg"],
)
def test_uploads_keep_names_in_every_script(name: str) -> None:
    """Before: marks and emoji became ``_`` (``नमस्ते.jpg`` -> ``नमस_त_.jpg``, every emoji
    name ``_.jpg``)."""
    assert safe_name(name) == name


def test_uploads_still_drop_what_is_unsafe_to_show() -> None:
    assert safe_name("a\u200db\u202ec\u2028d.jpg") == "a_b_c_d.jpg"  # format, separators
    assert safe_name("O'Brien & co`^$.jpg") == "O_Brien _ co___.jpg"  # ASCII rule unchanged
