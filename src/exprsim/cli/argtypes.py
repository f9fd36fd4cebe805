"""argparse ``type=`` callables that check ranges, so a bad option value gives argparse's
one-line usage error (exit code 2) before any work starts."""

from __future__ import annotations

import argparse
import math
import os
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any


def int_at_least(lo: int, hi: int | None = None) -> Callable[[str], int]:
    """An integer ``>= lo`` (and ``<= hi`` when given)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < lo:
            raise argparse.ArgumentTypeError(f"must be >= {lo}, got {value}")
        if hi is not None and value > hi:
            raise argparse.ArgumentTypeError(f"must be <= {hi}, got {value}")
        return value

    parse.__name__ = "int"
    return parse


def float_in(lo: float, hi: float = math.inf, lo_open: bool = False) -> Callable[[str], float]:
    """A finite float in ``[lo, hi]`` (``(lo, hi]`` with ``lo_open``)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        below = value <= lo if lo_open else value < lo
        if not math.isfinite(value) or below or value > hi:
            left = "(" if lo_open else "["
            right = "]" if math.isfinite(hi) else ")"
            raise argparse.ArgumentTypeError(f"must be in {left}{lo}, {hi}{right}, got {text}")
        return value

    parse.__name__ = "float"
    return parse


def writable_dir_target(path: str | Path) -> str | None:
    """Why ``path`` cannot become an output folder, or ``None`` if it can.

    It can when it is a writable folder, or does not exist yet and its nearest existing
    parent is a writable folder. Nothing is created.
    """
    p = Path(path)
    if p.exists():
        if not p.is_dir():
            return f"{p} exists and is not a folder"
        return None if os.access(p, os.W_OK | os.X_OK) else f"{p}: folder is not writable"
    if p.is_symlink():  # mkdir would say "File exists"
        return f"{p}: a symbolic link to nothing (a missing folder, or a loop of links)"
    parent = p.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    return _folder_problem(p, parent, "cannot create it", f"{parent} is not a folder")


def writable_file_target(path: str | Path) -> str | None:
    """Why ``path`` cannot be written as a file, or ``None`` if it can.

    It can when it is a writable file, or does not exist yet and its folder exists and is
    writable (parents are not created). Nothing is created or changed.
    """
    p = Path(path)
    if p.is_dir():
        return f"{p}: is a folder, expected a file to write"
    if p.exists():
        return None if os.access(p, os.W_OK) else f"{p}: cannot write it (permission denied)"
    missing = (
        f"cannot write it ({p.parent} is a file, not a folder)"
        if p.parent.exists() and not p.parent.is_dir()
        else f"cannot write it (folder {p.parent} does not exist)"
    )
    return _folder_problem(p, p.parent, "cannot write it", missing)


def _folder_problem(p: Path, folder: Path, verb: str, missing: str) -> str | None:
    """Why nothing can be made in ``folder`` for ``p`` (``missing`` when it is no folder)."""
    if not folder.is_dir():
        return f"{p}: {missing}"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"{p}: {verb} (folder {folder} is not writable)"
    return None


def require_paths(paths: Iterable[str | Path], what: str = "PATH") -> None:
    """Refuse, before any work, a blank path among ``paths`` (``""`` or spaces: an unset
    shell variable, say), which would otherwise name the working folder.

    Raises:
        ExprsimError: one line naming the blank argument (exit code 2).
    """
    from exprsim.errors import ExprsimError

    for p in paths:
        if not str(p).strip():
            raise ExprsimError(
                f"{what} {str(p)!r} is blank: it names no file (an unset shell variable?); "
                "nothing was done"
            )


def refuse_json_file(paths: Iterable[str | Path], json_flag: bool, command: str) -> None:
    """Refuse a missing ``*.json`` among the inputs of a command whose ``--json`` is a flag
    (it prints JSON) and whose inputs are many: ``--json out.json`` made ``out.json`` an
    input, and the line said only that it does not exist (``evaluate``, ``classify`` and
    ``subclasses`` take a file).

    Raises:
        ExprsimError: one line (exit code 2).
    """
    from exprsim.errors import ExprsimError, printable

    if not json_flag:
        return
    for p in paths:
        if str(p).lower().endswith(".json") and not os.path.lexists(p):
            raise ExprsimError(
                f"{printable(str(p))}: no such file; --json of `exprsim {command}` takes no "
                f"file name, it prints JSON (redirect it: exprsim {command} ... --json > "
                f"{printable(str(p))})"
            )


