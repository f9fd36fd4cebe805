"""Golden outputs of the shipped default model.

The stored embeddings were computed once by ``scripts/make_golden.py`` from the aligned crops
of the bundled sample photos; any change to the weights, the preprocessing or the network
code that moves an embedding by more than 1e-4 fails here.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import exprsim

GOLDEN = Path(__file__).parent / "golden"


@pytest.fixture(scope="module")
def golden() -> tuple[np.ndarray, np.ndarray, dict]:
    doc = json.loads((GOLDEN / "embeddings.json").read_text())
    crops = np.load(GOLDEN / "crops.npz")["crops"]
    return crops, np.asarray(doc["embeddings"], dtype=np.float32), doc


@pytest.fixture(scope="module")
def model():
    return exprsim.load_model("default")


def test_shipped_model_is_the_golden_one(model, golden) -> None:
    _, _, doc = golden
    assert model.config.name_version == doc["model"]
    assert model.config.embedding_dim == 16


def test_embeddings_match_stored_values(model, golden) -> None:
    crops, expected, _ = golden
    got = model.embed_crops(crops)
    assert got.shape == expected.shape == (len(crops), 16)
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)


def test_batching_and_order_do_not_change_embeddings(model, golden) -> None:
    crops, expected, _ = golden
    rev = model.embed_crops(crops[::-1].copy())[::-1]
    one = np.concatenate([model.embed_crops(crops[i : i + 1]) for i in range(len(crops))])
    np.testing.assert_allclose(rev, expected, atol=1e-4, rtol=0)
    np.testing.assert_allclose(one, expected, atol=1e-4, rtol=0)


def test_gray_input_matches_rgb(model, golden) -> None:
    """The model sees gray crops: passing the gray version gives (nearly) the same vector."""
    import cv2

    crops, expected, _ = golden
    gray = np.stack([cv2.cvtColor(c, cv2.COLOR_RGB2GRAY) for c in crops])
    np.testing.assert_allclose(model.embed_crops(gray), expected, atol=1e-3, rtol=0)
