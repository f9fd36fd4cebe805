"""Round 33: ``exprsim ensemble`` composed members on whatever FER data it found now (a
shuffled copy through EXPRSIM_FER_DIR scored 0.76 where the members' own data scored 0.67,
without a word), where resuming one of them refused the same data."""

from __future__ import annotations

import dataclasses
import shutil

import pytest
import torch

from exprsim.cli import main
from exprsim.training.ensemble import compose_ensemble

from .test_ensemble import runs  # noqa: F401 - the members (a module fixture)


def _other_data(run, tmp_path):
    """A copy of ``run`` whose checkpoint says it trained on other faces."""
    copy = tmp_path / "other"
    shutil.copytree(run, copy)
    state = torch.load(copy / "state.pt", weights_only=True)
    assert state["data_digest"]
    state["data_digest"] = "0" * 32
    torch.save(state, copy / "state.pt")
    return copy


def test_a_member_trained_on_other_data_is_refused(runs, tmp_path, capsys) -> None:  # noqa: F811
    other = _other_data(runs[1], tmp_path)
    with pytest.raises(ValueError, match="trained on other faces than the FER\\+ data found now"):
        compose_ensemble([runs[0], other], tmp_path / "ens", draws=1)
    assert not (tmp_path / "ens").exists()
    assert main(["ensemble", str(runs[0]), str(other), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "trained on other faces" in err[0]


def test_device_reaches_the_base_training_of_sgm_subspaces() -> None:
    """Was: "recipe 'sgm-subspaces' trains on the CPU only (no device setting)", though its
    base training takes one ("base": {"device": ...} in the config)."""
    from exprsim.training.registry import _on_device, config_from_dict

    _, cfg = config_from_dict({"recipe": "sgm-subspaces", "levels": 1})
    assert _on_device("sgm-subspaces", cfg, "cuda:1").base.device == "cuda:1"
    _, pv = config_from_dict({"recipe": "pvae"})
    if "device" not in {f.name for f in dataclasses.fields(pv)}:
        assert _on_device("pvae", pv, "cpu") == pv  # it trains there anyway
        with pytest.raises(ValueError, match="trains on the CPU only"):
            _on_device("pvae", pv, "cuda")


def test_brief_cuts_a_long_message_at_a_sentence_or_a_word() -> None:
    from exprsim.training.run import brief

    assert brief(ValueError("short")) == "short"
    long = "The checkpoint could not be read by this version. " + "It can still be loaded " * 20
    assert brief(RuntimeError(long)) == "The checkpoint could not be read by this version"
    abbrev = "Given groups=1, weight of size [32, 1, 3, 3] (i.e. one input) expected " * 5
    assert "(i.e" not in brief(RuntimeError(abbrev))[-6:]  # not cut at an abbreviation
    words = ("word " * 80).strip()
    got = brief(RuntimeError(words))
    assert got.endswith(" ...") and len(got) <= 204 and "wor ..." not in got
