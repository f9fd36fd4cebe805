"""Applications on the expression embedding (FECNet / FEENet).

Public API::

    compare_images(images, embedder) -> Comparison                 # distances, odd one out
    embed_files(paths, embedder) -> FaceTable                      # one row per face
    search(query_image, index, k=20, ...) -> SearchResult           # expression search
    summarize(embeddings_or_faces, n_clusters=10, method=...) -> Summary
    ExpressionKNN(k=11).fit(emb, labels).predict(emb)              # kNN emotion classifier
    load_reference_set() / build_reference_set(embedder, out_path)  # FER+ kNN set
    Tagger(index).add(name, image); Tagger(index).tag(images)      # reference-face tags
    label_image_faces(paths, embedder, labels="folder") -> LabelledFaces
"""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING, Any

from exprsim.lazy import lazy_attributes

_LAZY = {
    "compare_images": "exprsim.apps.compare",
    "odd_one_out": "exprsim.apps.compare",
    "embed_files": "exprsim.apps.embed",
    "label_image_faces": "exprsim.apps.labels",
    "search": "exprsim.apps.search",
    "SearchResult": "exprsim.apps.search",
    "summarize": "exprsim.apps.summarize",
    "summarize_images": "exprsim.apps.summarize",
    "Summary": "exprsim.apps.summarize",
    "ExpressionKNN": "exprsim.apps.classify",
    "classify_images": "exprsim.apps.classify",
    "build_reference_set": "exprsim.apps.classify",
    "load_reference_set": "exprsim.apps.classify",
    "evaluate_reference": "exprsim.apps.classify",
    "Tagger": "exprsim.apps.tag",
    "calibrate_threshold": "exprsim.apps.tag",
    "calibration_page": "exprsim.apps.tag",
}

__all__ = sorted(_LAZY)

if TYPE_CHECKING:  # pragma: no cover  (what a type checker sees: each name's own type)
    from exprsim.apps.classify import (
        ExpressionKNN as ExpressionKNN,
    )
    from exprsim.apps.classify import (
        build_reference_set as build_reference_set,
    )
    from exprsim.apps.classify import (
        classify_images as classify_images,
    )
    from exprsim.apps.classify import (
        evaluate_reference as evaluate_reference,
    )
    from exprsim.apps.classify import (
        load_reference_set as load_reference_set,
    )
    from exprsim.apps.compare import compare_images as compare_images
    from exprsim.apps.compare import odd_one_out as odd_one_out
    from exprsim.apps.embed import embed_files as embed_files
    from exprsim.apps.labels import label_image_faces as label_image_faces
    from exprsim.apps.search import SearchResult as SearchResult
    from exprsim.apps.search import search as search
    from exprsim.apps.summarize import (
        Summary as Summary,
    )
    from exprsim.apps.summarize import (
        summarize as summarize,
    )
    from exprsim.apps.summarize import (
        summarize_images as summarize_images,
    )
    from exprsim.apps.tag import (
        Tagger as Tagger,
    )
    from exprsim.apps.tag import (
        calibrate_threshold as calibrate_threshold,
    )
    from exprsim.apps.tag import (
        calibration_page as calibration_page,
    )
else:  # a module-level __getattr__ seen by a type checker made every name Any
    __getattr__ = lazy_attributes(__name__, _LAZY)


#: functions named like the submodule that defines them (``exprsim.apps.search.search``)
_SHADOWED = frozenset(n for n, m in _LAZY.items() if m == f"{__name__}.{n}")


class _AppsPackage(types.ModuleType):
    """Keeps ``exprsim.apps.search`` / ``.summarize`` the public functions.

    Importing a submodule binds it on its package under its own name, which would replace
    the function of the same name after the first ``import exprsim.apps.search`` anywhere
    in the process. The submodules stay reachable as ``sys.modules["exprsim.apps.search"]``
    and through ``from exprsim.apps.search import ...``.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _SHADOWED and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _AppsPackage
