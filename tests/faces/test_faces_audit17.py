"""Seventeenth round (a memory-limited process): an image that cannot be analysed for
want of memory fails alone; the batch goes on."""

from __future__ import annotations

import numpy as np
import pytest

from exprsim.faces import pipeline
from exprsim.faces.stream import analyze_stream


def test_an_image_without_memory_fails_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    real = pipeline.analyze_image

    def analyze(image: np.ndarray, *a: object, **k: object) -> object:
        if image.shape[0] == 90:  # the "large" one
            raise MemoryError
        return real(image, *a, **k)

    monkeypatch.setattr(pipeline, "analyze_image", analyze)
    images = [np.zeros((64, 64, 3), np.uint8), np.zeros((90, 80, 3), np.uint8)]
    images.append(np.zeros((70, 64, 3), np.uint8))
    out = sorted(analyze_stream(images, "haar", workers=1), key=lambda r: r.index)
    assert [r.error is None for r in out] == [True, False, True]
    assert "not enough memory to analyse it (80x90)" in str(out[1].error)


def test_other_errors_still_surface(monkeypatch: pytest.MonkeyPatch) -> None:
    def analyze(*a: object, **k: object) -> object:
        raise RuntimeError("a bug")

    monkeypatch.setattr(pipeline, "analyze_image", analyze)
    with pytest.raises(RuntimeError, match="a bug"):
        list(analyze_stream([np.zeros((64, 64, 3), np.uint8)], "haar", workers=1))
