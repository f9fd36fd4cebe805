"""embed_fer: chunking changes nothing but the progress bar."""

from __future__ import annotations

import numpy as np

from exprsim.apps.classify import embed_fer


class _Mean:
    calls: list[int]

    def __init__(self) -> None:
        self.calls = []

    def embed_crops(self, crops: np.ndarray) -> np.ndarray:
        self.calls.append(len(crops))
        x = np.repeat(crops.reshape(len(crops), -1).mean(axis=1, keepdims=True), 16, axis=1)
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_embed_fer_matches_one_call_whatever_the_chunk(capsys) -> None:
    images = np.random.default_rng(0).integers(1, 255, (700, 48, 48), dtype=np.uint8)
    whole = _Mean().embed_crops(images)
    model = _Mean()
    got = embed_fer(model, images, progress=True)
    np.testing.assert_array_equal(got, whole)
    assert model.calls == [256, 256, 188]
    assert "700/700" in capsys.readouterr().err  # the bar counts faces (was: 1/1 chunk)
    assert embed_fer(_Mean(), images[:0]).shape == (0, 16)
