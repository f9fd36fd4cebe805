"""Round 26 (docs/robustness.md): the demo says what it skips."""

from __future__ import annotations

import logging


def test_a_skipped_video_section_is_said_on_the_terminal(tmp_path, monkeypatch, caplog):
    import exprsim.demo as demo
    from exprsim.errors import ExprsimError

    def no_video(*args, **kwargs):
        raise ExprsimError("reading video needs PyAV: pip install 'exprsim[video]'")

    monkeypatch.setattr(demo, "video_section", no_video)
    with caplog.at_level(logging.WARNING):
        res = demo.run_demo(tmp_path / "out", progress=False)
    assert "video section is skipped" in caplog.text  # was on the page only
    assert "video section skipped" in res.html.read_text()
