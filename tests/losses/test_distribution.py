"""Vote-distribution losses against slow loops."""

from __future__ import annotations

import math

import pytest
import torch

from exprsim.losses import DistributionLoss, HellingerMatchingLoss, kl_to_votes, soft_cross_entropy
from exprsim.losses.distribution import hellinger_to_votes


def _votes(n: int = 6, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    v = torch.randint(0, 5, (n, 8), generator=g).double()
    v[:, 0] += 1  # every row has votes; many zeros elsewhere
    return v


def _loop_kl(logits, votes):
    out = []
    for r in range(logits.shape[0]):
        z = logits[r].tolist()
        mx = max(z)
        lse = mx + math.log(sum(math.exp(x - mx) for x in z))
        tot = float(votes[r].sum())
        kl = 0.0
        for c in range(len(z)):
            t = float(votes[r, c]) / tot
            if t > 0:
                kl += t * (math.log(t) - (z[c] - lse))
        out.append(kl)
    return out


def test_kl_matches_loop_and_ce_offset() -> None:
    logits = torch.randn(6, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    votes = _votes()
    ref = _loop_kl(logits, votes)
    per = kl_to_votes(logits, votes, reduction="none")
    assert torch.allclose(per, torch.tensor(ref, dtype=torch.float64))
    assert DistributionLoss()(logits, votes).item() == pytest.approx(sum(ref) / 6)
    t = votes / votes.sum(1, keepdim=True)
    entropy = -(torch.xlogy(t, t)).sum(1)
    ce = soft_cross_entropy(logits, votes, reduction="none")
    assert torch.allclose(ce, per + entropy)
    assert DistributionLoss("ce", reduction="sum")(logits, votes).item() == pytest.approx(
        ce.sum().item()
    )


def test_hellinger_loss_matches_loop_and_is_half_the_kl_near_the_votes() -> None:
    logits = torch.randn(6, 8, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    votes = _votes()
    ref = []
    for r in range(6):  # naive: softmax, then sum of squared differences of square roots
        z = [math.exp(x) for x in logits[r].tolist()]
        tot, vt = sum(z), float(votes[r].sum())
        ref.append(
            sum((math.sqrt(float(votes[r, c]) / vt) - math.sqrt(z[c] / tot)) ** 2 for c in range(8))
        )
    per = hellinger_to_votes(logits, votes, reduction="none")
    assert torch.allclose(per, torch.tensor(ref, dtype=torch.float64))
    assert DistributionLoss("hellinger")(logits, votes).item() == pytest.approx(sum(ref) / 6)
    assert bool((per >= 0).all() and (per <= 2).all())
    t = (votes + 1) / (votes + 1).sum(1, keepdim=True)  # full support: a small step away
    near = torch.log(t) + 1e-3 * torch.randn(6, 8, generator=torch.Generator().manual_seed(3))
    ratio = kl_to_votes(near, t, reduction="none") / hellinger_to_votes(near, t, reduction="none")
    assert torch.allclose(ratio, torch.full_like(ratio, 2.0), rtol=0.02)
    g = logits.clone().requires_grad_(True)  # finite gradients even for a near-zero p
    hellinger_to_votes(g * 50, votes).backward()
    assert g.grad is not None and bool(torch.isfinite(g.grad).all())


def test_kl_zero_at_target_and_temperature() -> None:
    votes = _votes()
    t = votes / votes.sum(1, keepdim=True)
    logits = torch.log(t.clamp_min(1e-300))
    assert kl_to_votes(logits, votes).item() == pytest.approx(0.0, abs=1e-9)
    loss = DistributionLoss(temperature=2.0)
    assert loss(2 * logits, votes).item() == pytest.approx(0.0, abs=1e-9)


def test_kl_gradient_and_errors() -> None:
    logits = torch.zeros(2, 8, requires_grad=True)
    DistributionLoss()(logits, torch.eye(8)[:2]).backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0
    with pytest.raises(ValueError):
        DistributionLoss(kind="mse")
    with pytest.raises(ValueError):
        kl_to_votes(torch.zeros(1, 8), torch.zeros(1, 8))


def _loop_hellinger_match(emb, votes, scale, squared):
    n = emb.shape[0]
    terms = []
    for a in range(n):
        for b in range(a + 1, n):
            d2 = sum((float(x) - float(y)) ** 2 for x, y in zip(emb[a], emb[b], strict=True))
            pa = [float(v) / float(votes[a].sum()) for v in votes[a]]
            pb = [float(v) / float(votes[b].sum()) for v in votes[b]]
            h = math.sqrt(
                0.5 * sum((math.sqrt(x) - math.sqrt(y)) ** 2 for x, y in zip(pa, pb, strict=True))
            )
            goal = scale * h
            gap = (d2 - goal**2) if squared else (math.sqrt(d2) - goal)
            terms.append(gap * gap)
    return sum(terms) / len(terms)


@pytest.mark.parametrize("squared", [False, True])
def test_hellinger_matching_matches_loop(squared: bool) -> None:
    emb = torch.nn.functional.normalize(
        torch.randn(6, 16, generator=torch.Generator().manual_seed(2), dtype=torch.float64), dim=1
    )
    votes = _votes(6, 3)
    loss = HellingerMatchingLoss(squared=squared)(emb, votes)
    assert loss.item() == pytest.approx(
        _loop_hellinger_match(emb, votes, math.sqrt(2), squared), rel=1e-9
    )
    assert HellingerMatchingLoss(scale=1.0, squared=squared)(emb, votes).item() == pytest.approx(
        _loop_hellinger_match(emb, votes, 1.0, squared), rel=1e-9
    )


def test_hellinger_matching_zero_for_orthogonal_one_hot_and_learned_scale() -> None:
    emb = torch.eye(16)[:8]
    votes = torch.eye(8) * 10
    assert HellingerMatchingLoss()(emb, votes).item() == pytest.approx(0.0, abs=1e-10)
    learned = HellingerMatchingLoss(scale=None)
    assert len(list(learned.parameters())) == 1
    x = torch.randn(5, 16, requires_grad=True)
    learned(x, _votes(5).float()).backward()
    assert learned.log_scale.grad is not None and torch.isfinite(x.grad).all()
    assert HellingerMatchingLoss()(torch.zeros(1, 4), torch.ones(1, 8)).item() == 0.0
