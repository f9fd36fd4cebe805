"""Round 28 (docs/robustness.md): the command line."""

from __future__ import annotations

import pytest
from cli_run import run


@pytest.mark.parametrize(
    ("flag", "value", "said"),
    [
        ("--public-url", "faces.example.com", "public URL 'faces.example.com': give scheme"),
        ("--public-url", "https://x/app", "public URL 'https://x/app'"),
        ("--trusted-proxy", "my-proxy", "--trusted-proxy 'my-proxy': not an IP address"),
    ],
)
def test_serve_refuses_a_bad_proxy_option_in_one_line(tmp_path, capsys, flag, value, said):
    pytest.importorskip("uvicorn", reason="the web extra is not installed")
    db = str(tmp_path / "faces.db")
    rc, _, err = run(capsys, "serve", "--db", db, flag, value, "--port", "0")
    assert rc == 2 and said in err
    assert len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []  # refused before anything was made


def test_serve_warns_of_a_short_token(tmp_path, capsys, monkeypatch):
    """Web security audit: `--token s3cr3t` was taken without a word."""
    pytest.importorskip("uvicorn", reason="the web extra is not installed")
    from exprsim.cli import serve_cmd

    served = []
    monkeypatch.setattr(serve_cmd, "_run_server", lambda *a, **k: served.append(a))
    monkeypatch.setattr("exprsim.web.create_app", lambda config: object())
    for token, warned in [("s3cr3t", True), ("x" * 16, False)]:
        db = str(tmp_path / "faces.db")
        rc, _, err = run(capsys, "serve", "--db", db, "--token", token, "--port", "0")
        assert rc == 0
        assert ("the token has 6 characters, few enough to guess" in err) == warned
    assert len(served) == 2
