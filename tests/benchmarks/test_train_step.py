"""benchmarks/train_step.py: arguments, the step really trains, the timing's median."""

from __future__ import annotations

from pathlib import Path

import pytest

from file_module import load_file_module

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "train_step.py"
TINY = {"readout": "hybrid", "stages": [[4], [4], [8], [8]]}


@pytest.fixture(scope="module")
def ts():
    yield from load_file_module(SCRIPT, "bench_train_step")


@pytest.mark.parametrize("bad", [["--rounds", "0"], ["--steps", "0"], ["--warmup", "0"]])
def test_bad_arguments_exit(ts, bad):
    with pytest.raises(SystemExit):
        ts.main(bad)


def test_steps_change_the_weights_in_every_eager_mode(ts, monkeypatch):
    import torch

    made = {}
    real = torch.optim.SGD

    def keep(params, **kw):
        params = list(params)
        made["before"] = [p.detach().clone() for p in params]
        made["params"] = params
        return real(params, **kw)

    monkeypatch.setattr(torch.optim, "SGD", keep)
    for mode in ("fp32", "bf16"):
        ts._step_fn(TINY, mode, batch=4, dim=16)()
        moved = [not torch.equal(a, b) for a, b in zip(made["before"], made["params"], strict=True)]
        assert sum(moved) > len(moved) // 2, mode


def test_time_steps_is_the_median_of_the_timed_calls(ts, monkeypatch):
    clock = iter([0.0, 1.0, 1.0, 4.0, 4.0, 6.0])  # three timed calls: 1, 3, 2 s
    monkeypatch.setattr(ts.time, "perf_counter", lambda: next(clock))
    calls = []
    assert ts.time_steps(lambda: calls.append(1), steps=3, warmup=2) == 2.0
    assert len(calls) == 5
