"""Distance helpers shared by the library (apps, report, metrics) and training (losses,
the vote-triplet miner).

Every function works on numpy arrays *and* torch tensors (duck-typed: only operators and
methods both libraries share are used), so training, mining and evaluation measure distance
with the same formulas. This module imports neither torch nor numpy at import time.

Conventions: ``x`` is ``(N, D)``, ``y`` is ``(M, D)``; row-wise functions take two arrays of
the same shape ``(..., D)`` and return ``(...)``. Integer and boolean inputs are measured
in float64 (in their own type, ``uint8`` differences wrap around modulo 256).
"""

from __future__ import annotations

from typing import Any

#: Clamp applied under square roots so the gradient of ``sqrt`` stays finite at 0.
SQRT_EPS = 1e-12

Array = Any  # np.ndarray | torch.Tensor


def _real(x: Array) -> Array:
    """``x``, or as float64 when it holds integers or booleans (NumPy or torch)."""
    kind = getattr(getattr(x, "dtype", None), "kind", None)
    if kind is not None:  # NumPy
        return x.astype("float64") if kind in "iub" else x
    if hasattr(x, "is_floating_point") and not (x.is_floating_point() or x.is_complex()):
        return x.double()
    return x


def squared_l2(a: Array, b: Array) -> Array:
    """Row-wise squared Euclidean distance ``||a - b||^2``: ``(..., D), (..., D) -> (...)``."""
    diff = _real(a) - _real(b)
    return (diff * diff).sum(-1)


def l2(a: Array, b: Array, eps: float = SQRT_EPS) -> Array:
    """Row-wise Euclidean distance ``||a - b||``; ``eps`` clamps under the root (finite grads)."""
    return squared_l2(a, b).clip(min=eps) ** 0.5


def _row_norm_sq(x: Array) -> Array:  # of a float array (callers convert with _real)
    return (x * x).sum(-1)


def pairwise_squared_l2(x: Array, y: Array | None = None) -> Array:
    """All-pairs squared Euclidean distances ``(N, D), (M, D) -> (N, M)`` (``y=None``: ``x``).

    Uses ``|x|^2 + |y|^2 - 2 x.y`` and clamps the result at 0 (cancellation can make it
    slightly negative). The diagonal of ``pairwise_squared_l2(x)`` is set to exactly 0.
    """
    same = y is None
    x = _real(x)
    y = x if y is None else _real(y)
    d = _row_norm_sq(x)[:, None] + _row_norm_sq(y)[None, :] - 2.0 * (x @ y.T)
    d = d.clip(min=0.0)
    if same:
        idx = list(range(d.shape[0]))
        d[idx, idx] = 0.0
    return d


def pairwise_l2(x: Array, y: Array | None = None, eps: float = SQRT_EPS) -> Array:
    """All-pairs Euclidean distances ``(N, D), (M, D) -> (N, M)``; see :func:`pairwise_squared_l2`."""
    return pairwise_squared_l2(x, y).clip(min=eps) ** 0.5


def l2_normalize(x: Array, eps: float = SQRT_EPS) -> Array:
    """Rows scaled to unit L2 norm: ``(N, D) -> (N, D)`` (zero rows stay ~0)."""
    x = _real(x)
    return x / (_row_norm_sq(x)[..., None].clip(min=eps) ** 0.5)


def cosine_similarity(a: Array, b: Array) -> Array:
    """Row-wise cosine similarity ``(..., D), (..., D) -> (...)``."""
    return (l2_normalize(a) * l2_normalize(b)).sum(-1)


def cosine_distance(a: Array, b: Array) -> Array:
    """Row-wise cosine distance ``1 - cos``, in ``[0, 2]`` (rounding kept inside it)."""
    return (1.0 - cosine_similarity(a, b)).clip(min=0.0, max=2.0)


def pairwise_cosine_distance(x: Array, y: Array | None = None) -> Array:
    """All-pairs cosine distance ``1 - cos``: ``(N, D), (M, D) -> (N, M)``, in ``[0, 2]``
    (rounding kept inside it)."""
    xn = l2_normalize(x)
    yn = xn if y is None else l2_normalize(y)
    return (1.0 - xn @ yn.T).clip(min=0.0, max=2.0)


def hellinger(p: Array, q: Array) -> Array:
    """Row-wise Hellinger distance between distributions, in ``[0, 1]``.

    ``H(p, q) = ||sqrt(p) - sqrt(q)|| / sqrt(2)``; ``p, q``: ``(..., C)`` non-negative rows
    summing to 1.
    """
    return squared_l2(p.clip(min=0.0) ** 0.5, q.clip(min=0.0) ** 0.5).clip(min=0.0) ** 0.5 * (
        0.5**0.5
    )


def pairwise_hellinger(p: Array, q: Array | None = None) -> Array:
    """All-pairs Hellinger distances ``(N, C), (M, C) -> (N, M)`` in ``[0, 1]``."""
    sp = p.clip(min=0.0) ** 0.5
    sq = None if q is None else q.clip(min=0.0) ** 0.5
    return pairwise_squared_l2(sp, sq).clip(min=0.0) ** 0.5 * (0.5**0.5)