class CommandParser(argparse.ArgumentParser):
    """The parser of a subcommand: an unknown option is refused with this subcommand's
    usage (``usage: exprsim faces ...``), not the top-level one; ``-v`` and ``-q`` are
    taken after the subcommand too (``exprsim embed DIR -o t.csv -q``), and positionals
    after options join the command's list of them, as do the names after a ``--``
    (``exprsim embed a.jpg -q -- -n.jpg``: ``-n.jpg`` is a file)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # SUPPRESS: not given here, the value of ``exprsim -q ...`` stays
        self.add_argument(
            "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=VERBOSE_HELP
        )
        self.add_argument(
            "-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help=QUIET_HELP
        )

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        ns, extras = super().parse_known_args(args, namespace)
        lists = [a.dest for a in self._actions if not a.option_strings and a.nargs in ("*", "+")]
        after: list[str] = []  # what follows a "--" left over: paths, whatever they look like
        if "--" in extras and len(lists) == 1:
            cut = extras.index("--")
            extras, after = extras[:cut], extras[cut + 1 :]
        plain = all(e == "-" or not e.startswith("-") for e in extras)
        if after and plain:
            extras = [*extras, *after]
        elif after:  # an unknown option before the "--": refused with it
            extras = [*extras, "--", *after]
        if extras and len(lists) == 1 and plain:
            # positionals after an option join the others (``exprsim tag add -q calm a.jpg``,
            # ``exprsim faces a.jpg -q b.jpg``), as GNU tools take them
            setattr(ns, lists[0], [*(getattr(ns, lists[0], None) or []), *extras])
            extras = []
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return ns, extras


def command_parsers(subparsers: Any) -> Any:
    """Make the subcommands added to ``subparsers`` (and theirs) :class:`CommandParser`
    instances; returns ``subparsers``."""
    subparsers._parser_class = CommandParser
    return subparsers


#: help texts shared by several commands
VERBOSE_HELP = "log debug messages"
QUIET_HELP = "no progress bars, warnings only"
MODEL_HELP = "shipped model name or checkpoint folder (default: default, the shipped model)"
DB_HELP = "face index database: an SQLite file or a postgresql:// URI"
DATA_DIR_HELP = (
    "FER+ folder (fer2013.csv, fer2013new.csv, or .csv.gz; default: $EXPRSIM_FER_DIR if "
    "set, else the first shared/data/fer2013 found beside or above the working folder, or "
    "beside the source checkout)"
)


def detector_help(default: str | None = None) -> str:
    """Help of a ``--detector`` option (``default``: the detector used when not given)."""
    from exprsim.faces.detect import DEFAULT_DETECTOR

    return f"face detector backend (see `exprsim detectors`; default {default or DEFAULT_DETECTOR})"


#: the PATH that stands for a list of paths read from stdin
STDIN_LIST = "-"

#: help of the ``-`` PATH and of ``--files-from``, the same in every batch command
LIST_NOTE = "a list of paths from stdin (as --files-from -)"
LIST_HELP = (
    "also read the PATHs listed in FILE, one per line (blank lines skipped; a NUL-separated "
    "list, as `find -print0` writes, too), each a file or folder as if named on the "
    "command line; - reads the list from stdin"
)


def add_files_from(p: argparse.ArgumentParser) -> None:
    """``--files-from FILE`` (:func:`listed_inputs`)."""
    p.add_argument("--files-from", metavar="FILE", help=LIST_HELP)


def list_inputs(files_from: str | None) -> list[tuple[str, Path]]:
    """``(what, path)`` of a ``--files-from`` list, for :func:`require_distinct_outputs`
    (an output never overwrites it)."""
    if not files_from or files_from == STDIN_LIST:
        return []
    return [("the --files-from list", Path(files_from))]


#: characters no list of paths holds: controls other than tab, newline, carriage return and
#: NUL (the separators of a list)
_BINARY = re.compile("[\x01-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _read_list(source: str) -> list[str]:
    """The paths listed in ``source`` (a file, or ``-``: stdin), see :data:`LIST_HELP`."""
    import sys

    from exprsim.errors import ExprsimError
    from exprsim.io import split_path_list

    if source == STDIN_LIST:
        stream = getattr(sys.stdin, "buffer", None)
        if stream is not None:
            raw = stream.read()
        else:  # a text stream (a test's), or none at all
            raw = os.fsencode(sys.stdin.read()) if sys.stdin is not None else b""
    else:
        try:
            raw = Path(source).read_bytes()
        except OSError as exc:
            raise ExprsimError(
                f"--files-from {source}: cannot read ({exc.strerror or exc})"
            ) from exc
    text = os.fsdecode(raw)  # bytes that are not UTF-8 kept, as the file system gives them
    if _BINARY.search(text):  # an image given as the list (`--files-from photo.jpg`)
        name = "stdin" if source == STDIN_LIST else f"--files-from {source}"
        raise ExprsimError(f"{name}: not a list of paths (binary data); give image files as PATHs")
    return split_path_list(text)


def listed_inputs(paths: Sequence[str], files_from: str | None = None) -> list[str]:
    """The input PATHs of a batch command: ``paths`` with ``-`` replaced by the paths read
    from stdin, then those listed in ``files_from`` (``-``: stdin). A blank PATH is refused
    (:func:`require_paths`); a listed path is a file or folder as if named on the command
    line.

    Raises:
        ExprsimError: stdin named twice, a list that cannot be read, or no path at all.
    """
    from exprsim.errors import ExprsimError

    require_paths(paths)
    if files_from is not None and not files_from.strip():
        raise ExprsimError("--files-from: empty name; give a list file, or - for stdin")
    sources = [p for p in paths if p == STDIN_LIST] + ([files_from] if files_from else [])
    if sources.count(STDIN_LIST) > 1:
        raise ExprsimError("- (stdin) can be read only once: name it once")
    out: list[str] = []
    for p in paths:
        out += _read_list(p) if p == STDIN_LIST else [p]
    if files_from:
        out += _read_list(files_from)
    if not out:
        given = "stdin" if STDIN_LIST in sources else f"--files-from {files_from}"
        raise ExprsimError(
            f"no input paths: {given} lists none"
            if sources
            else "no input paths: give image PATHs, - (a list on stdin) or --files-from FILE"
        )
    return out


def expand_image_paths(paths: list[str], empty_folders: bool = False) -> list[str]:
    """Image paths with folders replaced by the image files under them (recursively).

    A file named more than once (a folder and a file in it, relative and absolute, or
    through a link) is listed once, in first-seen order, as ``exprsim index add`` counts
    it (files are told apart by their resolved path, ``~`` expanded).

    ``empty_folders``: no image file is no error when every path is a folder (``index add
    --prune`` of a folder whose photos were all deleted has files to forget).

    Raises:
        ExprsimError: a blank path (:func:`require_paths`), or not one image file among
            ``paths`` (one line, exit code 2).
    """
    from exprsim.errors import ExprsimError, printable
    from exprsim.io import iter_image_files, unique_files

    require_paths(paths)
    out = [str(p) for p in unique_files(iter_image_files(paths))]
    if not out and not (empty_folders and all(os.path.isdir(p) for p in paths)):
        raise ExprsimError(f"no image files found in {' '.join(printable(p) for p in paths)}")
    return out


#: what ``exprsim`` keeps beside an index database ``DB``: ``DB`` + each of these (the
#: suffixes of :data:`exprsim.index.backends.SIDE_FILES`; a test keeps the two lists equal)
DB_SIDE_FILES: tuple[str, ...] = (
    "", "-wal", "-shm", "-journal", ".ann", ".ann.json", ".lock", ".web",
)  # fmt: skip


def db_inputs(db: str | Path | None) -> list[tuple[str, Path]]:
    """``(what, path)`` of each file of the SQLite index ``db`` for
    :func:`require_distinct_outputs`: the database, its journals, the ANN cache and its
    stamp, the writer lock; none for a ``postgresql://`` URI or ``None``."""
    if not db:
        return []
    from exprsim.index.backends import is_postgres_url

    if is_postgres_url(str(db)):
        return []
    return [
        (f"the index database (--db {db})" if not x else f"a file of the index --db {db}",
         Path(f"{db}{x}"))
        for x in DB_SIDE_FILES
    ]  # fmt: skip


