"""The training side: every learner, and the run folders they share.

* :mod:`exprsim.training.run` — :class:`RunFolder` (config check and save, atomic
  checkpoints, resume, ``metrics.jsonl``, wall time) and :func:`setup_torch` (seed, threads);
* :mod:`exprsim.training.registry` — learners as registered :class:`Recipe` objects;
  ``exprsim train --config`` dispatches on the config's ``recipe``;
* the learners: :mod:`~exprsim.training.ferplus` (FER+ votes; the default model),
  :mod:`~exprsim.training.sgm` (SGM + sub-classes), :mod:`~exprsim.training.fec` (FEC
  triplets), :mod:`~exprsim.training.pvae` (perceptual VAE on landmarks).

The library (faces, models, index, apps, video, report, io, web) never imports this
package; it reads what training writes (``model.safetensors`` + ``config.json``) through
:func:`exprsim.load_model`.
"""

from exprsim.training.registry import (
    Recipe,
    config_from_dict,
    get_recipe,
    recipes,
    register_recipe,
    train_from_dict,
)
from exprsim.training.run import RunFolder, setup_torch

__all__ = [
    "Recipe",
    "RunFolder",
    "config_from_dict",
    "get_recipe",
    "recipes",
    "register_recipe",
    "setup_torch",
    "train_from_dict",
]
