"""Value equality of results that hold arrays (exprsim.equality), against the fields
compared one by one."""

from __future__ import annotations

import copy
import dataclasses
import importlib
import inspect
import pickle
import pkgutil

import numpy as np
import pandas as pd
import pytest

import exprsim
from exprsim.equality import array_equality, same_value

#: parts of the package that are not the library (CLI, training) or start services
_NOT_SCANNED = ("exprsim.cli", "exprsim.training", "exprsim.losses", "exprsim.__main__")


def _library_dataclasses() -> list[type]:
    found = []
    for info in pkgutil.walk_packages(exprsim.__path__, "exprsim."):
        if info.name.startswith(_NOT_SCANNED):
            continue
        try:
            module = importlib.import_module(info.name)
        except ImportError:  # an optional extra that is not installed
            continue
        for obj in vars(module).values():
            ours = inspect.isclass(obj) and obj.__module__ == module.__name__
            if ours and dataclasses.is_dataclass(obj):
                found.append(obj)
    return found


def test_every_dataclass_holding_arrays_compares_them_whole() -> None:
    """A dataclass with an array field and the generated ``==`` raises on equal leading
    fields; each must use array_equality (or ``eq=False``, or be private)."""
    plain = []
    for cls in _library_dataclasses():
        arrays = [f for f in dataclasses.fields(cls) if "ndarray" in str(f.type)]
        private = cls.__name__.startswith("_")
        generated = getattr(cls.__eq__, "__module__", None) != "exprsim.equality"
        if arrays and cls.__dataclass_params__.eq and not private and generated:  # type: ignore[attr-defined]
            plain.append(f"{cls.__module__}.{cls.__name__}")
    assert plain == []


def test_same_value_against_field_by_field_checks() -> None:
    a = np.array([1.0, np.nan])
    assert same_value(a, a.copy()) and not same_value(a, np.array([1.0, 2.0]))
    assert not same_value(a, a.astype(np.float32))  # dtype is part of the value
    assert not same_value(np.zeros(2), np.zeros((1, 2))) and not same_value(a, [1.0, np.nan])
    assert same_value([a, {"k": (1, a)}], [a.copy(), {"k": (1, a.copy())}])
    assert not same_value([1], (1,)) and same_value(float("nan"), float("nan"))
    frame = pd.DataFrame({"x": [1.0, np.nan]})
    assert same_value(frame, frame.copy()) and not same_value(frame, frame.fillna(0))


def test_results_compare_and_are_found_in_lists_after_a_round_trip() -> None:
    """Before: ``==`` raised "The truth value of an array ... is ambiguous" for
    FaceEmbedding, Face, AlignedFace and other results; ``in`` and ``index`` with them."""
    from exprsim.samples import sample_path

    model = exprsim.load_model()
    faces = model.embed_images([sample_path("grace_hopper.jpg")])
    faces += model.embed_images([sample_path("astronaut_eileen_collins.jpg")])
    assert len(faces) == 2
    back = pickle.loads(pickle.dumps(faces))
    assert back == faces and copy.deepcopy(faces[1]) == faces[1]
    assert back[1] in faces and faces.index(back[1]) == 1
    assert faces[0] != faces[1] and faces[0].aligned.face != faces[1].aligned.face
    moved = dataclasses.replace(faces[0], embedding=faces[0].embedding + 0)
    moved.embedding[0] += 1e-3
    assert moved != faces[0]
    with pytest.raises(TypeError, match="unhashable"):
        hash(faces[0])


def test_a_decorated_class_leaves_other_types_to_them() -> None:
    @array_equality
    @dataclasses.dataclass(frozen=True)
    class Box:
        xy: np.ndarray
        note: str = dataclasses.field(default="", compare=False)

    assert Box(np.ones(2), "a") == Box(np.ones(2), "b")  # compare=False is honoured
    assert Box(np.ones(2)) != Box(np.zeros(2)) and Box(np.ones(2)) != (np.ones(2),)
