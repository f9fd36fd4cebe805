"""Thirty-second round, a server's log: fewer distinct faces than clusters asked for is a
warning for the CLI, and said in the web app's answer, not logged again per answer (1,250
lines in an audit's server log)."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from exprsim.apps.summarize import summarize


@pytest.mark.parametrize(("warn", "level"), [(True, logging.WARNING), (False, logging.DEBUG)])
def test_the_shortfall_is_logged_at_the_level_asked(caplog, warn: bool, level: int) -> None:
    x = np.tile(np.eye(4, dtype=np.float32)[:2], (3, 1))  # 6 faces, 2 distinct
    with caplog.at_level(logging.DEBUG, logger="exprsim.apps.summarize"):
        s = summarize(x, n_clusters=4, warn=warn)
    assert len(s.clusters) == 2
    (rec,) = [r for r in caplog.records if "distinct" in r.getMessage()]
    assert rec.levelno == level and "2 distinct faces among 6" in rec.getMessage()