def _identity(path: str | Path) -> tuple[Path, tuple[int, int] | None]:
    """``path`` resolved, and its (device, inode) when it exists (a hard link, or a
    case-insensitive file system, names one file in two ways)."""
    p = Path(path)
    from exprsim.io import file_key

    resolved = file_key(p, expand_user=False)
    try:
        st = p.stat()
    except (OSError, ValueError):
        return resolved, None
    return resolved, (st.st_dev, st.st_ino)


def require_distinct_outputs(
    outputs: Sequence[tuple[str, str | Path | None]],
    protected: Iterable[tuple[str, str | Path]],
) -> None:
    """Refuse, before any work, an output that would overwrite an input or another output.

    Args:
        outputs: ``(flag, path)`` of each output file (``None`` or empty: not given).
        protected: ``(what, path)`` of each file the command reads or keeps: ``"the index
            database (--db f.db)"`` (:func:`db_inputs`), the input images, ...

    Raises:
        ExprsimError: ``"<flag> <path> is <what>: it would be overwritten; nothing was
            done"`` (one line, exit code 2).
    """
    from exprsim.errors import ExprsimError

    given = [(flag, str(path), _identity(path)) for flag, path in outputs if path]
    if not given:
        return
    for i, (flag, out, ident) in enumerate(given):
        for other_flag, other, other_ident in given[:i]:
            if _same(ident, other_ident):
                raise ExprsimError(f"{flag} {out} and {other_flag} {other} are the same file")
    for what, path in protected:
        ident = _identity(path)
        for flag, out, out_ident in given:
            if _same(ident, out_ident):
                raise ExprsimError(
                    f"{flag} {out} is {what}: it would be overwritten; nothing was done"
                )


