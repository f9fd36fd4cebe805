"""benchmarks/peers.py: the parts that need neither fer nor a detector (fast)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from file_module import load_file_module

PEERS = Path(__file__).resolve().parents[2] / "benchmarks" / "peers.py"


@pytest.fixture(scope="module")
def peers():
    yield from load_file_module(PEERS, "bench_peers")


def test_defaults_and_arguments(peers):
    args = peers.parse_args([])
    assert Path(args.peer_python) == peers.ROOT / ".venv-peers" / "bin" / "python"
    assert (args.seconds, args.rounds, args.threads, args.worker) == (6.0, 6, 2, None)
    args = peers.parse_args(["--seconds", "2", "--rounds", "4", "--json", "x.json"])
    assert (args.seconds, args.rounds, args.json) == (2.0, 4, "x.json")
    with pytest.raises(SystemExit):
        peers.parse_args(["--rounds", "0"])


def test_missing_peer_venv_says_how_to_get_it(peers, tmp_path):
    why = peers.peer_problem(tmp_path / "nowhere" / "python")
    assert why is not None and "make bench-peers" in why
    assert peers.peer_problem(sys.executable) is None


def test_ratios_and_targets(peers):
    rates = {
        "fer": {"images_per_s": 30.0, "faces_per_s": 30.0},
        "default_batch": {"images_per_s": 60.0, "faces_per_s": 60.0},
        "fast_batch": {"images_per_s": 160.0, "faces_per_s": 150.0},
    }
    rat = peers.ratios(rates)
    assert rat["default_batch"] == {"images": 2.0, "faces": 2.0}
    assert rat["fast_batch"]["faces"] == pytest.approx(5.0)
    assert rat["fast_batch"]["images"] == pytest.approx(16 / 3)
    assert "fer" not in rat
    t = peers.targets(rates, rat)
    assert (t["faces_per_s_met"], t["ratio_met"]) == (False, False)
    assert t["default_batch_ratio_vs_fer"] == 2.0  # images/s: the same files for both
    # without fer: no ratios, the faces/s target still judged
    t = peers.targets({"default_batch": {"faces_per_s": 151.0}}, peers.ratios({}))
    assert (t["faces_per_s_met"], t["ratio_met"]) == (True, None)


def test_median_rate(peers):
    rounds = [
        {"images": 8, "faces": 8, "seconds": 1.0},
        {"images": 16, "faces": 8, "seconds": 1.0},
        {"images": 80, "faces": 80, "seconds": 2.0},
    ]
    r = peers.median_rate(rounds)
    assert r["images_per_s"] == 16.0 and r["faces_per_s"] == 8.0


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((640, 360), (640, 360, 0, 60)),
        ((512, 512), (480, 480, 80, 0)),
        ((1280, 960), (640, 480, 0, 0)),
    ],
)
def test_letterbox_geometry(peers, size, expected):
    assert peers.letterbox_geometry(*size) == expected


def test_source_images_fall_back_to_the_bundled_samples(peers, monkeypatch, tmp_path):
    monkeypatch.setattr(peers, "STILLS", tmp_path / "missing")
    files, note = peers.source_images()
    assert files and all(f.parent == peers.SAMPLES for f in files)
    assert "not found" in note
