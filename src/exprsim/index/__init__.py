"""Face index: faces + embeddings in SQLite (with an ANN cache beside it) or PostgreSQL + pgvector.

Public API::

    FaceIndex(db_path_or_postgresql_uri, embedder=None).add(paths) -> AddReport
    FaceIndex.add_table(dataframe) -> LoadReport      (bulk load, e.g. `exprsim embed` output)
    FaceIndex.query(embeddings, k) -> (distances, face_ids)
    build_index(vectors, ids, backend="auto") -> AnnIndex
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from exprsim.lazy import lazy_attributes

_LAZY = {
    "FaceIndex": "exprsim.index.store",
    "FaceRecord": "exprsim.index.store",
    "AddInterrupted": "exprsim.index.store",
    "TagReferencesChanged": "exprsim.index.store",
    "AddReport": "exprsim.index.store",
    "IndexInfo": "exprsim.index.store",
    "ModelMismatchError": "exprsim.index.store",
    "LoadReport": "exprsim.index.store",
    "ReembedError": "exprsim.index.reembed",
    "ReembedReport": "exprsim.index.reembed",
    "build_index": "exprsim.index.ann",
    "load_index": "exprsim.index.ann",
}

__all__ = sorted(_LAZY)

if TYPE_CHECKING:  # pragma: no cover  (what a type checker sees: each name's own type)
    from exprsim.index.ann import build_index as build_index
    from exprsim.index.ann import load_index as load_index
    from exprsim.index.reembed import ReembedError as ReembedError
    from exprsim.index.reembed import ReembedReport as ReembedReport
    from exprsim.index.store import (
        AddInterrupted as AddInterrupted,
    )
    from exprsim.index.store import (
        AddReport as AddReport,
    )
    from exprsim.index.store import (
        FaceIndex as FaceIndex,
    )
    from exprsim.index.store import (
        FaceRecord as FaceRecord,
    )
    from exprsim.index.store import (
        IndexInfo as IndexInfo,
    )
    from exprsim.index.store import (
        LoadReport as LoadReport,
    )
    from exprsim.index.store import (
        ModelMismatchError as ModelMismatchError,
    )
    from exprsim.index.store import (
        TagReferencesChanged as TagReferencesChanged,
    )
else:  # a module-level __getattr__ seen by a type checker made every name Any
    __getattr__ = lazy_attributes(__name__, _LAZY)
