"""Learners as registered recipes: a name, a frozen config class and a train function.

``exprsim train --config FILE`` reads the JSON object, takes its ``"recipe"`` (or the older
``"kind"``) key, default ``"ferplus"``, and calls :func:`train_from_dict`. ``exprsim models``
lists :func:`recipes`.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exprsim.config import from_dict
from exprsim.errors import ArgumentError


@dataclass(frozen=True)
class Recipe:
    """A learner.

    Attributes:
        name: the ``recipe`` value of a config file.
        config: ``"module:Class"`` of its frozen config dataclass.
        train: ``"module:function"``, called as ``train(cfg, out_dir, progress=...)``; it
            returns a result with ``out_dir`` and ``seconds``.
        description: one line for ``exprsim models``.
        length_field: the config field that sets how long it runs (``epochs``,
            ``iterations`` or ``levels``), overridable from the command line.
        fixed: config fields this recipe always sets (e.g. ``objective="sgm"``).
    """

    name: str
    config: str
    train: str
    description: str
    length_field: str = "epochs"
    fixed: tuple[tuple[str, Any], ...] = ()

    def config_class(self) -> type[Any]:
        return _resolve(self.config)

    def train_function(self) -> Callable[..., Any]:
        return _resolve(self.train)


def _resolve(ref: str) -> Any:
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


_RECIPES: dict[str, Recipe] = {}


def register_recipe(recipe: Recipe) -> Recipe:
    if recipe.name in _RECIPES:
        raise ArgumentError(f"recipe {recipe.name!r} is already registered")
    _RECIPES[recipe.name] = recipe
    return recipe


def recipes() -> list[Recipe]:
    """Every registered learner, by name."""
    return [_RECIPES[k] for k in sorted(_RECIPES)]


def get_recipe(name: str) -> Recipe:
    try:
        return _RECIPES[name]
    except KeyError:
        raise ArgumentError(
            f"unknown recipe {name!r}; expected one of {', '.join(sorted(_RECIPES))}"
        ) from None


def config_from_dict(data: dict[str, Any]) -> tuple[Recipe, Any]:
    """``(recipe, config)`` from a config file's JSON object (``recipe`` / ``kind`` key).

    Raises:
        ValueError: unknown recipe, unknown keys or values of the wrong type.
    """
    raw = dict(data)
    name = raw.pop("recipe", None)
    if name is None:
        name = raw.get("kind", "ferplus")
    if not isinstance(name, str):
        raise ArgumentError(f"recipe (or kind) must be a string, got {name!r}")
    recipe = get_recipe(name)
    cls = recipe.config_class()
    names = {f.name for f in dataclasses.fields(cls)}
    if "kind" in raw and "kind" not in names:
        raw.pop("kind")
    for key, value in recipe.fixed:
        if raw.get(key, value) != value:
            raise ArgumentError(f"recipe {recipe.name!r} needs {key}={value!r}, got {raw[key]!r}")
        raw[key] = value
    return recipe, from_dict(cls, raw)


def train_from_dict(
    data: dict[str, Any],
    out_dir: str | Path,
    progress: bool = True,
    length: int | None = None,
    device: str | None = None,
) -> Any:
    """Train the recipe a config file describes; ``length`` overrides its epochs/iterations,
    ``device`` where it trains (recipes with a ``device`` setting only)."""
    recipe, cfg = config_from_dict(data)
    if length is not None:
        cfg = dataclasses.replace(cfg, **{recipe.length_field: length})
    if device is not None:
        cfg = _on_device(recipe.name, cfg, device)
    return recipe.train_function()(cfg, out_dir, progress=progress)


def _on_device(name: str, cfg: Any, device: str) -> Any:
    """``cfg`` set to train on ``device``: its ``device``, or its ``base`` training's
    (``sgm-subspaces``); a recipe without one trains on the CPU (``cpu`` is then taken as
    it is, anything else refused in one line)."""
    fields = {f.name for f in dataclasses.fields(cfg)}
    if "device" in fields:
        return dataclasses.replace(cfg, device=device)
    base: Any = getattr(cfg, "base", None)
    if "base" in fields and hasattr(base, "device") and not isinstance(base, type):
        return dataclasses.replace(cfg, base=dataclasses.replace(base, device=device))
    if device == "cpu":
        return cfg
    raise ArgumentError(f"recipe {name!r} trains on the CPU only (no device setting)")


for _r in (
    Recipe(
        "ferplus",
        "exprsim.training.ferplus:TrainConfig",
        "exprsim.training.ferplus:train",
        "FER+ vote learner: KL to the vote distribution + Hellinger pair / FEC triplet terms "
        "(objective 'sgm': the SGM loss) on FER2013 crops; the default model's recipe",
    ),
    Recipe(
        "ensemble",
        "exprsim.training.ensemble:EnsembleTrainConfig",
        "exprsim.training.ensemble:train_ensemble",
        "several ferplus runs, one per seed and on the same hold-out, composed into one "
        "exprnet_ens model (readout chosen on validation)",
    ),
    Recipe(
        "sgm-subspaces",
        "exprsim.training.sgm:SubspaceTrainConfig",
        "exprsim.training.sgm:train_subspaces",
        "SGM + sub-classes (Algorithm 2): SGM training levels 1..L, each class split by EM "
        "into l Gaussian sub-classes between levels",
        length_field="levels",
    ),
    Recipe(
        "fec",
        "exprsim.training.fec:FECTrainConfig",
        "exprsim.training.fec:train_fec",
        "FECNet / FEENet: two-hinge triplet loss on FEC crowd triplets",
        length_field="iterations",
    ),
    Recipe(
        "pvae",
        "exprsim.training.pvae:PVAETrainConfig",
        "exprsim.training.pvae:train_pvae",
        "perceptual VAE (VAE, M1, M2) on face-mesh landmarks of FER+ faces",
        length_field="iterations",
    ),
):
    register_recipe(_r)
