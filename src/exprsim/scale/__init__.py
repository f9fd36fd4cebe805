"""Scale-out helpers: bulk loading Parquet shards into an index, distributed embedding on Ray.

Public API::

    load_parquet(shards, db) -> LoadReport        (``exprsim index add --from-parquet DIR``)
    embed_with_ray(inputs, out_dir, address=None) -> RayEmbedReport
                                                  (``exprsim embed INPUT --engine ray -o DIR``)
                                                  Ctrl-C/SIGTERM: RayEmbedInterrupted

Ray is optional (``pip install 'exprsim[ray]'``) and imported only when
:func:`embed_with_ray` runs.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY = {
    "load_parquet": "exprsim.scale.parquet",
    "parquet_shards": "exprsim.scale.parquet",
    "embed_with_ray": "exprsim.scale.ray_embed",
    "RayEmbedReport": "exprsim.scale.ray_embed",
    "RayEmbedInterrupted": "exprsim.scale.ray_embed",
    "list_inputs": "exprsim.scale.ray_embed",
    "embed_rows": "exprsim.scale.ray_embed",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'exprsim.scale' has no attribute {name!r}")
    return getattr(import_module(module), name)
