"""Thirty-second round, CLI: ``index add --workers`` left out means the library's default
(the cores this process may use, at most 2), as its help says; a model named by a URL is
refused in one line that says exprsim never downloads."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from cli_run import one_line, run, stub_cli_model

from exprsim.cli import build_parser
from exprsim.index.store import FaceIndex

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "index"))
from stub_embedder import StubEmbedder, write_images


def _index_add_help() -> str:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    index = sub.choices["index"]  # type: ignore[attr-defined]
    isub = next(a for a in index._actions if getattr(a, "choices", None))
    return str(isub.choices["add"].format_help())


def test_index_add_help_names_the_library_default() -> None:
    """Before: "(default 2)", while the library's default is ``default_workers()`` (1 on a
    one-core machine, where the CLI then ran two detector threads)."""
    text = " ".join(_index_add_help().split())
    assert "default: the cores this process may use, at most 2" in text
    assert "default 2)" not in text


@pytest.mark.parametrize(("given", "expected"), [((), None), (("--workers", "3"), 3)])
def test_index_add_passes_workers_through(
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    given: tuple[str, ...],
    expected: int | None,
) -> None:
    """Before: ``workers=args.workers or 2``: the library's own default never applied."""
    stub_cli_model(monkeypatch, StubEmbedder("stub@1"))
    seen: list[Any] = []
    real_add = FaceIndex.add

    def add(self: FaceIndex, paths: Any, **kw: Any) -> Any:
        seen.append(kw.get("workers", "missing"))
        return real_add(self, paths, **kw)

    monkeypatch.setattr(FaceIndex, "add", add)
    paths = write_images(tmp_path / "imgs", 2)
    rc, _, err = run(
        capsys, "index", "add", *map(str, paths), "--db", str(tmp_path / "f.db"), *given
    )
    assert rc == 0, err
    assert seen == [expected]


@pytest.mark.parametrize("url", ["https://example.com/models/v9", "s3://bucket/exprnet"])
def test_a_model_url_is_refused_as_a_download(
    tmp_path: Path, capsys: pytest.CaptureFixture, url: str
) -> None:
    """Before: "model 'https://...': no config.json + model.safetensors in https:/..." (the
    path folded, nothing saying why a URL cannot work)."""
    img = write_images(tmp_path / "imgs", 1)[0]
    rc, out, err = run(capsys, "embed", str(img), "--model", url, "-o", str(tmp_path / "e.csv"))
    assert rc != 0 and out == "" and not (tmp_path / "e.csv").exists()
    line = one_line(err)
    assert url in line and "never downloads weights" in line and "a URL" in line
