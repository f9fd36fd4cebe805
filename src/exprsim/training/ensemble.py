"""Compose trained ``exprnet_v`` runs into one ``exprnet_ens`` model (issue 12).

:func:`compose_ensemble` takes run folders that hold out the same validation faces, fits the
rotations that bring each member's ``e`` block into member 0's frame (orthogonal Procrustes
on the training faces), chooses the readout (which ``e`` blocks, which angle) on the
validation faces with the trainer's rule (:func:`~exprsim.training.ferplus.choose_readout`:
vote triplets + kNN11 against the training faces) and writes ``config.json`` +
``model.safetensors`` loadable by :func:`exprsim.load_model`, with ``ensemble.json``
(members, the validation score of every readout tried, the choice).

:func:`train_ensemble` is the ``"recipe": "ensemble"`` learner of ``exprsim train``: it trains
one ``ferplus`` member per seed (same config, same hold-out) into ``<out>/a``, ``<out>/b``, ...
and composes them into ``<out>``, so that an ensemble is one resumable command
(``configs/quick-ens2.json``).

Nothing here looks at PublicTest.
"""

from __future__ import annotations

import json
import logging
import numbers
import os
import string
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from exprsim.errors import ArgumentError
from exprsim.training.run import exclusive_run

log = logging.getLogger(__name__)

#: readouts tried for the ``e`` block: member 0's alone, or every member's, aligned and averaged
E_MODES = ("first", "aligned")


