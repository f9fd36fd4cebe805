"""``exprnet_v``: readout geometry, flip averaging, registry round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from exprsim.models.registry import create_model
from exprsim.models.vgg import ExprNetV


def _net(**kw: object) -> ExprNetV:
    torch.manual_seed(0)
    net = ExprNetV(stages=((8,), (8,), (16,), (16,)), **kw)  # type: ignore[arg-type]
    return net.eval()


def test_hybrid_angle_zero_is_sqrt_of_the_emotion_distribution() -> None:
    net = _net(readout="hybrid", readout_angle=0.0)
    x = torch.randn(5, 1, 48, 48)
    with torch.inference_mode():
        z = net(x)
        _, logits = net.head(x)
    p = np.exp(logits.numpy() - logits.numpy().max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)  # softmax written out independently
    np.testing.assert_allclose(z[:, :8].numpy(), np.sqrt(p), atol=1e-5)
    np.testing.assert_allclose(z[:, 8:].numpy(), 0.0, atol=1e-6)
    # so distances are sqrt(2) x the Hellinger distance between predicted distributions
    hell = np.sqrt(0.5 * ((np.sqrt(p[0]) - np.sqrt(p[1])) ** 2).sum())
    assert float(torch.dist(z[0], z[1])) == pytest.approx(np.sqrt(2) * hell, abs=1e-5)


def test_hybrid_mixes_the_two_blocks_by_the_angle() -> None:
    net = _net(readout="hybrid", readout_angle=30.0)
    x = torch.randn(4, 1, 48, 48)
    with torch.inference_mode():
        z = net(x).numpy()
        e, _ = net.head(x)
    assert z.shape == (4, 16)
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(z[:, :8], axis=1), np.cos(np.radians(30)), atol=1e-5)
    np.testing.assert_allclose(z[:, 8:], np.sin(np.radians(30)) * e.numpy(), atol=1e-5)


def test_flip_average_makes_the_output_mirror_invariant() -> None:
    x = torch.randn(3, 1, 48, 48)
    plain, avg = _net(flip_average=False), _net(flip_average=True)
    with torch.inference_mode():
        assert not torch.allclose(plain(x), plain(x.flip(-1)), atol=1e-4)
        torch.testing.assert_close(avg(x), avg(x.flip(-1)), atol=1e-5, rtol=1e-5)


def test_embedding_readout_and_bad_arguments() -> None:
    net = create_model("exprnet_v", embedding_dim=16, readout="embedding", stages=[[8], [8]])
    assert net(torch.randn(2, 1, 48, 48)).shape == (2, 16)
    with pytest.raises(ValueError, match="readout"):
        ExprNetV(readout="softmax")
    with pytest.raises(ValueError, match="too small"):
        ExprNetV(embedding_dim=9, readout="hybrid")
