"""JSON tables as people read them: no ``\\/``, UTF-8 text, and still the same values."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from exprsim.io import TableWriter, records_json, save_table

_NAMES = ["/photos/a.jpg", "a\\/b", "\\", "\\\\/x", "café/ünï.jpg", 'q"/']


def _frame() -> pd.DataFrame:
    return pd.DataFrame({"source": _NAMES, "score": [0.5, math.nan, math.inf, 1.0, 2.0, 4.0]})


@pytest.mark.parametrize("lines", [False, True])
def test_records_json_round_trips_and_leaves_slashes_alone(lines: bool) -> None:
    good = _frame()
    text = records_json(good, lines=lines)
    assert "\\/" not in text.replace("\\\\", "") and "café/ünï.jpg" in text
    rows = [json.loads(x) for x in text.splitlines()] if lines else json.loads(text)
    assert [r["source"] for r in rows] == good["source"].tolist()
    assert [r["score"] for r in rows] == [0.5, None, None, 1.0, 2.0, 4.0]


def test_save_table_writes_utf8_json_without_escaped_slashes(tmp_path: Path) -> None:
    text = save_table(_frame(), tmp_path / "t.json").read_text(encoding="utf-8")
    assert '"/photos/a.jpg"' in text and "café/ünï.jpg" in text
    assert [r["source"] for r in json.loads(text)] == _NAMES


@pytest.mark.parametrize("suffix", [".json", ".jsonl"])
def test_the_streaming_writer_writes_the_same_text(tmp_path: Path, suffix: str) -> None:
    frame = _frame().iloc[:5]
    with TableWriter(tmp_path / f"s{suffix}", chunk_rows=2) as writer:
        writer.write(frame.to_dict("records"))
    text = (tmp_path / f"s{suffix}").read_text(encoding="utf-8")
    assert "/photos/a.jpg" in text and "café" in text
    rows = [json.loads(x) for x in text.splitlines()] if suffix == ".jsonl" else json.loads(text)
    assert [r["source"] for r in rows] == frame["source"].tolist()


def test_json_numbers_keep_full_precision_as_csv_does(tmp_path: Path) -> None:
    import numpy as np

    frame = pd.DataFrame(
        {
            "distance": [4.2e-11, 0.12345678901234567],
            "e0": np.array([0.1, 1 / 3], np.float32),
            "face": np.array([0, 7], np.int64),
            "ok": [True, False],
            "tags": ["", None],
        }
    )
    for suffix in (".json", ".jsonl"):
        path = save_table(frame, tmp_path / f"t{suffix}")
        back = pd.read_json(path, lines=suffix == ".jsonl", precise_float=True)
        # was: 4.2e-11 -> 0.0 and 0.12345678901234567 -> 0.123456789 (10 decimals)
        assert back["distance"].tolist() == frame["distance"].tolist()
        assert back["e0"].tolist() == [float(v) for v in frame["e0"]]
        assert back["face"].tolist() == [0, 7] and back["ok"].tolist() == [True, False]
    rows = json.loads((tmp_path / "t.json").read_text(encoding="utf-8"))
    assert rows[1]["tags"] is None and rows[0]["tags"] == ""
