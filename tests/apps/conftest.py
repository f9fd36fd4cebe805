"""Fixtures for the application tests: a random-weight embedder (the trained default model
may not exist), a checkpoint folder for the CLI, and the stub embedder of tests/index."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# the fast, deterministic stand-in embedder lives beside the index tests
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "index"))


@pytest.fixture(scope="session")
def random_embedder():
    """``exprnet_s`` with random weights, version "test" (deterministic: seeded)."""
    import torch

    from exprsim.models.embedder import Embedder, EmbedderConfig
    from exprsim.models.registry import create_model

    torch.manual_seed(0)
    return Embedder(create_model("exprnet_s"), EmbedderConfig(model="exprnet_s", version="test"))


@pytest.fixture(scope="session")
def random_model_dir(tmp_path_factory, random_embedder) -> Path:
    """A checkpoint folder (config.json + model.safetensors) that ``load_model`` reads."""
    from safetensors.torch import save_file

    out = tmp_path_factory.mktemp("model")
    (out / "config.json").write_text(random_embedder.config.to_json())
    state = {k: v.contiguous() for k, v in random_embedder.model.state_dict().items()}
    save_file(state, str(out / "model.safetensors"))
    return out


@pytest.fixture
def stub():
    from stub_embedder import StubEmbedder

    return StubEmbedder()
