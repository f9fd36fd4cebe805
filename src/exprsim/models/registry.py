"""Registry of embedding networks (timm-style).

Register a builder with :func:`register_model`; build with :func:`create_model`.
Every registered model maps an input batch ``(N, C, H, W)`` float32 to an
``(N, embedding_dim)`` float32 L2-normalised embedding (``C`` and ``H, W`` are given by
the model's :class:`ModelSpec`).
"""

from __future__ import annotations

import fnmatch
import threading
from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module
from typing import Any

from exprsim.errors import ModelError, require_positive_int

# modules whose import registers models (imported lazily, on first registry use)
_MODEL_MODULES = (
    "exprsim.models.default",
    "exprsim.models.vgg",
    "exprsim.models.ensemble",
    "exprsim.models.densenet",
    "exprsim.models.fecnet",
    "exprsim.models.efficientnet",
)


@dataclass(frozen=True)
class ModelSpec:
    """What a network expects as input.

    Attributes:
        in_channels: 1 (gray) or 3 (RGB).
        input_size: square side in pixels the network is built for.
        description: one line for ``exprsim models``.
    """

    in_channels: int
    input_size: int
    description: str


_REGISTRY: dict[str, tuple[Callable[..., Any], ModelSpec]] = {}
_loaded = False


def register_model(
    name: str, *, in_channels: int, input_size: int, description: str
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator registering ``builder(embedding_dim=16, **kwargs) -> nn.Module`` as ``name``."""

    def deco(builder: Callable[..., Any]) -> Callable[..., Any]:
        if name in _REGISTRY:
            raise ModelError(f"model {name!r} registered twice")
        _REGISTRY[name] = (builder, ModelSpec(in_channels, input_size, description))
        return builder

    return deco


def _ensure_loaded() -> None:
    """Import the model modules (which register their models) once; threads that ask
    meanwhile wait for them (a registry seen half filled said "unknown model")."""
    global _loaded
    if _loaded:
        return
    with _LOAD_LOCK:
        if not _loaded:
            for mod in _MODEL_MODULES:
                import_module(mod)
            _loaded = True


_LOAD_LOCK = threading.Lock()


def list_models(pattern: str = "*") -> list[str]:
    """Names of registered models matching a glob ``pattern``, sorted."""
    _ensure_loaded()
    return sorted(n for n in _REGISTRY if fnmatch.fnmatch(n, pattern))


def model_spec(name: str) -> ModelSpec:
    """Input spec of a registered model."""
    _ensure_loaded()
    if name not in _REGISTRY:
        raise ModelError(f"unknown model {name!r}; registered: {', '.join(list_models())}")
    return _REGISTRY[name][1]


def create_model(name: str, embedding_dim: int = 16, **kwargs: Any) -> Any:
    """Build a registered network (random init) returning L2-normalised ``(N, embedding_dim)``."""
    _ensure_loaded()
    if name not in _REGISTRY:
        raise ModelError(f"unknown model {name!r}; registered: {', '.join(list_models())}")
    embedding_dim = require_positive_int(embedding_dim, "embedding_dim", ModelError)
    builder, _ = _REGISTRY[name]
    return builder(embedding_dim=embedding_dim, **kwargs)