#: the files a model folder is made of (a training run's too): an output over one of them
#: broke the model; other files in the folder (a table an earlier command wrote there) are
#: outputs like any other
MODEL_FILES = ("config.json", "model.safetensors", "state.pt", "train_config.json", ".lock")


def model_inputs(*models: object, every: bool = False) -> list[tuple[str, Path]]:
    """``(what, file)`` of the files each model given as a folder is made of
    (:data:`MODEL_FILES`; ``every``: every file in it, as `exprsim evaluate` protects the
    runs it reads; a shipped name has none): an output written over its ``config.json`` or
    weights broke the model."""
    from exprsim.io import WRITING_MODEL_MARK

    out: list[tuple[str, Path]] = []
    for m in models:
        if isinstance(m, str | os.PathLike) and str(m) and Path(m).is_dir():
            folder = Path(m)
            what = f"a file of the model {folder}"
            if every:
                out += [(what, f) for f in folder.iterdir() if f.is_file()]
            else:
                out += [(what, folder / name) for name in (*MODEL_FILES, WRITING_MODEL_MARK)]
    return out


#: the FER2013 / FER+ files a data folder holds (each may be gzipped)
FER_FILES = tuple(
    name + ext
    for name in ("fer2013.csv", "fer2013new.csv", "fer2013_provenance.csv")
    for ext in ("", ".gz")
)


def fer_inputs(data_dir: str | os.PathLike[str] | None) -> list[tuple[str, Path]]:
    """``(what, file)`` of the FER+ files (:data:`FER_FILES`) in ``data_dir`` (``None``:
    :func:`exprsim.data.fer.default_data_dir`, ``$EXPRSIM_FER_DIR`` if set): a table
    written over ``fer2013.csv`` destroyed data that takes a login to download again."""
    from exprsim.data.fer import default_data_dir

    folder = Path(data_dir) if data_dir else default_data_dir()
    return [(f"a FER+ data file ({folder})", folder / name) for name in FER_FILES]


def _same(a: tuple[Path, tuple[int, int] | None], b: tuple[Path, tuple[int, int] | None]) -> bool:
    """Whether two :func:`_identity` values name one file."""
    return a[0] == b[0] or (a[1] is not None and a[1] == b[1])


def refuse_dash(path: str | Path, flag: str, folder: bool = False) -> None:
    """Refuse an output ``path`` of ``-`` (stdin for inputs: an output named so was a file
    or folder called ``-``), in one line saying what to give instead.

    Raises:
        ExprsimError: ``path`` is ``-``.
    """
    from exprsim.errors import ExprsimError

    if str(path) != "-":
        return
    where = "a folder" if folder else "a file"
    if flag in ("--json", "--html"):  # a page or a document streams: say how
        where += " (/dev/stdout for the standard output)"
    raise ExprsimError(f"{flag} -: '-' is not an output here; name {where}")


def require_writable(path: str | Path | None, flag: str, folder: bool = False) -> None:
    """Refuse, before any work, an output ``path`` given as ``flag`` that cannot be written:
    a file (:func:`writable_file_target`) or, with ``folder``, an output folder
    (:func:`writable_dir_target`). Nothing to check when ``path`` is ``None`` or empty.

    Raises:
        ExprsimError: ``"<flag> <why>"``, printed by the CLI as one line (exit code 2).
    """
    from exprsim.errors import ExprsimError

    if not path:
        return
    refuse_dash(path, flag, folder)
    problem = writable_dir_target(path) if folder else writable_file_target(path)
    if problem:
        raise ExprsimError(f"{flag} {problem}")
