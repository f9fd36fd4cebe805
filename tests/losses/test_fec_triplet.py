"""FEC two-hinge triplet loss against a slow, obviously-correct loop."""

from __future__ import annotations

import math

import pytest
import torch

from exprsim.losses import FEC_MARGINS, FECTripletLoss, fec_triplet_loss


def _loop_loss(e1, e2, e3, odd, ttype, margins, squared):
    total = []
    for b in range(e1.shape[0]):
        faces = [e1[b].tolist(), e2[b].tolist(), e3[b].tolist()]
        o = int(odd[b])
        pa, pb = [p for p in range(3) if p != o]
        a, bb, c = faces[pa], faces[pb], faces[o]

        def d(u, v):
            s = sum((ui - vi) ** 2 for ui, vi in zip(u, v, strict=True))
            return s if squared else math.sqrt(s)

        m = margins[int(ttype[b])]
        total.append(max(0.0, d(a, bb) - d(a, c) + m) + max(0.0, d(a, bb) - d(bb, c) + m))
    return total


def _batch(seed: int = 0, n: int = 32, dim: int = 16):
    g = torch.Generator().manual_seed(seed)
    e = [
        torch.nn.functional.normalize(torch.randn(n, dim, generator=g, dtype=torch.float64), dim=1)
        for _ in range(3)
    ]
    odd = torch.randint(0, 3, (n,), generator=g)
    ttype = torch.randint(0, 3, (n,), generator=g)
    return (*e, odd, ttype)


@pytest.mark.parametrize("squared", [False, True])
def test_matches_loop(squared: bool) -> None:
    e1, e2, e3, odd, ttype = _batch()
    margins = (0.1, 0.2, 0.2)
    ref = _loop_loss(e1, e2, e3, odd, ttype, margins, squared)
    loss = FECTripletLoss(squared=squared)
    per = loss(e1, e2, e3, odd, ttype, per_sample=True)
    assert per.shape == (32,)
    assert torch.allclose(per, torch.tensor(ref, dtype=per.dtype), atol=1e-9)
    assert loss(e1, e2, e3, odd, ttype).item() == pytest.approx(sum(ref) / len(ref))
    assert FECTripletLoss(squared=squared, reduction="sum")(
        e1, e2, e3, odd, ttype
    ).item() == pytest.approx(sum(ref))


def test_margins_depend_on_type() -> None:
    # identical embeddings: every distance is 0, so each hinge equals the margin
    e = torch.zeros(3, 4)
    ttype = torch.tensor([0, 1, 2])
    per = FECTripletLoss()(e, e, e, torch.zeros(3, dtype=torch.long), ttype, per_sample=True)
    assert torch.allclose(per, torch.tensor([0.2, 0.4, 0.4]))
    per = FECTripletLoss({"one": 0.3, "two": 0.0, "three": 0.5})(
        e, e, e, torch.zeros(3, dtype=torch.long), ttype, per_sample=True
    )
    assert torch.allclose(per, torch.tensor([0.6, 0.0, 1.0]))
    assert FEC_MARGINS == {"one": 0.1, "two": 0.2, "three": 0.2}


def test_invariant_to_slot_permutation() -> None:
    e1, e2, e3, odd, ttype = _batch(1)
    base = fec_triplet_loss(e1, e2, e3, odd, ttype, reduction="none")
    # rotate slots: new slot s holds old slot (s + 1) % 3, so the odd position moves by -1
    rotated = fec_triplet_loss(e2, e3, e1, (odd - 1) % 3, ttype, reduction="none")
    assert torch.allclose(base, rotated)
    swapped = fec_triplet_loss(e2, e1, e3, torch.tensor([1, 0, 2])[odd], ttype, reduction="none")
    assert torch.allclose(base, swapped)


def test_zero_when_satisfied_and_positive_when_violated() -> None:
    a = torch.tensor([[1.0, 0.0]])
    c = torch.tensor([[-1.0, 0.0]])
    odd_c = torch.tensor([2])
    one = torch.tensor([0])
    assert FECTripletLoss()(a, a, c, odd_c, one).item() == 0.0
    # label the close pair's member as odd instead: violated
    assert FECTripletLoss()(a, a, c, torch.tensor([0]), one).item() > 1.0


def test_gradient_flows_and_is_finite() -> None:
    e1, _, e3, odd, ttype = _batch(2)
    e1 = e1.clone().requires_grad_(True)
    FECTripletLoss()(e1, e1.detach().clone(), e3, odd, ttype).backward()  # includes zero distances
    assert torch.isfinite(e1.grad).all()
    assert e1.grad.abs().sum() > 0


def test_feenet_variant() -> None:
    loss = FECTripletLoss.feenet()
    assert loss.squared and loss.margins == (0.2, 0.2, 0.2)
    e1, e2, e3, odd, ttype = _batch(3)
    ref = _loop_loss(e1, e2, e3, odd, ttype, (0.2, 0.2, 0.2), True)
    assert loss(e1, e2, e3, odd, ttype).item() == pytest.approx(sum(ref) / len(ref))


def test_bad_inputs() -> None:
    e = torch.zeros(4, 3)
    with pytest.raises(ValueError):
        FECTripletLoss(reduction="max")
    with pytest.raises(ValueError):
        FECTripletLoss(margins=(0.1, 0.2))
    with pytest.raises(ValueError):
        FECTripletLoss(margins={"one": 0.1, "two": 0.2})
    with pytest.raises(ValueError):
        FECTripletLoss()(
            e,
            e,
            torch.zeros(4, 2),
            torch.zeros(4, dtype=torch.long),
            torch.zeros(4, dtype=torch.long),
        )
    with pytest.raises(ValueError):
        FECTripletLoss()(
            e, e, e, torch.zeros(3, dtype=torch.long), torch.zeros(4, dtype=torch.long)
        )
