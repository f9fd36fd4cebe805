"""Frozen-dataclass configs <-> JSON (saved beside every checkpoint)."""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from exprsim.errors import ArgumentError

T = TypeVar("T")


def to_dict(cfg: Any) -> dict[str, Any]:
    """A (nested) dataclass as a JSON-ready dict."""
    return dataclasses.asdict(cfg)


def config_hash(cfg: Any) -> int:
    """A hash of a frozen config dataclass that holds dicts (``model_kwargs``): of its
    :func:`to_dict` made hashable, so equal configs hash alike (the generated hash raised
    "unhashable type: 'dict'": no config as a key of a sweep's results)."""
    return hash(_frozen(to_dict(cfg)))


def _frozen(value: Any) -> Any:
    """``value`` with its dicts and lists made hashable (Python's own hashes then keep
    ``1 == 1.0`` and ``0.0 == -0.0`` hashing alike, as JSON text did not)."""
    if isinstance(value, dict):
        return frozenset((k, _frozen(v)) for k, v in value.items())
    if isinstance(value, list | tuple):
        return tuple(_frozen(v) for v in value)
    try:
        hash(value)
    except TypeError:
        return repr(value)
    return value


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(tp: Any, value: Any, where: str) -> Any:
    """``value`` as type ``tp`` (nested dataclasses from dicts, tuples from lists), checked.

    Raises:
        ValueError: naming ``where`` (``Class.field``) when the value has the wrong type.
    """
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):  # type: ignore[arg-type]
            return value
        if isinstance(value, dict):
            return from_dict(tp, value)  # type: ignore[arg-type]
        raise ArgumentError(
            f"{where}: expected an object of {_type_name(tp)} fields, got {value!r}"
        )
    if origin in (typing.Union, types.UnionType):
        errors = []
        for arg in typing.get_args(tp):
            if arg is type(None):
                if value is None:
                    return None
                continue
            try:
                return _coerce(arg, value, where)
            except ValueError as exc:
                errors.append(str(exc))
        raise ArgumentError(
            errors[0] if len(errors) == 1 else f"{where}: unexpected value {value!r}"
        )
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ArgumentError(f"{where}: expected a list, got {value!r}")
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        if args and len(args) != len(value):
            raise ArgumentError(f"{where}: expected {len(args)} values, got {len(value)}")
        if not args:
            return tuple(value)
        return tuple(
            _coerce(t, v, f"{where}[{i}]") for i, (t, v) in enumerate(zip(args, value, strict=True))
        )
    if origin in (list, dict) or tp in (list, dict):
        want = origin or tp
        if not isinstance(value, want):
            raise ArgumentError(f"{where}: expected a {want.__name__}, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ArgumentError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ArgumentError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ArgumentError(f"{where}: expected a number, got {value!r}")
        if not math.isfinite(value):
            raise ArgumentError(f"{where}: expected a finite number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ArgumentError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Build dataclass ``cls`` from a dict, checking every value's type.

    Raises:
        ValueError: ``data`` is not a dict, has unknown keys, or a value of the wrong type
            (the message names the field). Range checks are the config's own business.
    """
    if not isinstance(data, dict):
        raise ArgumentError(f"{cls.__name__}: expected a JSON object, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        raise ArgumentError(f"{cls.__name__}: unknown config keys {unknown}")
    kwargs = {k: _coerce(hints[k], v, f"{cls.__name__}.{k}") for k, v in data.items()}
    try:
        return cls(**kwargs)
    except TypeError as exc:  # e.g. a missing required field
        raise ArgumentError(f"{cls.__name__}: {exc}") from exc


#: the largest training seed (NumPy's legacy seeds are 32-bit; the trainers derive
#: per-epoch and per-step seeds from it that must stay within a 64-bit integer)
MAX_SEED = 2**32 - 1


#: most clusters a summary makes (:func:`exprsim.apps.summarize.summarize`): the linkage
#: clusters at least that many faces at once, with memory growing with their square
#: (20,000: 1.6 GB of distances; 100,000 asked for 40 GB and failed after minutes); here,
#: where the command line checks ``-n`` before any photo is read
MAX_SUMMARY_CLUSTERS = 20_000


def seed_range(seed: int | None) -> tuple[bool, str]:
    """A :func:`check_ranges` entry for a seed: ``None`` passes (a default)."""
    return seed is None or 0 <= seed <= MAX_SEED, f"in [0, {MAX_SEED}]"


def check_ranges(cfg: Any, ranges: dict[str, tuple[bool, str]]) -> None:
    """Refuse the first field of ``cfg`` whose check failed: ``ranges`` maps a field name
    to ``(ok, rule)``, and a failed one raises ``ValueError("<name> must be <rule>, got
    <value>")``."""
    for name, (ok, rule) in ranges.items():
        if not ok:
            raise ArgumentError(f"{name} must be {rule}, got {getattr(cfg, name)!r}")


def save_json(cfg: Any, path: str | Path) -> None:
    """Write ``cfg`` as sorted, indented JSON, whole or not at all (a full disk keeps the
    file there before)."""
    from exprsim.io import write_atomically

    data = (json.dumps(to_dict(cfg), indent=2, sort_keys=True) + "\n").encode()
    write_atomically(path, lambda f: f.write(data))


def load_json(cls: type[T], path: str | Path) -> T:
    return from_dict(cls, json.loads(Path(path).read_text()))
