"""One run folder for every learner: config, seed and threads, checkpoints, metrics, time.

A run folder holds ``train_config.json`` (the run's frozen config), ``state.pt`` (the
checkpoint: one atomic file, loadable with ``weights_only=True``), ``last.safetensors``
(the latest weights, for :func:`exprsim.load_model` and ``init_from``) and
``metrics.jsonl`` (one JSON row per epoch or logging step). A learner that is re-run on
the same folder with the same config resumes from ``state.pt``; a different config is
refused, except for the fields a learner declares as safe to change (the length of the
run, the thread count). A learner runs holding an exclusive lock on its folder
(:func:`exclusive_run`: ``<out>/.lock``), so that a second command on the same folder stops
at once instead of training alongside the first. While the model is written (after the
last checkpoint, until the export ends) the folder holds :func:`exprsim.io.writing_model`'s
mark; a run killed meanwhile keeps it, and :func:`unfinished_export` says so.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import re
import stat
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import fields, replace
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from exprsim.config import from_dict, to_dict
from exprsim.errors import ArgumentError, ExprsimError
from exprsim.io import TEMP_TAIL, replace_atomically, sweep_temporaries, write_atomically
from exprsim.lockholder import holds_a_note, lock_holder, note_holder

log = logging.getLogger(__name__)


#: the hidden temporaries :func:`~exprsim.io.write_atomically` writes a run's files through
#: (``.state.pt.<pid>.<thread>.tmp``); one a kill left is not progress, and is swept
_TEMPORARY = re.compile(rf"\..+{TEMP_TAIL}\.tmp")


def same_config(a: Any, b: Any) -> bool:
    """Whether two configs are the same once written as JSON (a tuple inside a free-form
    dict field, such as ``model_kwargs``, reads back as a list)."""
    return bool(json.loads(json.dumps(to_dict(a))) == json.loads(json.dumps(to_dict(b))))


def config_differences(old: Any, new: Any, shown: int = 3) -> str:
    """What differs between two configs, for a message: up to ``shown`` dotted keys with
    the old and the new value (``"lr 0.05 -> 0.1, augmentation.flip True -> False"``), and
    how many more."""

    def flat(value: Any, prefix: str = "") -> dict[str, Any]:
        if isinstance(value, dict) and value:
            out: dict[str, Any] = {}
            for k, v in value.items():
                out.update(flat(v, f"{prefix}{k}."))
            return out
        return {prefix.removesuffix("."): value}

    def emptied(x: dict[str, Any], y: dict[str, Any]) -> dict[str, Any]:
        # an empty dict on one side whose keys the other side sets: those keys say it
        return {
            k: v
            for k, v in x.items()
            if not (v == {} and any(key.startswith(k + ".") for key in y))
        }

    a = flat(json.loads(json.dumps(to_dict(old))))
    b = flat(json.loads(json.dumps(to_dict(new))))
    a, b = emptied(a, b), emptied(b, a)
    keys = sorted(k for k in a.keys() | b.keys() if a.get(k, "<unset>") != b.get(k, "<unset>"))
    parts = [f"{k} {a.get(k, '<unset>')!r} -> {b.get(k, '<unset>')!r}" for k in keys[:shown]]
    more = f", and {len(keys) - shown} more" if len(keys) > shown else ""
    return ", ".join(parts) + more


def recipe_of(cfg: Any) -> str | None:
    """The registered recipe that trains ``cfg`` (among those of its class, the one whose
    fixed settings it has; ``None`` if none)."""
    from exprsim.training.registry import recipes

    fits = [
        r
        for r in recipes()
        if r.config_class() is type(cfg) and all(getattr(cfg, k) == v for k, v in r.fixed)
    ]
    return max(fits, key=lambda r: len(r.fixed)).name if fits else None


def _changed(old: Any, cfg: Any, may_change: Iterable[str]) -> Any:
    """``old`` with the fields ``may_change`` names taken from ``cfg``; ``"member.epochs"``
    names the key ``epochs`` of the dict field ``member`` (an ensemble's member config)."""
    names = {f.name for f in fields(cfg)}
    for name in may_change:
        field, _, key = name.partition(".")
        if field not in names:
            continue
        if not key:
            old = replace(old, **{field: getattr(cfg, field)})
            continue
        was, now = getattr(old, field), getattr(cfg, field)
        if isinstance(was, dict) and isinstance(now, dict):
            kept = {k: v for k, v in was.items() if k != key}
            old = replace(old, **{field: kept | ({key: now[key]} if key in now else {})})
    return old


def _keep_copy(path: Path) -> tuple[Path, bool]:
    """A copy of ``path`` beside it under the first free name ``NAME.~N~`` (as ``cp
    --backup=numbered`` names them), before a fresh start replaces it; ``(copy, made
    now)``: the last copy is reused when it holds the same bytes. Written whole or not at
    all (a stop during the copy left a part that looked like a copy).

    Raises:
        ExprsimError: the copy cannot be written (nothing was changed).
    """
    import filecmp
    import shutil

    from exprsim.io import replace_atomically

    n = 1
    while (dest := path.with_name(f"{path.name}.~{n}~")).exists() or dest.is_symlink():
        n += 1
    last = path.with_name(f"{path.name}.~{n - 1}~")
    with contextlib.suppress(OSError):
        if n > 1 and last.is_file() and filecmp.cmp(path, last, shallow=False):
            return last, False
    try:
        replace_atomically(dest, lambda tmp: shutil.copy2(path, tmp))
    except OSError as exc:
        raise ExprsimError(
            f"{path}: cannot keep a copy before training again from the start "
            f"({exc.strerror or exc}); nothing was changed"
        ) from exc
    return dest, True


#: a copy :func:`_keep_copy` made (``model.safetensors.~1~``): kept history, not progress
_KEPT_COPY = re.compile(r".+\.~\d+~")


class TrainingDivergedError(ExprsimError):
    """The weights became NaN or infinite (a learning rate too high, or bad data)."""


C = TypeVar("C")
P = ParamSpec("P")
R = TypeVar("R")

#: the lock file of a run folder (:func:`run_lock`)
LOCK_NAME = ".lock"


class RunBusyError(ExprsimError):
    """Another process holds a run folder's lock; ``holder`` names it (`` (pid N,
    `command`)``, or ``""``: :func:`~exprsim.lockholder.lock_holder`)."""

    def __init__(self, message: str, holder: str = "") -> None:
        super().__init__(message)
        self.holder = holder


@contextlib.contextmanager
def run_lock(out_dir: str | Path) -> Iterator[None]:
    """Hold an exclusive lock on the run folder ``out_dir`` while the block runs: ``flock``
    on ``<out_dir>/.lock``, not waiting. The lock file is removed when the block ends, and
    the folder too if this call made it and it is still empty (a config refused before
    anything was written leaves nothing). A no-op where ``fcntl`` is missing (not POSIX).

    Raises:
        ValueError: ``out_dir`` exists and is not a folder.
        RunBusyError: another process holds the lock (another ``exprsim train`` on this
            folder), named.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ArgumentError(f"{out} exists and is not a folder")
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    made = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    path = out / LOCK_NAME
    busy = "another exprsim train{} is using {}; wait for it to end, or use another --out"
    for _ in range(3):  # the file may be removed by the holder between open and flock
        with open(path, "a+b") as fh:
            if not _flock_briefly(fh, fcntl.LOCK_EX):
                holder = lock_holder(fh)
                raise RunBusyError(busy.format(holder, out), holder)
            try:
                if not path.exists() or not os.path.samestat(os.fstat(fh.fileno()), path.stat()):
                    continue  # locked a file the last holder removed: take the new one
                mine = holds_a_note(fh)  # else a `.lock` of the user's own: kept
                note_holder(fh)  # named to a second run refused (exprsim.lockholder)
                try:
                    yield
                finally:
                    if mine:  # still held: nobody else can be inside
                        path.unlink(missing_ok=True)
                    if made:
                        with contextlib.suppress(OSError):
                            out.rmdir()  # only when empty
                return
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
    raise RunBusyError(busy.format("", out))


#: how long :func:`run_lock` waits for a lock held for a moment (an ``exprsim evaluate``
#: probing whether a run is being trained holds it shared for that long)
LOCK_WAIT_S = 1.0


def _flock_briefly(fh: Any, how: int) -> bool:
    """``flock(fh, how)`` without blocking, tried again for up to :data:`LOCK_WAIT_S`:
    whether it was taken."""
    import fcntl

    deadline = time.monotonic() + LOCK_WAIT_S
    while True:
        try:
            fcntl.flock(fh, how | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)


def exclusive_run(
    train: Callable[Concatenate[Any, str | Path, P], R],
) -> Callable[Concatenate[Any, str | Path, P], R]:
    """Decorate a learner ``train(cfg, out_dir, ...)`` so that it runs holding
    :func:`run_lock` on ``out_dir`` from its first check to its last write."""

    @functools.wraps(train)
    def locked(cfg: Any, out_dir: str | Path, /, *args: P.args, **kwargs: P.kwargs) -> R:
        with run_lock(out_dir):
            return train(cfg, out_dir, *args, **kwargs)

    return locked


def brief(exc: BaseException, limit: int = 200) -> str:
    """An exception's message on one line, at most about ``limit`` characters (for
    one-line errors): its first sentence when a longer message has one that fits, else cut
    at a word, with "..." (torch's long messages were cut mid-sentence)."""
    text = " ".join(str(exc).split())
    if len(text) <= limit:
        return text
    import re

    first = re.search(r"[.!?]\s+(?=[A-Z])", text[40:limit])  # not "i.e." nor "[3, 3]."
    if first is not None:
        return text[: 40 + first.start()]
    cut = text.rfind(" ", 0, limit)
    return text[: cut if cut > 0 else limit] + " ..."


@contextlib.contextmanager
def foreign_checkpoint(path: Path) -> Iterator[None]:
    """Turn the errors of loading a checkpoint into the network and optimiser built from
    the config (``load_state_dict``: a missing key, a shape of another network) into one
    :class:`ExprsimError` line naming the checkpoint."""
    try:
        yield
    except (RuntimeError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise ExprsimError(
            f"{path}: a checkpoint of another network or config ({brief(exc)}); restore "
            "the run's own train_config.json, or use a new --out"
        ) from exc


def check_weights(path: Path, saved: Any, module: Any) -> None:
    """Refuse a checkpoint's weights ``saved`` (a state dict; anything else is left to the
    load) that do not fit ``module`` (the network built from the config), before the run
    folder is claimed: one :class:`ExprsimError` line naming the first key that differs
    and its two shapes.
    """
    if not isinstance(saved, Mapping):
        return
    ours = module.state_dict()
    why = None
    for key, value in ours.items():
        if key not in saved:
            why = f"{key} is not in the checkpoint"
        elif tuple(getattr(saved[key], "shape", ())) != tuple(value.shape):
            why = (
                f"{key} is {list(getattr(saved[key], 'shape', ()))} in the checkpoint, "
                f"{list(value.shape)} in this config's network"
            )
        if why:
            break
    extra = next((k for k in saved if k not in ours), None)
    if why is None and extra is not None:
        why = f"the checkpoint holds {extra}, which this config's network has not"
    if why is not None:
        raise ExprsimError(
            f"{path}: a checkpoint of another network or config ({why}); restore the run's "
            "own train_config.json, or use a new --out"
        )


def write_or_explain(path: Path, write: Callable[[Path], object], kept: str) -> Path:
    """:func:`~exprsim.io.replace_atomically`, with the errors torch and safetensors raise
    for a full disk (``RuntimeError``, ``SafetensorError``; not ``OSError``) as one
    :class:`ExprsimError` line that names the file and says what is ``kept``."""
    from safetensors import SafetensorError

    try:
        return replace_atomically(path, write)
    except (RuntimeError, SafetensorError) as exc:
        raise ExprsimError(
            f"{path.parent}: could not write {path.name} (no space left on device? "
            f"{brief(exc)}); "
            f"{kept}"
        ) from exc


def build_network(name: str, embedding_dim: int, model_kwargs: Mapping[str, Any]) -> Any:
    """``create_model(name, embedding_dim=..., **model_kwargs)`` (random init).

    Raises:
        ArgumentError: naming ``model_kwargs``, when the builder refuses them (an unknown
            keyword, a value of the wrong kind, a width too large to allocate).
        ModelError: an unknown model or a bad ``embedding_dim``.
    """
    from exprsim.models.registry import create_model

    try:
        return create_model(name, embedding_dim=embedding_dim, **dict(model_kwargs))
    except (TypeError, ValueError, KeyError, IndexError, RuntimeError, MemoryError) as exc:
        raise ArgumentError(
            f"model_kwargs {dict(model_kwargs)!r} do not fit model {name!r} ({brief(exc)})"
        ) from exc


#: Most threads a training asks torch for: 20,000 made libgomp fail to create them, and
#: 100,000 killed the process (a segmentation fault, nothing printed)
MAX_TORCH_THREADS = 1024

#: Largest embedding a run may ask for (``embedding_dim`` of the ferplus and fec recipes):
#: 10**9 failed in the allocator with a stack of torch's lines; the shipped models use 16
MAX_EMBEDDING_DIM = 4096

#: Most in-batch vote triplets of each type per step (``triplets_per_type``; FECNet: 30):
#: 10**9 made one epoch of 144 synthetic faces take 82 s instead of 0.6 s
MAX_TRIPLETS_PER_TYPE = 10_000

#: Most faces ``data: "synthetic"`` makes (``max_train`` of the ferplus and pvae recipes):
#: 10**9 asked for 60 GiB at once
MAX_SYNTHETIC = 100_000


def read_train_config(path: Path) -> Any:
    """The JSON value of a run's ``train_config.json`` (``path``).

    Raises:
        ArgumentError: naming the file, when it is not JSON (damaged, cut short).
    """
    try:
        return json.loads(path.read_text())
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError
        raise ArgumentError(f"{path}: not valid JSON ({brief(exc)})") from exc


def array_digest(*parts: Any) -> str:
    """Hex digest of arrays (dtype, shape and bytes; ``None`` counted as such): what a run
    trains and validates on, kept in its checkpoints (:func:`check_same_data`)."""
    import hashlib

    import numpy as np

    h = hashlib.blake2b(digest_size=16)
    for part in parts:
        if part is None:
            h.update(b"none;")
            continue
        a = np.ascontiguousarray(part)
        h.update(f"{a.dtype.str}{a.shape};".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def check_same_data(run: RunFolder, state: Mapping[str, Any], digest: str) -> None:
    """Refuse to resume a checkpoint made on other data than the run's now (its
    ``data_digest``, :func:`array_digest`; a checkpoint written before checkpoints kept one
    is not checked).

    Raises:
        ValueError: the data changed since the checkpoint.
    """
    kept = state.get("data_digest")
    if isinstance(kept, str) and kept and kept != digest:
        raise ArgumentError(
            f"{run.dir}: the training data changed since its last checkpoint (other files, "
            "crops or labels under the same config); resuming would go on training on other "
            "faces, and its validation part could hold faces already trained on. Restore "
            "the data the run started with, or train into a new --out"
        )


def setup_torch(seed: int, num_threads: int = 0) -> None:
    """Seed torch and NumPy's global generators; ``num_threads`` > 0 sets torch's pool.

    Raises:
        ExprsimError: ``num_threads`` above :data:`MAX_TORCH_THREADS`.
    """
    import numpy as np
    import torch

    if num_threads > MAX_TORCH_THREADS:
        raise ExprsimError(
            f"num_threads must be at most {MAX_TORCH_THREADS}, got {num_threads} "
            "(0: torch's default, one per core)"
        )
    if num_threads > 0:
        torch.set_num_threads(num_threads)
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


class RunFolder:
    """A training run's output folder (module docstring).

    Args:
        path: the folder (created by :meth:`claim`).
    """

    def __init__(self, path: str | Path) -> None:
        self.dir = Path(path)
        if self.dir.exists() and not self.dir.is_dir():
            raise ArgumentError(f"{self.dir} exists and is not a folder")
        self.t0 = time.perf_counter()

    @property
    def state_path(self) -> Path:
        return self.dir / "state.pt"

    @property
    def metrics_path(self) -> Path:
        return self.dir / "metrics.jsonl"

    def check(self, cfg: Any, may_change: Iterable[str] = ()) -> None:
        """Refuse a folder holding another run's config (writes nothing).

        ``may_change``: config fields a resumed run may set differently (e.g. ``epochs``).
        """
        path = self.dir / "train_config.json"
        if not path.exists() and (self.dir / "config.json").exists():
            raise ArgumentError(
                f"{self.dir} holds a model (config.json) that is not a training run of this "
                "recipe; training there would overwrite it: use a new --out"
            )
        if not path.exists() and self.state_path.exists():  # else resumed under any config
            raise ArgumentError(
                f"{self.dir} holds a checkpoint (state.pt) but no train_config.json, so the "
                "config it was trained with is unknown; restore that file, or use a new --out"
            )
        if path.exists():
            try:
                old = self.saved_config(type(cfg), recipe_of(cfg))
            except ValueError as exc:
                raise ArgumentError(
                    f"{self.dir} holds another kind of run, or its train_config.json is "
                    f"damaged ({exc}); use a new --out"
                ) from exc
            if not same_config(_changed(old, cfg, may_change), cfg):
                if self.holds_progress():
                    diff = config_differences(_changed(old, cfg, may_change), cfg)
                    raise ArgumentError(
                        f"{self.dir} holds a run with a different config ({diff}); use a new --out"
                    )
                log.warning(
                    "%s: its train_config.json differs but nothing was trained there "
                    "(no checkpoint, weights or metrics): it is replaced",
                    self.dir,
                )

    def holds_progress(self) -> bool:
        """Whether the folder or its member folders hold anything but what claiming a
        run writes (``train_config.json``, the lock, a metrics log without a checkpoint
        beside it, which a resume empties): a checkpoint, weights, a model, results, a
        cache. A folder claimed by a run that stopped before its first checkpoint
        (diverged or killed in its first epoch, or refused after the claim) holds nothing
        else, so another config may take it."""
        for path in self.dir.rglob("*"):
            if not path.is_file() or path.name in ("train_config.json", ".lock"):
                continue
            if _TEMPORARY.fullmatch(path.name):  # a write a kill cut short: nothing kept
                continue
            if _KEPT_COPY.fullmatch(path.name):  # what a start over kept of an earlier run
                continue
            if path.name == "metrics.jsonl" and not (path.parent / "state.pt").exists():
                continue
            return True
        return False

    def saved_config(self, cls: type[Any], recipe: str | None = None) -> Any:
        """The run's ``train_config.json`` as ``cls``.

        Raises:
            ArgumentError: it names another recipe than ``recipe``, does not fit ``cls``, or
                is not JSON (damaged).
        """
        raw = read_train_config(self.dir / "train_config.json")
        saved = raw.pop("recipe", None) if isinstance(raw, dict) else None
        if saved is not None and recipe is not None and saved != recipe:
            raise ArgumentError(f"it holds a run of recipe {saved!r}, not {recipe!r}")
        return from_dict(cls, raw)

    def claim(self, cfg: Any, may_change: Iterable[str] = ()) -> None:
        """:meth:`check`, then create the folder and save ``cfg`` as ``train_config.json``
        (with its ``recipe``, so that the file is a config ``exprsim train`` runs again)."""
        self.check(cfg, may_change)
        self.dir.mkdir(parents=True, exist_ok=True)
        sweep_temporaries(self.dir, _TEMPORARY.pattern)  # those of killed runs
        name = recipe_of(cfg)
        data = {"recipe": name, **to_dict(cfg)} if name else to_dict(cfg)
        text = json.dumps(data, indent=2, sort_keys=True) + "\n"
        # whole or not at all: a cut config would make the run's folder refuse its resume
        write_atomically(self.dir / "train_config.json", lambda f: f.write(text.encode()))

    def save_state(self, state: Mapping[str, Any]) -> None:
        """Write the checkpoint atomically (a kill leaves the previous one or this one).

        Raises:
            TrainingDivergedError: the weights (``state["model"]`` / ``state["head"]``) hold
                NaN or infinite values; the previous checkpoint is kept.
        """
        import torch

        for part in ("model", "head"):
            bad = [
                k
                for k, v in dict(state.get(part) or {}).items()
                if torch.is_tensor(v)
                and v.is_floating_point()
                and not bool(torch.isfinite(v).all())
            ]
            if bad:
                where = ", ".join(f"{k}={state[k]}" for k in ("epoch", "iteration") if k in state)
                raise TrainingDivergedError(
                    f"{self.dir}: training diverged ({where or 'this step'}: NaN or infinite "
                    f"weights in {len(bad)} tensors, e.g. {bad[0]}); nothing was saved and the "
                    "previous checkpoint is kept. Lower the learning rate, or check the data"
                )
        write_or_explain(
            self.state_path,
            lambda tmp: torch.save(dict(state), tmp),
            "nothing was saved and the last checkpoint is kept",
        )

    def load_state(self, map_location: Any = None) -> dict[str, Any] | None:
        """The last checkpoint, or ``None`` for a fresh run."""
        import torch

        if not self.state_path.exists():
            return None
        try:
            state: dict[str, Any] = torch.load(
                self.state_path, weights_only=True, map_location=map_location
            )
        except Exception as exc:  # truncated or foreign: torch raises EOFError, RuntimeError...
            raise ExprsimError(
                f"{self.state_path}: unreadable checkpoint ({type(exc).__name__}: "
                f"{brief(exc)}); restore it, or delete it to start the run again"
            ) from exc
        return state

    def resume_state(
        self, length: int, key: str = "epoch", map_location: Any = None
    ) -> dict[str, Any] | None:
        """:meth:`load_state`, refusing a checkpoint that has trained past ``length``
        (``state[key]``: ``"epoch"`` or ``"iteration"``) before anything is rewritten.

        Raises:
            ValueError: the run has trained more than ``length`` already (a run cannot be
                shortened).
        """
        state = self.load_state(map_location)
        if state is None and (self.dir / "model.safetensors").is_file():
            # a finished run whose checkpoint is gone (as committed runs are): say it (its
            # model and metrics are kept as it starts: trim_metrics)
            log.warning(
                "%s holds a trained model but no checkpoint (state.pt): training it again "
                "from the start; its model is replaced when the run ends (a copy of it and "
                "of its metrics is kept beside it, NAME.~N~)",
                self.dir,
            )
        elif state is None and (rows := self._metric_rows()) > 1:
            # a committed run without its weights: its history goes with the new start
            log.warning(
                "%s holds %d rows of metrics but no checkpoint (state.pt): training it "
                "again from the start; metrics.jsonl is started again (a copy is kept "
                "beside it, metrics.jsonl.~N~)",
                self.dir,
                rows,
            )
        done = int(state.get(key, 0)) if state is not None else 0
        if done > length:
            raise ArgumentError(
                f"{self.dir} has trained {done} {key}s already; {length} is fewer "
                "(a run cannot be shortened: use a new --out)"
            )
        return state

    def save_weights(self, weights: Mapping[str, Any], name: str = "last.safetensors") -> Path:
        """Save a state dict as safetensors, atomically (tensors made contiguous, on CPU).

        Raises:
            ExprsimError: the file could not be written (a full disk); the previous one and
                the checkpoint are kept.
        """
        from safetensors.torch import save_file

        tensors = {k: v.detach().contiguous().cpu() for k, v in weights.items()}
        return write_or_explain(
            self.dir / name,
            lambda tmp: save_file(tensors, str(tmp)),
            "the last checkpoint is kept",
        )

    def append_metrics(self, row: Mapping[str, Any]) -> None:
        with self.metrics_path.open("a") as f:
            f.write(json.dumps(dict(row)) + "\n")

    def _metric_rows(self) -> int:
        """How many non-blank lines ``metrics.jsonl`` holds (0 without one)."""
        try:
            text = self.metrics_path.read_text(errors="replace")
        except OSError:
            return 0
        return sum(1 for line in text.splitlines() if line.strip())

    def keep_history(self) -> list[Path]:
        """Before a run starts over in this folder (no checkpoint): a copy of the trained
        model its end will replace, with its metrics; or, without a model, of more than one
        row of metrics, unless a copy of metrics is there already (an FEC run stopped before
        its first checkpoint leaves rows: restarted three times, it made three copies).
        Named ``NAME.~N~``; the copies made now, said in one warning.

        Raises:
            ExprsimError: a copy cannot be written (nothing was changed).
        """
        kept: list[Path] = []
        model, metrics = self.dir / "model.safetensors", self.metrics_path
        if model.is_file():
            copy, new = _keep_copy(model)  # a start stopped before the end: the same model
            kept += [copy] if new else []
            keep_metrics = new and self._metric_rows() > 0
        else:
            copies = any(_KEPT_COPY.fullmatch(p.name) for p in self.dir.glob("metrics.jsonl.*"))
            keep_metrics = self._metric_rows() > 1 and not copies
        if keep_metrics:
            kept.append(_keep_copy(metrics)[0])
        if kept:
            log.warning(
                "%s: kept %s before training again from the start",
                self.dir,
                " and ".join(k.name for k in kept),
            )
        return kept

    def trim_metrics(self, key: str, upto: int) -> None:
        """Drop ``metrics.jsonl`` rows whose ``key`` is past ``upto`` (logged after the
        last checkpoint by a run that was then killed; ``upto=0``: every row, for a run
        that starts afresh). A line that is not a JSON object (a partial row left by a
        full disk or a power cut) is dropped with a warning.

        ``upto=0`` is where a run starts over, its config checked and the folder claimed: a
        trained model its end will replace, and metrics rows this empties, are kept beside
        it first (:meth:`keep_history`)."""
        if upto == 0:
            self.keep_history()
        if not self.metrics_path.is_file():
            return
        lines = self.metrics_path.read_text(errors="replace").splitlines()
        kept, bad = [], 0
        for line in lines:
            try:
                row = json.loads(line) if line.strip() else None
            except ValueError:
                row = None
            if not isinstance(row, dict):
                bad += bool(line.strip())
            elif not isinstance(row.get(key, 0), int | float) or row.get(key, 0) <= upto:
                kept.append(line)
        if bad:
            log.warning("%s: dropped %d damaged line(s) (not a JSON row)", self.metrics_path, bad)
        if len(kept) != len(lines):  # whole or not at all: a full disk keeps every row
            text = "".join(s + "\n" for s in kept)
            write_atomically(self.metrics_path, lambda f: f.write(text.encode()))

    def seconds(self) -> float:
        """Wall time since this object was made."""
        return time.perf_counter() - self.t0

    def write_json(self, name: str, data: Any) -> None:
        """Write ``data`` as strict JSON (a NaN or infinite value as ``null``), atomically."""
        from exprsim.io import write_json

        write_json(self.dir / name, data)


def export_embedder(model: Any, config: Any, out: str | Path) -> Path:
    """Write ``model.safetensors`` + ``config.json`` (an
    :class:`~exprsim.models.embedder.EmbedderConfig`), loadable by :func:`exprsim.load_model`;
    each file whole or not at all (a full disk is one :class:`ExprsimError` line)."""
    from safetensors.torch import save_file

    from exprsim.io import writing_model

    out = Path(out)
    weights = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    kept = "the files there before are kept"
    text = config.to_json() + "\n"
    with writing_model(out):  # a kill between the two files is said, not mixed silently
        write_or_explain(out / "model.safetensors", lambda tmp: save_file(weights, str(tmp)), kept)
        write_or_explain(out / "config.json", lambda tmp: tmp.write_text(text), kept)
    return out


def _lock_held(path: Path) -> bool:
    """Whether a process holds :func:`run_lock`'s ``flock`` on ``path`` now."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        return False
    try:  # not waiting for a writer: a FIFO planted as .lock hung `evaluate` for ever
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a link is followed, as run_lock
    except OSError:  # no lock file: nobody trains there
        return False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        except OSError:
            return False
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


#: what :func:`unfinished_export`'s words end with
AGAIN = "(run its exprsim train again to finish it)"

#: the checkpoint key that counts a recipe's length field
_DONE_KEYS = {"epochs": "epoch", "iterations": "iteration"}


def _done(folder: Path, field: str) -> int | None:
    """How many of ``field`` (``epochs``, ``iterations``) the checkpoint in ``folder`` has
    reached: 0 without one, ``None`` for a recipe counted otherwise."""
    import torch

    key = _DONE_KEYS.get(field)
    if key is None:
        return None
    if not (folder / "state.pt").is_file():
        return 0
    state = torch.load(folder / "state.pt", weights_only=True, mmap=True, map_location="cpu")
    return int(state.get(key, 0))


def _stale(folder: Path, field: str, length: int, done: int) -> str:
    """The words of :func:`unfinished_export` for a run stopped after ``done`` of ``length``."""
    if not (folder / "model.safetensors").is_file():  # never exported: no shorter run's model
        return f"stopped after {done} of {length} {field} and is not exported yet {AGAIN}"
    return (
        f"was extended to {length} {field} but stopped after {done}: its exported model is "
        f"the shorter run's {AGAIN}"
    )


def _unfinished_members(out: Path, raw: dict[str, Any]) -> str | None:
    """:func:`unfinished_export` of an ``ensemble`` recipe's folder: the first member
    (``a/``, ``b/``, ...) that has not reached the config's epochs, or is being trained."""
    import string

    from exprsim.io import model_being_written
    from exprsim.training.ferplus_config import TrainConfig

    member = raw.get("member") or {}
    length = raw.get("epochs")
    if not isinstance(length, int):
        length = member.get("epochs", TrainConfig.epochs)
    if not isinstance(length, int):
        return None
    for name, _ in zip(string.ascii_lowercase, raw.get("seeds") or (0, 1), strict=False):
        if _lock_held(out / name / LOCK_NAME):
            return f"is being trained now (member {name} holds its lock)"
        if model_being_written(out / name):
            return f"stopped while member {name}'s model was being written {AGAIN}"
        done = _done(out / name, "epochs") or 0
        if done < length:
            composed = (out / "model.safetensors").is_file()
            return (
                f"stopped with member {name} after {done} of {length} epochs: "
                + ("its exported model is of shorter members" if composed else "not composed yet")
                + f" {AGAIN}"
            )
    return None


def _ended_after(result: Path, state: Path) -> bool:
    """Whether ``result`` was written after the checkpoint ``state`` (the call that wrote
    the checkpoint ended normally, e.g. on a ``max_seconds`` budget)."""
    try:
        return result.stat().st_mtime_ns >= state.stat().st_mtime_ns
    except OSError:
        return False


def _ended_at(folder: Path, field: str, done: int) -> bool:
    """Whether the call that wrote the checkpoint in ``folder`` (at ``done`` of ``field``)
    ended normally (e.g. on a ``max_seconds`` budget): the last row of ``history.json``,
    written at the end of the call after the model, is of that step (a checkpoint follows
    every validation); a folder without such a history is judged by :func:`_ended_after`'s
    modification times, which a clock set back between the two writes misleads."""
    key = _DONE_KEYS.get(field, field)
    try:
        rows = json.loads((folder / "history.json").read_text())
        last = rows[-1][key] if isinstance(rows, list) and rows else None
    except (OSError, ValueError, LookupError, TypeError):
        last = None
    if isinstance(last, int) and not isinstance(last, bool):
        return last == done
    return _ended_after(folder / "result.json", folder / "state.pt")


def unfinished_export(folder: str | Path) -> str | None:
    """Why the model exported in the run folder ``folder`` is not the run its
    ``train_config.json`` now describes (words to follow the folder's name), or ``None``:
    a command trains there now (its lock is held), or the config asks for a longer run
    than the last checkpoint reached (an extension under way, or stopped before its end:
    ``config.json`` and ``model.safetensors`` are still the shorter run's, or none yet).
    or a command stopped while writing the model (:func:`exprsim.io.writing_model`'s mark).
    An ``ensemble`` recipe's folder is judged by its members; a run that stopped on its
    ``max_seconds`` budget is finished."""
    from exprsim.io import model_being_written
    from exprsim.training.registry import get_recipe

    out = Path(folder)
    if _lock_held(out / LOCK_NAME):
        return "is being trained now (another command holds its lock)"
    if model_being_written(out):
        rerun = (
            AGAIN
            if (out / "train_config.json").is_file()
            else "(run the command that wrote it again)"
        )
        return f"stopped while its model was being written {rerun}"
    try:
        raw = json.loads((out / "train_config.json").read_text())
        recipe = str(raw.get("recipe") or raw.get("kind") or "ferplus")
        if recipe == "ensemble":
            return _unfinished_members(out, raw)
        field = get_recipe(recipe).length_field
        length = raw.get(field)
        if not isinstance(length, int) or not (out / "state.pt").is_file():
            return None
        done = _done(out, field)
        if done is None or done >= length:
            return None
        if raw.get("max_seconds") is not None and _ended_at(out, field, done):
            return None  # stopped on its time budget: finished as configured
    except Exception:  # no config, a damaged one or a foreign checkpoint: nothing to judge
        return None
    return _stale(out, field, length, done)
