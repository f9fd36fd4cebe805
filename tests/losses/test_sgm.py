"""SGM loss against a slow, obviously-correct loop over the paper's formulas."""

from __future__ import annotations

import math

import pytest
import torch

from exprsim.losses import SGM_SIGMA, SGMLoss, sgm_posterior, sgm_terms


def _loop_loss(emb, target, sigma, norm_weight, norm_emb=None):
    """eq. 1-4 + Algorithm 1 step 6, one face and one class at a time (plain Python floats)."""
    z = emb.tolist()
    n, d = len(z), len(z[0])
    if target.ndim == 1:
        labels = [int(t) for t in target]
        classes = sorted(set(labels))
        true = [[1.0 if labels[i] == c else 0.0 for c in classes] for i in range(n)]
    else:
        t = target.tolist()
        labels = [max(range(len(row)), key=lambda j, row=row: row[j]) for row in t]
        classes = sorted(set(labels))
        true = []
        for row in t:
            s = sum(row[c] for c in classes)
            true.append([row[c] / s for c in classes])
    means = []
    for c in classes:
        members = [z[i] for i in range(n) if labels[i] == c]
        means.append([sum(m[k] for m in members) / len(members) for k in range(d)])
    rep = 0.0
    for i in range(n):
        # Gaussian densities (eq. 3) with equal priors, then Bayes' rule (eq. 1)
        dens = []
        for mu in means:
            sq = sum((z[i][k] - mu[k]) ** 2 for k in range(d))
            dens.append(math.exp(-sq / (2 * sigma**2)) / (math.sqrt((2 * math.pi) ** d) * sigma))
        post = [p / sum(dens) for p in dens]
        rep += sum((post[j] - true[i][j]) ** 2 for j in range(len(classes)))
    rep /= n
    ne = (emb if norm_emb is None else norm_emb).tolist()
    norm = sum(math.sqrt(sum(v * v for v in row)) for row in ne) / n
    return rep + norm_weight * norm, rep, norm


def _batch(seed=0, n=24, dim=5, n_classes=4, normalise=False):
    g = torch.Generator().manual_seed(seed)
    emb = torch.randn(n, dim, generator=g, dtype=torch.float64) * 0.6
    if normalise:
        emb = torch.nn.functional.normalize(emb, dim=1)
    labels = torch.randint(0, n_classes, (n,), generator=g)
    votes = torch.rand(n, n_classes + 2, generator=g, dtype=torch.float64) ** 3
    votes = votes / votes.sum(1, keepdim=True)
    return emb, labels, votes


@pytest.mark.parametrize("soft", [False, True])
@pytest.mark.parametrize("sigma", [0.5, 1.3])
def test_matches_loop(soft: bool, sigma: float) -> None:
    emb, labels, votes = _batch()
    target = votes if soft else labels
    ref, ref_rep, ref_norm = _loop_loss(emb, target, sigma, 1.0)
    terms = sgm_terms(emb, target, sigma=sigma)
    assert terms.rep.item() == pytest.approx(ref_rep, rel=1e-9, abs=1e-12)
    assert terms.norm.item() == pytest.approx(ref_norm, rel=1e-12)
    assert SGMLoss(sigma)(emb, target).item() == pytest.approx(ref, rel=1e-9)
    assert SGMLoss(sigma, norm_weight=0.0)(emb, target).item() == pytest.approx(ref_rep, rel=1e-9)


def test_missing_classes_and_norm_embedding() -> None:
    # labels use classes {1, 3, 7} only: posteriors live over the present classes
    emb, _, _ = _batch(1, n=12)
    labels = torch.tensor([1, 3, 7] * 4)
    raw = emb * 3.0
    ref, _, ref_norm = _loop_loss(emb, labels, SGM_SIGMA, 0.5, norm_emb=raw)
    terms = SGMLoss(norm_weight=0.5).terms(emb, labels, norm_emb=raw)
    assert terms.n_classes == 3
    assert terms.norm.item() == pytest.approx(ref_norm)
    assert terms.loss.item() == pytest.approx(ref)


def test_normalised_embedding_norm_term_is_constant() -> None:
    emb, labels, _ = _batch(2, normalise=True)
    emb.requires_grad_(True)
    terms = sgm_terms(emb, labels)
    assert terms.norm.item() == pytest.approx(1.0)
    (g,) = torch.autograd.grad(terms.norm, emb)
    # the gradient of |z| is radial; on the sphere it is removed by the normalisation
    assert torch.allclose(g, emb.detach() / len(emb), atol=1e-12)


def test_posterior_rows_and_separated_clusters() -> None:
    means = torch.tensor([[0.0, 0.0], [3.0, 0.0]], dtype=torch.float64)
    emb = torch.tensor([[0.1, 0.0], [2.9, 0.1]], dtype=torch.float64)
    post = sgm_posterior(emb, means)
    assert torch.allclose(post.sum(1), torch.ones(2, dtype=torch.float64))
    assert post[0, 0] > 0.999 and post[1, 1] > 0.999
    # well separated classes at their means: loss ~ mean norm only
    z = torch.tensor([[0.0, 0.0]] * 3 + [[3.0, 0.0]] * 3, dtype=torch.float64)
    t = sgm_terms(z, torch.tensor([0, 0, 0, 1, 1, 1]))
    assert t.rep.item() < 1e-10


def test_gradient_matches_finite_differences() -> None:
    emb, labels, votes = _batch(3, n=10, dim=3, n_classes=3)
    for target in (labels, votes):
        x = emb.clone().requires_grad_(True)
        assert torch.autograd.gradcheck(lambda e, t=target: SGMLoss()(e, t), (x,))


def test_gradient_descent_separates_classes() -> None:
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(4).repeat_interleave(8)
    emb = torch.randn(32, 4, generator=g).requires_grad_(True)
    opt = torch.optim.SGD([emb], lr=0.5)
    loss_fn = SGMLoss(norm_weight=0.0)
    first = float(loss_fn(emb, labels).detach())
    for _ in range(100):
        opt.zero_grad()
        loss = loss_fn(emb, labels)
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.2 * first


def test_bad_shapes() -> None:
    with pytest.raises(ValueError):
        sgm_terms(torch.zeros(3), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError):
        SGMLoss(sigma=0.0)
