"""benchmarks/process_ceiling.py: arguments and the pooled front end's order (no detector)."""

from __future__ import annotations

import random
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from file_module import load_file_module

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "process_ceiling.py"


@pytest.fixture(scope="module")
def pc():
    yield from load_file_module(SCRIPT, "bench_process_ceiling")


@pytest.mark.parametrize("bad", [["--seconds", "0"], ["--rounds", "0"], ["--repeat", "0"]])
def test_bad_arguments_exit(pc, bad):
    with pytest.raises(SystemExit):
        pc.main(bad)


def test_pooled_faces_keeps_input_order(pc, monkeypatch):
    from exprsim.faces import stream

    delays = [random.Random(i).uniform(0, 0.01) for i in range(40)]

    def fake(index, item, detector, align_config, quality_config):
        time.sleep(delays[index])  # finish out of order
        return (index, item, detector)

    monkeypatch.setattr(stream, "_analyze_one", fake)
    files = [f"f{i}.jpg" for i in range(40)]
    with ThreadPoolExecutor(4) as pool:
        out = list(pc.pooled_faces(pool, files, None, window=6))
    assert [o[0] for o in out] == list(range(40))
    assert [o[1] for o in out] == files and {o[2] for o in out} == {"mediapipe"}
