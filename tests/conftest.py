"""Project-wide test fixtures."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from exprsim.data.fer import default_data_dir

# shared test helpers (corpus.py, mixtures.py) import by module name from any test folder
sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture(scope="session")
def fer_dir() -> Path:
    """../shared/data/fer2013, or skip (data-marked tests need it; the suite passes without)."""
    folder = default_data_dir()
    if not (folder / "fer2013.csv.gz").is_file() and not (folder / "fer2013.csv").is_file():
        pytest.skip(f"FER data not found at {folder} (../shared/data/fer2013)")
    return folder


@pytest.fixture(autouse=True, scope="session")
def _ctrl_c_delivered():
    """Ctrl-C as a terminal delivers it. A shell that starts the suite in the background
    (``cmd &`` without job control, ``nohup``) hands it SIGINT ignored, and Python then
    installs no KeyboardInterrupt handler: the interrupt tests would test nothing."""
    import signal

    before = signal.getsignal(signal.SIGINT)
    if before == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Tiny test batches run faster (and steadier on a busy machine) on one torch thread."""
    try:
        import torch
    except ImportError:  # pragma: no cover
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


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
