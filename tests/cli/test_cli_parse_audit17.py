"""Seventeenth round: positionals after an option join the command's list of them
(`exprsim tag add -q calm a.jpg` was "unrecognized arguments")."""

from __future__ import annotations

import pytest

from exprsim.cli import build_parser


@pytest.mark.parametrize(
    ("argv", "dest", "expect"),
    [
        (["tag", "add", "-q", "calm", "a.jpg"], "args", ["add", "calm", "a.jpg"]),
        (["faces", "a.jpg", "-q", "b.jpg", "-"], "paths", ["a.jpg", "b.jpg", "-"]),
        (["embed", "-o", "t.csv", "a.jpg", "-v", "b.jpg"], "paths", ["a.jpg", "b.jpg"]),
    ],
)
def test_positionals_after_options_are_kept_in_order(
    argv: list[str], dest: str, expect: list[str]
) -> None:
    args = build_parser().parse_args(argv)
    assert getattr(args, dest) == expect


def test_an_unknown_option_is_still_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["faces", "a.jpg", "--bogus", "x"])
    assert exc.value.code == 2
    assert "unrecognized arguments: --bogus x" in capsys.readouterr().err


def test_a_command_without_a_list_of_positionals_refuses_extras(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["search", "q.jpg", "-q", "c.jpg", "--db", "d.db"])
    assert "unrecognized arguments: c.jpg" in capsys.readouterr().err
