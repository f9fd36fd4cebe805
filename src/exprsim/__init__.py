"""exprsim: facial expression similarity.

Every face gets a compact 16-d, L2-normalised expression embedding in which
near means "these expressions look alike", whatever the identity, pose or
lighting (FECNet, CVPR 2019; FEENet). Importing this package is cheap and has no
side effects: heavy modules (torch, mediapipe, OpenCV) load on first use.

Public API::

    exprsim.load_model(name="default") -> Embedder
    exprsim.create_detector(name=DEFAULT_DETECTOR) -> Detector   ("mediapipe")
    exprsim.list_detectors() -> list[str]
    exprsim.create_model(name, embedding_dim=16) -> torch.nn.Module
    exprsim.list_models() -> list[str]
    exprsim.load_image(path) -> (H, W, 3) uint8 RGB
    exprsim.shutdown_workers()   hand back the face front-end's worker threads
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from exprsim.lazy import lazy_attributes

__version__ = "0.1.0"  # the one version: pyproject.toml reads it ([tool.setuptools.dynamic])

# public name -> module that defines it (imported on first attribute access)
_LAZY = {
    "load_image": "exprsim.io",
    "ImageError": "exprsim.errors",
    "ExprsimError": "exprsim.errors",
    "Face": "exprsim.faces.types",
    "AlignedFace": "exprsim.faces.types",
    "create_detector": "exprsim.faces.detect",
    "list_detectors": "exprsim.faces.detect",
    "AlignConfig": "exprsim.faces.align",
    "align_face": "exprsim.faces.align",
    "analyze_image": "exprsim.faces.pipeline",
    "create_model": "exprsim.models.registry",
    "list_models": "exprsim.models.registry",
    "load_model": "exprsim.models.embedder",
    "Embedder": "exprsim.models.embedder",
    "FaceEmbedding": "exprsim.models.embedder",
    "shutdown_workers": "exprsim.faces.stream",
}

__all__ = [
    "AlignConfig",
    "AlignedFace",
    "Embedder",
    "ExprsimError",
    "Face",
    "FaceEmbedding",
    "ImageError",
    "__version__",
    "align_face",
    "analyze_image",
    "create_detector",
    "create_model",
    "list_detectors",
    "list_models",
    "load_image",
    "load_model",
    "shutdown_workers",
]

if TYPE_CHECKING:  # pragma: no cover
    from exprsim.errors import ExprsimError, ImageError
    from exprsim.faces.align import AlignConfig, align_face
    from exprsim.faces.detect import create_detector, list_detectors
    from exprsim.faces.pipeline import analyze_image
    from exprsim.faces.stream import shutdown_workers
    from exprsim.faces.types import AlignedFace, Face
    from exprsim.io import load_image
    from exprsim.models.embedder import Embedder, FaceEmbedding, load_model
    from exprsim.models.registry import create_model, list_models


if not TYPE_CHECKING:  # seen by a type checker, it made a misspelt name (load_modle) Any
    __getattr__ = lazy_attributes(__name__, _LAZY, globals())


def __dir__() -> list[str]:
    return __all__
