"""Round 33: ``tag calibrate --save`` wrote the threshold calibrated on one model's weights
into a folder that another export had filled meanwhile (``exprsim ensemble --out``, a
training run): later tagging used a threshold of other weights, without a word."""

from __future__ import annotations

from pathlib import Path

from cli_run import digest, one_line, run
from test_tag_calibrate_save import _calibration, model_dir  # noqa: F401 (a fixture)

from exprsim.apps import tag as tag_mod


def test_weights_replaced_during_the_calibration_get_no_threshold(
    model_dir: Path,  # noqa: F811 (the fixture imported above)
    monkeypatch,
    capsys,
) -> None:
    def calibrate_while_replaced(*a, **k):
        weights = model_dir / "model.safetensors"
        data = bytearray(weights.read_bytes())
        data[-1] ^= 0xFF  # another export's weights
        weights.write_bytes(bytes(data))
        return _calibration(0.6)

    monkeypatch.setattr(tag_mod, "calibrate_from_ferplus", calibrate_while_replaced)
    before = digest(model_dir / "config.json")
    rc, _, err = run(capsys, "tag", "calibrate", "--model", str(model_dir), "--save")
    assert rc != 0 and "changed while it was calibrated" in one_line(err)
    assert digest(model_dir / "config.json") == before  # was: tag_threshold 0.6 written


def test_an_unchanged_model_still_gets_its_threshold(
    model_dir: Path,  # noqa: F811 (the fixture imported above)
    monkeypatch,
    capsys,
) -> None:
    monkeypatch.setattr(tag_mod, "calibrate_from_ferplus", lambda *a, **k: _calibration(0.6))
    rc, out, _ = run(capsys, "tag", "calibrate", "--model", str(model_dir), "--save")
    assert rc == 0 and "tag_threshold 0.6 ->" in out