def procrustes_rotation(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The orthogonal ``R`` (d x d) minimising ``|src @ R - dst|_F`` (``src``, ``dst``: (N, d)).

    Solution (Schoenemann 1966): ``R = U V^T`` for the SVD ``src^T dst = U S V^T``.
    """
    if src.shape != dst.shape or src.ndim != 2:
        raise ArgumentError(f"need two (N, d) arrays of one shape, got {src.shape} and {dst.shape}")
    u, _, vt = np.linalg.svd(src.astype(np.float64).T @ dst.astype(np.float64))
    return (u @ vt).astype(np.float32)


#: what every member must be (the ``e`` + ``p`` readout the ensemble combines)
MEMBER_NEED = "members must be hybrid exprnet_v networks"


def _hybrid_net(model: str, model_kwargs: dict[str, Any]) -> bool:
    return model == "exprnet_v" and model_kwargs.get("readout") == "hybrid"


def _holdout_key(cfg: Any) -> tuple[Any, ...]:
    """What decides a run's validation faces: the faces loaded (data source, ``max_train``)
    and how they are held out (share, split seed, twin filter)."""
    from exprsim.training.ferplus_data import split_seed

    # one folder however it is spelled (a trailing slash, "./", a relative path)
    data_dir = os.path.abspath(os.path.expanduser(cfg.data_dir)) if cfg.data_dir else None
    return (
        cfg.data, data_dir, cfg.max_train, cfg.val_fraction, split_seed(cfg),
        cfg.val_drop_twins,
    )  # fmt: skip


def check_members_data(
    runs: Sequence[str | Path], loaded: tuple[Any, Any, Any], draws: int, angles: Sequence[float]
) -> None:
    """Refuse members trained on other faces than those found now: each member's
    checkpoint keeps the digest of the data it trained on (faces and targets), compared
    with the digest of the data its own config loads here (``loaded``: member 0's
    rescoring config and its data, read once). Not checked: a member without a checkpoint
    or a digest, or one distilled from a teacher (its targets blend the teacher's file).

    Raises:
        ValueError: a member's data differs.
    """
    import json

    from exprsim.config import to_dict
    from exprsim.training.ferplus import load_run_config, rescoring_config
    from exprsim.training.ferplus_data import data_digest, load_data
    from exprsim.training.run import RunFolder

    def key(cfg: Any) -> str:
        return json.dumps(to_dict(cfg), sort_keys=True, default=repr)

    digests = {key(loaded[0]): data_digest(loaded[1], loaded[2])}
    for run in runs:
        state = RunFolder(run).load_state(map_location="cpu")
        kept = None if state is None else state.get("data_digest")
        own = load_run_config(run)
        if not (isinstance(kept, str) and kept) or own.teacher:
            continue
        cfg = rescoring_config(own, draws, angles)
        if key(cfg) not in digests:
            digests[key(cfg)] = data_digest(*load_data(cfg))
        if kept != digests[key(cfg)]:
            raise ArgumentError(
                f"{run}: trained on other faces than the FER+ data found now (another "
                "folder or other files than its training read: EXPRSIM_FER_DIR, data_dir); "
                "the readout would be chosen on faces it may have trained on. Compose with "
                "the data the members were trained on"
            )


def load_members(runs: Sequence[str | Path]) -> tuple[list[Any], list[Any], Any]:
    """``(networks, embedder configs, train config of member 0)``; checks that every member
    is a hybrid ``exprnet_v`` with the same preprocessing and the same validation hold-out.

    Raises:
        ValueError: fewer than two runs, or members that do not fit together.
    """
    from exprsim.models.embedder import load_model
    from exprsim.training.ferplus import load_run_config
    from exprsim.training.run import unfinished_export

    if len(runs) < 2:
        raise ArgumentError("an ensemble needs at least two runs")
    seen = [Path(r).resolve() for r in runs]
    twice = next((r for r, at in zip(runs, seen, strict=True) if seen.count(at) > 1), None)
    if twice is not None:
        raise ArgumentError(f"{twice} is named twice: an ensemble's members are different runs")
    nets, cfgs, tcfgs = [], [], []
    for run in map(Path, runs):
        stale = unfinished_export(run)
        if stale:
            raise ArgumentError(f"{run} {stale}")
        emb = load_model(str(run), fuse=False)
        if not _hybrid_net(emb.config.model, emb.config.model_kwargs):
            raise ArgumentError(f"{run}: {MEMBER_NEED}")
        nets.append(emb.model.eval())
        cfgs.append(emb.config)
        tcfgs.append(load_run_config(run))
    for other, cfg, tcfg in zip(runs[1:], cfgs[1:], tcfgs[1:], strict=True):
        if cfg.preprocess != cfgs[0].preprocess or cfg.embedding_dim != cfgs[0].embedding_dim:
            raise ArgumentError(f"{other}: preprocessing or dimension differs from {runs[0]}")
        if _holdout_key(tcfg) != _holdout_key(tcfgs[0]):
            raise ArgumentError(
                f"{other}: holds out other validation faces than {runs[0]} (data, data_dir, "
                "max_train, val_fraction, split seed, val_drop_twins); the ensemble's readout "
                "could not be chosen on unseen faces"
            )
    return nets, cfgs, tcfgs[0]


def build_ensemble(nets: Sequence[Any], cfgs: Sequence[Any], rotations: np.ndarray) -> Any:
    """An ``ExprNetEnsemble`` holding ``nets``' weights and ``rotations`` ``(K, d, d)``."""
    import torch

    from exprsim.models.ensemble import ExprNetEnsemble

    members = [_member_kwargs(c) for c in cfgs]
    ens = ExprNetEnsemble(cfgs[0].embedding_dim, members=members)
    for dst, src in zip(ens.members, nets, strict=True):
        dst.load_state_dict(src.state_dict())
    rot: torch.Tensor = ens.rotations  # type: ignore[assignment]  # a registered buffer
    with torch.no_grad():
        rot.copy_(torch.from_numpy(np.asarray(rotations, np.float32)))
    return ens.eval()


def _member_kwargs(cfg: Any) -> dict[str, Any]:
    kw = {k: v for k, v in cfg.model_kwargs.items() if k != "readout_angle"}
    kw["readout"] = "hybrid"
    return kw


def check_angles(angles: Sequence[float]) -> None:
    """Refuse an empty list of readout angles, or one that is not a number of degrees in
    [0, 90]."""
    if not angles or not all(
        isinstance(a, numbers.Real) and not isinstance(a, bool) and 0 <= a <= 90 for a in angles
    ):
        raise ArgumentError(f"angles must be finite, in [0, 90] degrees, got {list(angles)!r}")


def _e_members(mode: str, n: int) -> tuple[int, ...]:
    """Whose ``e`` blocks a readout of :data:`E_MODES` averages."""
    return (0,) if mode == "first" else tuple(range(n))


def _combined(
    ens: Any, parts: list[tuple[np.ndarray, np.ndarray]]
) -> tuple[np.ndarray, np.ndarray]:
    """The ensemble's ``(e, p)`` from its members' ``(e_k, p_k)`` arrays
    (:meth:`~exprsim.models.ensemble.ExprNetEnsemble.combine`, no forward pass)."""
    import torch

    with torch.inference_mode():
        e, p = ens.combine(
            [torch.from_numpy(e) for e, _ in parts], [torch.from_numpy(p) for _, p in parts]
        )
    return e.numpy(), p.numpy()


def _ensemble_export(out: Path) -> bool:
    """Whether the model in ``out`` is an ensemble's: its ``ensemble.json``, an
    ``exprnet_ens`` config, or the folder of an ``ensemble`` recipe (a composition killed
    before its ``ensemble.json`` is composed again there)."""
    if (out / "ensemble.json").is_file():
        return True
    for name, key, value in (("config.json", "model", "exprnet_ens"),
                             ("train_config.json", "recipe", "ensemble")):  # fmt: skip
        try:
            if json.loads((out / name).read_text()).get(key) == value:
                return True
        except (OSError, ValueError, AttributeError):  # absent, damaged, not an object
            continue
    return False


def check_out(out: str | Path, runs: Sequence[str | Path]) -> None:
    """Refuse an ``out`` that is one of the ``runs``, or holds a model that is not an
    ensemble's export (no ``ensemble.json``): composing would overwrite it. An earlier
    export, of these members or others, is composed again in place."""
    out = Path(out)
    if any(Path(r).resolve() == out.resolve() for r in runs):
        raise ArgumentError(f"{out} is one of the members: it would be overwritten")
    model = any((out / n).exists() for n in ("config.json", "model.safetensors"))
    if model and not _ensemble_export(out):
        raise ArgumentError(
            f"{out} holds another model (not an ensemble's export); it would be "
            "overwritten: use a new --out"
        )


def check_draws(draws: object) -> None:
    """Refuse ``draws`` (validation triplet draws of an ensemble) that is not a whole number
    in ``1 ..`` :data:`~exprsim.training.ferplus_config.MAX_VALIDATION_DRAWS` (10**8 ran
    for hours after the members had trained).

    Raises:
        ValueError: naming the value.
    """
    from exprsim.training.ferplus_config import MAX_VALIDATION_DRAWS

    whole = isinstance(draws, int) and not isinstance(draws, bool)
    if not (whole and 1 <= draws <= MAX_VALIDATION_DRAWS):  # type: ignore[operator]
        raise ArgumentError(
            f"draws must be a whole number in [1, {MAX_VALIDATION_DRAWS}], got {draws!r}"
        )


def compose_ensemble(
    runs: Sequence[str | Path],
    out: str | Path,
    angles: Sequence[float] = (0.0, 15.0, 30.0, 45.0),
    draws: int = 10,
    version: str = "ens",
) -> dict[str, Any]:
    """Compose ``runs`` into one model in ``out`` (module docstring); returns ``ensemble.json``
    (strict JSON: a NaN score is ``null``).

    Validation triplets: ``draws`` draws of 3,000 pooled (one draw of 1,408 moves a score by
    about 0.01 on its own; ``scripts/val_noise.py``).

    Raises:
        ValueError: fewer than two runs, members that do not fit together, no angle or an
            angle that is not a finite number, ``draws`` outside 1 to 1000, an ``out`` that
            is a member or holds a model other than an ensemble's export.
    """
    from exprsim.io import write_json
    from exprsim.models.embedder import EmbedderConfig
    from exprsim.training.ferplus import _parts_array, choose_readout, rescoring_config
    from exprsim.training.ferplus_data import load_data
    from exprsim.training.run import export_embedder

    check_angles(angles)
    check_draws(draws)
    check_out(out, runs)
    nets, cfgs, tcfg = load_members(runs)
    tcfg = rescoring_config(tcfg, draws, angles)
    train, val = load_data(tcfg)
    check_members_data(runs, (tcfg, train, val), draws, angles)
    # each member sees the faces once; every readout below is read from these arrays
    on_train, on_val = [], []
    for i, n in enumerate(nets):  # the slow part of composing: say where it is
        log.info(
            "member %d of %d: reading %d training + %d validation faces",
            i + 1, len(nets), len(train.images), len(val.images),
        )  # fmt: skip
        on_train.append(_parts_array(n, train.images, cfgs[0].preprocess))
        on_val.append(_parts_array(n, val.images, cfgs[0].preprocess))
    rot = np.stack([procrustes_rotation(e, on_train[0][0]) for e, _ in on_train])
    rot[0] = np.eye(rot.shape[1], dtype=np.float32)  # member 0 is the frame
    ens = build_ensemble(nets, cfgs, rot)
    tried: dict[str, list[dict[str, float]]] = {}
    for mode in E_MODES:
        ens.e_members = _e_members(mode, len(nets))
        parts = (_combined(ens, on_train), _combined(ens, on_val))
        tried[mode] = choose_readout(ens, train, val, tcfg, parts=parts)
    mode, best = max(
        ((m, r) for m, rows in tried.items() for r in rows), key=lambda mr: mr[1]["score"]
    )
    ens.e_members = _e_members(mode, len(nets))
    ens.readout_angle = best["angle"]
    kwargs = {
        "members": [_member_kwargs(c) for c in cfgs],
        "readout_angle": float(best["angle"]),
        "e_members": list(ens.e_members),
    }
    config = EmbedderConfig(
        model="exprnet_ens", embedding_dim=cfgs[0].embedding_dim, preprocess=cfgs[0].preprocess,
        version=version, model_kwargs=kwargs,
    )  # fmt: skip
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    export_embedder(ens, config, out)
    summary = {
        # relative to the export, not to today's working folder: read from anywhere, and a
        # committed folder holds no machine's absolute paths
        "members": [os.path.relpath(Path(r).resolve(), out.resolve()) for r in runs],
        "chosen": {"e_block": mode, **best},
        "tried": tried,
        "validation": {"faces": len(val.images), "triplet_draws": draws, "triplets_per_draw": 3000},
    }
    write_json(out / "ensemble.json", summary)
    log.info("ensemble of %d: %s block, angle %g, score %.4f", len(nets), mode, best["angle"],
             best["score"])  # fmt: skip
    return summary


# --------------------------------------------------------------------------- the recipe


@dataclass(frozen=True)
class EnsembleTrainConfig:
    """``"recipe": "ensemble"``: train one ``ferplus`` member per seed, then compose them.

    Attributes:
        member: a ``ferplus`` config (JSON object) for every member; member ``k`` gets
            ``seeds[k]``, the hold-out of ``member["split_seed"]`` (default: the first seed)
            so that all members hold out the same validation faces, and the version
            ``<version>-<letter>``.
        seeds: one member per seed (two to 26, all different), trained in this order into
            ``<out>/a``, ``<out>/b``, ...
        angles, draws, version: as in :func:`compose_ensemble`.
        epochs: every member's length instead of ``member["epochs"]`` (``exprsim train
            --epochs``); ``None`` keeps it.
        device: where members train (``exprsim train --device``); ``None`` keeps the member's.
    """

    member: dict[str, Any]
    seeds: tuple[int, ...] = (0, 1)
    angles: tuple[float, ...] = (0.0, 15.0, 30.0, 45.0)
    draws: int = 10
    version: str = "ens"
    epochs: int | None = None
    device: str | None = None

    def __post_init__(self) -> None:
        # the member as JSON holds it (lists, not tuples): a config built in Python equals
        # the same config read back from train_config.json
        object.__setattr__(self, "member", json.loads(json.dumps(self.member)))


def member_configs(
    cfg: EnsembleTrainConfig, out_dir: str | Path | None = None
) -> list[tuple[str, Any]]:
    """``(folder name, ferplus TrainConfig)`` of every member, each checked as the trainer
    would check it, so that a bad member fails before the first one trains (``init_from``
    only when a member in ``out_dir`` has no checkpoint yet: a checkpoint's weights
    replace it).

    Raises:
        ValueError: fewer than two seeds or repeated ones, a member that is not a hybrid
            ``exprnet_v`` ``ferplus`` config, a member setting out of range, or
            ``model_kwargs`` / ``init_from`` that do not build the member's network.
    """
    from exprsim.config import from_dict
    from exprsim.training.ferplus import _check_choices, check_network, make_network
    from exprsim.training.ferplus_config import TrainConfig

    seeds = cfg.seeds
    if not 2 <= len(seeds) <= 26 or len(set(seeds)) != len(seeds):
        raise ArgumentError(f"seeds must be 2 to 26 different seeds, got {list(seeds)}")
    check_draws(cfg.draws)
    check_angles(cfg.angles)
    raw = dict(cfg.member)
    if {raw.pop("recipe", "ferplus"), raw.pop("kind", "ferplus")} != {"ferplus"}:
        raise ArgumentError("member must be a ferplus config")
    if raw.get("split_seed") is None:
        raw["split_seed"] = seeds[0]
    fixed = {"epochs": cfg.epochs, "device": cfg.device}
    raw.update({k: v for k, v in fixed.items() if v is not None})
    out = []
    for name, seed in zip(string.ascii_lowercase, seeds, strict=False):
        m = from_dict(TrainConfig, {**raw, "seed": seed, "version": f"{cfg.version}-{name}"})
        _check_choices(m)
        check_network(m)
        if not _hybrid_net(m.model, m.model_kwargs):
            raise ArgumentError(f"member: {MEMBER_NEED}")
        if m.val_fraction == 0:  # else refused by its first member's training, or composing
            raise ArgumentError(
                "member: the ensemble's readout is chosen on validation faces: it needs "
                "val_fraction > 0"
            )
        out.append((name, m))
    # the members differ only in seed and version
    started = out_dir is not None and all(
        (Path(out_dir) / name / "state.pt").is_file() for name, _ in out
    )
    make_network(out[0][1], init=not started)
    return out


def _finished(folder: Path, cfg: Any) -> bool:
    """Whether ``folder`` holds this very member, trained to the end and exported (not
    killed while its model was written: that member is run again, which finishes the
    export; it was skipped, and the ensemble refused it at every rerun)."""
    from exprsim.io import model_being_written
    from exprsim.training.run import RunFolder, same_config

    run = RunFolder(folder)
    saved = folder / "train_config.json"
    if not (saved.is_file() and (folder / "config.json").is_file()):
        return False
    if model_being_written(folder):
        return False
    try:
        if not same_config(run.saved_config(type(cfg)), cfg):
            return False
    except ValueError:
        return False
    state = run.load_state()
    return state is not None and int(state["epoch"]) == cfg.epochs


@exclusive_run
def train_ensemble(cfg: EnsembleTrainConfig, out_dir: str | Path, progress: bool = True) -> Any:
    """Train every member not yet finished (each resumes from its checkpoints), then compose
    them into ``out_dir`` (``config.json``, ``model.safetensors``, ``ensemble.json``).

    Returns:
        a :class:`~exprsim.training.ferplus_config.TrainResult`: epochs trained now, wall time, and
        the chosen readout's validation figures.
    """
    from exprsim.training.ferplus import MAY_CHANGE, check_resume, train
    from exprsim.training.ferplus_config import TrainResult
    from exprsim.training.run import RunFolder, build_network, check_weights

    members = member_configs(cfg, out_dir)
    run = RunFolder(out_dir)
    # members extend as ferplus runs do (their own checks below hold them to that)
    may_change = ("device", "epochs", *(f"member.{k}" for k in MAY_CHANGE))
    run.check(cfg, may_change)
    for name, mcfg in members:  # a member's refused resume must not rewrite our config
        if (run.dir / name).exists():
            state = check_resume(mcfg, RunFolder(run.dir / name))
            if state is not None:
                net = build_network(mcfg.model, mcfg.embedding_dim, mcfg.model_kwargs)
                check_weights(run.dir / name / "state.pt", state.get("model"), net)
    run.claim(cfg, may_change)
    epochs = 0
    for name, mcfg in members:
        if _finished(run.dir / name, mcfg):
            log.info("member %s: already trained (%s)", name, run.dir / name)
            continue
        epochs += train(mcfg, run.dir / name, progress=progress).epochs_run
    folders = [run.dir / name for name, _ in members]
    summary = compose_ensemble(folders, run.dir, cfg.angles, cfg.draws, cfg.version)
    chosen = {k: float(v) for k, v in summary["chosen"].items() if k != "e_block"}
    return TrainResult(run.dir, epochs, run.seconds(), chosen)
