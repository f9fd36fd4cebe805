"""Project-wide test fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

from exprsim.data.fer import default_data_dir


@pytest.fixture(scope="session")
def fer_dir() -> Path:
    """../shared/data/fer2013, or skip (data-marked tests need it; the suite passes without)."""
    folder = default_data_dir()
    if not (folder / "fer2013.csv.gz").is_file() and not (folder / "fer2013.csv").is_file():
        pytest.skip(f"FER data not found at {folder} (../shared/data/fer2013)")
    return folder


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
