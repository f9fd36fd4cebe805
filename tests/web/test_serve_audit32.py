"""Thirty-second round, a long-lived server: ``exprsim serve`` caps glibc's malloc arenas
before it allocates, so its memory levels off (3,000 mixed requests took it from 285 MB to
671 MB and rising; capped, 603 MB and flat: docs/robustness.md)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

pytest.importorskip("uvicorn", reason="the web extra is not installed")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_the_cap_is_set_unless_the_user_chose_one(monkeypatch: pytest.MonkeyPatch) -> None:
    from exprsim.web.server import cap_malloc_arenas

    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert cap_malloc_arenas() is True
    monkeypatch.setenv("MALLOC_ARENA_MAX", "8")  # the user's own choice: left alone
    assert cap_malloc_arenas() is False


def test_serve_caps_the_arenas_before_the_app_is_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import exprsim.web
    import exprsim.web.server as server
    from exprsim.cli import build_parser
    from exprsim.cli.serve_cmd import cmd_serve

    order: list[str] = []

    class Stop(Exception):
        pass

    def create_app(*args, **kwargs):
        order.append("app")
        raise Stop

    monkeypatch.setattr(server, "cap_malloc_arenas", lambda: order.append("cap") or True)
    monkeypatch.setattr(exprsim.web, "create_app", create_app)
    args = build_parser().parse_args(["serve", "--db", str(tmp_path / "f.db")])
    multipart = logging.getLogger("python_multipart")
    before = multipart.level
    multipart.setLevel(logging.NOTSET)
    try:
        with pytest.raises(Stop):
            cmd_serve(args)
        assert order == ["cap", "app"]
        # a client's malformed bodies do not each write a warning (answered 400 anyway)
        child = logging.getLogger("python_multipart.multipart")
        assert not child.isEnabledFor(logging.WARNING)
    finally:
        multipart.setLevel(before)


@pytest.mark.slow
def test_the_web_summary_says_a_shortfall_without_a_warning(make_client, photo, caplog) -> None:
    """Audit: a warning per computed summary (1,250 lines in a server's log) for what the
    answer's note says."""
    import io

    from PIL import Image

    c = make_client()
    name, data, kind = photo()
    png = io.BytesIO()
    Image.open(io.BytesIO(data)).save(png, "PNG")  # the same pixels: the same face
    for upload in ((name, data, kind), ("copy.png", png.getvalue(), "image/png")):
        assert c.post("/api/index", files={"file": upload}).status_code == 200
    with caplog.at_level(logging.DEBUG, logger="exprsim"):
        doc = c.get("/api/summary?n=3").json()
    assert doc.get("note")
    said = [r for r in caplog.records if "instead of" in r.getMessage()]
    assert said and all(r.levelno < logging.WARNING for r in said)
