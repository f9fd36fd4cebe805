"""Round 36 (a review of round 35; an audit of every overwrite): a host's SIGTERM held
for it does not count as the user's first Ctrl-C; a bytes path-like is read as a path;
tables, FEC triplet files and packed ``.npz`` files written through the Python API are
whole or not at all."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from exprsim.interrupts import hold_interrupts
from exprsim.io import load_image, save_table


def test_a_hosts_sigterm_does_not_use_up_the_users_held_ctrl_c() -> None:
    calls: list[str] = []
    before = signal.signal(signal.SIGTERM, lambda s, f: calls.append("host"))
    try:
        with hold_interrupts("the partial result") as held:
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGINT)  # the user's first Ctrl-C: held
            calls.append("block finished")
    finally:
        signal.signal(signal.SIGTERM, before)
    assert calls == ["block finished", "host"]
    assert held.signals == ["SIGTERM", "SIGINT"]


def test_a_bytes_path_like_is_read_as_a_path(tmp_path: Path) -> None:
    Image.fromarray(np.full((8, 8, 3), 9, np.uint8)).save(tmp_path / "a.png")
    entry = next(os.scandir(os.fsencode(tmp_path)))  # names that need not decode
    assert load_image(entry).shape == (8, 8, 3)


class _Boom:
    """A value whose text fails midway through a write."""

    def __str__(self) -> str:
        raise RuntimeError("boom")

    __format__ = None  # type: ignore[assignment]


@pytest.mark.parametrize("suffix", [".csv", ".json", ".jsonl"])
def test_a_table_that_fails_midway_keeps_the_earlier_file(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"t{suffix}"
    save_table(pd.DataFrame({"a": [1, 2]}), path)
    before = path.read_bytes()
    with pytest.raises(Exception):  # noqa: B017 - whatever the writer raises
        save_table(pd.DataFrame({"a": [1, _Boom()]}), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary left


def test_fec_triplets_that_fail_midway_keep_the_earlier_file(tmp_path: Path) -> None:
    from exprsim.data.fec import write_fec_csv

    path = tmp_path / "triplets.csv"
    path.write_text("earlier triplets\n" * 1000)
    with pytest.raises(AttributeError):
        write_fec_csv([object()], path)  # type: ignore[list-item]
    assert path.read_text() == "earlier triplets\n" * 1000


def test_a_packed_npz_is_written_whole_under_the_name_numpy_gives(tmp_path: Path) -> None:
    from exprsim.training.ferplus_data import _save_npz_whole

    out = _save_npz_whole(tmp_path / "packed", {"x": np.arange(3)}, compressed=True)
    assert out == tmp_path / "packed.npz"
    with np.load(out) as z:
        assert z["x"].tolist() == [0, 1, 2]
    out.write_bytes(b"earlier")
    with pytest.raises(ValueError, match="Object arrays"):
        _save_npz_whole(out, {"x": np.array([object()])}, compressed=False)  # type: ignore[dict-item]
    assert out.read_bytes() == b"earlier"


@pytest.mark.parametrize("writer", ["save_table", "replace_table"])
def test_a_table_is_staged_once_under_a_name_the_sweep_knows(tmp_path, monkeypatch, writer) -> None:
    """A review of the round: `replace_table` staged a temporary of `save_table`'s own
    temporary, a name the next run's sweep did not know (kill -9 left it for good)."""
    import re

    import exprsim.io as io_mod
    from exprsim.io import temp_pattern

    written: list[str] = []
    real = pd.DataFrame.to_csv

    def spy(self, path, *args, **kwargs):
        written.append(Path(path).name)
        return real(self, path, *args, **kwargs)

    monkeypatch.setattr(pd.DataFrame, "to_csv", spy)
    out = tmp_path / "out.csv"
    getattr(io_mod, writer)(pd.DataFrame({"a": [1]}), out)
    assert len(written) == 1 and re.fullmatch(temp_pattern(out, ".csv"), written[0])
