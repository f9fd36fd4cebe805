"""Round 35 (a library inside another app): loading a model leaves torch's global random
numbers as they were (building the network drew its random initial weights from them: a
notebook that seeded torch got other numbers once a model was loaded in between)."""

from __future__ import annotations

import torch

from exprsim.models.embedder import load_model


def test_loading_a_model_does_not_move_the_hosts_random_numbers() -> None:
    torch.manual_seed(0)
    want = torch.rand(3)
    torch.manual_seed(0)
    load_model("default")
    assert torch.equal(torch.rand(3), want)
