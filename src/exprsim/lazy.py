"""Names a package exports without importing their modules until first use."""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping
from importlib import import_module
from typing import Any


def lazy_attributes(
    package: str, lazy: Mapping[str, str], cache: MutableMapping[str, Any] | None = None
) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: each name of ``lazy`` (name -> the module
    that defines it) imported on first access (kept in ``cache``, the package's
    ``globals()``, when given); any other name is an ``AttributeError``.

    Define it under ``if not TYPE_CHECKING:`` and import the names for type checkers under
    ``if TYPE_CHECKING:``: a ``__getattr__`` a type checker sees makes every name ``Any``."""

    def __getattr__(name: str) -> Any:
        module = lazy.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(module), name)
        if cache is not None:
            cache[name] = value
        return value

    return __getattr__
