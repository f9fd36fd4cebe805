"""Value equality for dataclasses that hold NumPy arrays: :func:`array_equality`.

A dataclass's own ``==`` compares its fields as a tuple, and a tuple comparison asks
``bool(a == b)`` of two arrays, which raises "the truth value of an array ... is
ambiguous": ``result in results``, ``results.index(result)`` and ``a == b`` on a pickled
copy (a result back from a worker process) all failed.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")


def same_value(a: Any, b: Any) -> bool:
    """Whether ``a`` and ``b`` hold the same value: arrays of one shape and dtype with equal
    elements (NaN equal to NaN), pandas objects by ``equals``, lists, tuples and dicts item
    by item, and anything else by ``==`` (two float NaNs are the same)."""
    if a is b:
        return True
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (
            isinstance(a, np.ndarray)
            and isinstance(b, np.ndarray)
            and a.shape == b.shape
            and a.dtype == b.dtype
            and bool(np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))
        )
    if isinstance(a, list | tuple) or isinstance(b, list | tuple):
        return (
            type(a) is type(b)
            and len(a) == len(b)
            and all(same_value(x, y) for x, y in zip(a, b, strict=True))
        )
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    if type(a).__module__.startswith("pandas") and hasattr(a, "equals"):
        return type(a) is type(b) and bool(a.equals(b))
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:
        return True
    result = a == b
    return result if isinstance(result, bool) else bool(np.all(result))


def array_equality(cls: type[T]) -> type[T]:
    """Give the dataclass ``cls`` (put above ``@dataclass``) an ``==`` that compares its
    fields with :func:`same_value`; its instances stay unhashable, as arrays are."""

    def __eq__(self: Any, other: Any) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return all(
            same_value(getattr(self, f.name), getattr(other, f.name))
            for f in dataclasses.fields(self)
            if f.compare
        )

    cls.__eq__ = __eq__  # type: ignore[method-assign]
    cls.__hash__ = None  # type: ignore[assignment]
    return cls
