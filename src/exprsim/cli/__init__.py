"""The ``exprsim`` command: one entry point, one subcommand per library function.

Each module listed in :data:`COMMAND_MODULES` defines ``register(subparsers)``, adding
its subcommands with ``set_defaults(func=handler)`` where ``handler(args) -> int``.
Errors derived from :class:`exprsim.errors.ExprsimError`, and file-system errors
(``OSError``: an unwritable output, a full disk), become one line on stderr and exit code
2; Ctrl-C exits 130.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import signal
import sqlite3
import sys
from importlib import import_module
from typing import Any

from exprsim import __version__
from exprsim.cli.argtypes import QUIET_HELP, VERBOSE_HELP
from exprsim.errors import ExprsimError, printable
from exprsim.interrupts import Terminated, interruption, reset_interruption, terminate_as_interrupt

__all__ = ["Terminated", "build_parser", "command_path", "main"]

COMMAND_MODULES: tuple[str, ...] = (
    "exprsim.cli.faces_cmd",
    "exprsim.cli.model_cmd",
    "exprsim.cli.demo_cmd",
    "exprsim.cli.fec_cmd",
    "exprsim.cli.apps_cmd",
    "exprsim.cli.subclasses_cmd",
    "exprsim.cli.video_cmd",
    "exprsim.cli.serve_cmd",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="exprsim",
        description="Facial expression similarity: detect, align, embed and compare faces.",
    )
    parser.add_argument("--version", action="version", version=f"exprsim {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help=VERBOSE_HELP)
    parser.add_argument("-q", "--quiet", action="store_true", help=QUIET_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in COMMAND_MODULES:
        import_module(mod).register(sub)
    return parser


#: loggers of libraries whose INFO lines are start-up chatter, shown only with ``-v``
#: (faiss's loader logs ten lines on which CPU build it tried)
CHATTY_LOGGERS: tuple[str, ...] = ("faiss", "faiss.loader")


def _not_about_matplotlibs_cache(record: logging.LogRecord) -> bool:
    """False for matplotlib's warnings that its config folder is unwritable (an unwritable
    ``HOME``): it then works from a temporary folder, and the two warnings, printed by
    every command that draws, even with ``-q``, say nothing about the user's work."""
    text = str(record.msg)
    return not ("MPLCONFIGDIR" in text or text.startswith("mkdir -p failed for path"))


def _quiet_third_party(verbose: bool) -> None:
    """Set :data:`CHATTY_LOGGERS` to WARNING, or with ``verbose`` (``-v``) back to the
    root logger's level; matplotlib's cache-folder warnings only with ``-v``."""
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET if verbose else logging.WARNING)
    mpl = logging.getLogger("matplotlib")
    if verbose:
        mpl.removeFilter(_not_about_matplotlibs_cache)
    else:
        mpl.addFilter(_not_about_matplotlibs_cache)


def _terminate_as_interrupt() -> None:
    """Make SIGTERM raise :class:`Terminated` in the main thread (the process's own
    command line only: tests and library callers keep their handlers)."""
    terminate_as_interrupt()


def command_path(args: argparse.Namespace) -> str:
    """The command as typed, for messages: ``"index add"``, ``"fec fetch"``, ``"faces"``."""
    words = [getattr(args, "command", None)]
    words += [getattr(args, a, None) for a in ("index_command", "fec_command")]
    return " ".join(str(w) for w in words if w)


def _quit_on_next_signal(code: int | None) -> None:
    """Once the command has returned (done, or interrupted and what it had saved): a
    Ctrl-C or SIGTERM while Python winds down (worker threads, exit handlers) exits at
    once, quietly, where it printed a traceback from an exit handler ("Exception ignored
    in atexit callback"), or aborted. The exit code is ``code`` (an interrupted
    command's 130, 143 or 129), else the signal's (128 + its number, as a default kill
    would give)."""

    def leave(signum: int, frame: object) -> None:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code if code is not None else 128 + signum)

    from exprsim.interrupts import TERMINATING, ignored

    for sig in (signal.SIGINT, *TERMINATING):
        if not ignored(sig):  # a background job's Ctrl-C: still none
            with contextlib.suppress(ValueError, OSError):
                signal.signal(sig, leave)


def _sqlite_message(exc: sqlite3.Error, args: argparse.Namespace) -> str:
    """One line for a SQLite error: a database locked past the wait, or a disk full or
    failing, names the cause."""
    from exprsim.index.backends import is_disk_error, is_locked, size_limit_note

    db = getattr(args, "db", None) or "the index database"
    if is_locked(exc):
        return (
            f"another process is writing to {db} (a bulk load, `tag --index`?) and held it "
            "longer than this command waits; try again when it is done"
        )
    if is_disk_error(exc):
        return (
            f"{db}: its disk is full or failing{size_limit_note()} ({exc}); what was stored "
            "before the error "
            f"stays ({_again(args)} goes on from there)"
        )
    return f"database: {exc}"


def _again(args: argparse.Namespace) -> str:
    """The command to run again once the disk has room, for messages: ``"`exprsim tag
    add` again"`` (a ``tag`` action is a positional word, not a sub-command)."""
    words = command_path(args).split()
    action = (getattr(args, "args", None) or [None])[0] if words == ["tag"] else None
    if action in ("add", "remove"):
        words.append(action)
    return f"`exprsim {' '.join(words)}` again"


def _working_folder_exists() -> bool:
    try:
        os.getcwd()
    except FileNotFoundError:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the process exit code.

    ``argv`` ``None`` (the ``exprsim`` command itself): SIGTERM is handled as Ctrl-C is
    (what was done is saved; exit code 143), and once the command has returned a signal
    while the process winds down exits at once without a traceback.
    """
    as_process = argv is None
    reset_interruption()
    if as_process:
        _terminate_as_interrupt()
    code = _main(argv)
    if as_process:
        _quit_on_next_signal(code if code in (129, 130, 143) else None)
    return code


def _parse_args(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """``parser.parse_args(argv)``, with what ``--help`` or ``--version`` prints held back
    and then written as a command's results are (:func:`_show_printed`): a stdout that is
    full, closed or failing exits 2 saying so, where argparse dropped the write's error
    and exited 0 (or, the text buffered, 120 with Python's "Exception ignored")."""
    real_stdout = sys.stdout
    sys.stdout = printed = io.StringIO()
    try:
        return parser.parse_args(argv)
    except SystemExit as exc:
        text = printed.getvalue()
        if exc.code not in (0, None) or not text:  # a usage error: said on stderr
            raise
        sys.stdout = real_stdout
        where = _printing_parser(parser, sys.argv[1:] if argv is None else argv).prog
        raise SystemExit(_show_printed(where, text, argv is None)) from None
    finally:
        sys.stdout = real_stdout


def _printing_parser(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.ArgumentParser:
    """The (sub)command parser that ``argv`` reaches, following its command words
    (``index add --help``: the parser of ``exprsim index add``) up to the option that
    printed (``--help index``: the top level's help)."""
    for word in argv:
        # argparse takes an abbreviation (--hel): a prefix of either is the option too
        if word == "-h" or (
            len(word) > 2 and ("--help".startswith(word) or "--version".startswith(word))
        ):
            break
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if subs and word in subs[0].choices:
            parser = subs[0].choices[word]
        elif not word.startswith("-"):  # a positional: no command word follows it
            break
    return parser


def _show_printed(prog: str, text: str, as_process: bool) -> int:
    """Write ``text`` (help or version) to stdout under :func:`standard_streams`' checks;
    the exit code: 0, 2 when it could not be written (one line on stderr, ``prog: error:
    ...``), 141 when the pipe it went to was closed (``| head``, quiet, as commands)."""
    from exprsim.cli.stdstreams import standard_streams

    real_stdout, real_stderr = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = standard_streams()
    try:
        try:
            sys.stdout.write(text)
            sys.stdout.flush()
        except BrokenPipeError:
            return 141
        except OSError as exc:  # a full disk (>/dev/full), ...
            why = exc.strerror or str(exc)
        else:  # closed (>&-), or its terminal gone: counted as lost
            lost = getattr(sys.stdout, "lost", 0)
            why = f"{sys.stdout.why}: what it printed was lost" if lost else ""
        if why:
            print(f"{prog}: error: {why}", file=sys.stderr)
        return 2 if why else 0
    finally:
        _restore(real_stdout, real_stderr, as_process)


def _restore(stdout: Any, stderr: Any, as_process: bool) -> None:
    """Put the process's own streams back. Run as the ``exprsim`` command
    (``as_process``), what stdout still holds but cannot write (a full disk) is dropped:
    Python's flush at exit failed again, exiting 120 with "Exception ignored"; the
    command has said so already. A program calling :func:`main` keeps its stream as it
    is (its descriptor pointed at /dev/null lost all its later output)."""
    sys.stdout, sys.stderr = stdout, stderr
    try:
        sys.stdout.flush()
    except (OSError, ValueError, AttributeError):  # AttributeError: None (closed at start)
        if not as_process:
            return
        with contextlib.suppress(OSError, ValueError, AttributeError):
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, sys.stdout.fileno())
            os.close(null)


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    args = _parse_args(parser, argv)
    if not getattr(args, "func", None):  # no command: the help, shown as --help shows it
        return _show_printed(parser.prog, parser.format_help(), argv is None) or 2
    from tqdm.contrib.logging import logging_redirect_tqdm

    from exprsim.cli.logstream import LogStream, wants_log_stream
    from exprsim.cli.stdstreams import lost_output, standard_streams

    real_stdout, real_stderr = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = standard_streams()  # closed, full or ASCII-only streams
    if not args.quiet and wants_log_stream(sys.stderr):
        sys.stderr = LogStream(sys.stderr)  # a log file: bars as plain lines
    # after the swap: the handler writes to sys.stderr as it is now, which is what
    # logging_redirect_tqdm looks for (a handler on the file beneath wrote every line twice)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else (logging.WARNING if args.quiet else logging.INFO),
        format="%(levelname)s %(name)s: %(message)s",
    )
    _quiet_third_party(args.verbose)
    if not _working_folder_exists():  # relative names mean nothing; torch's MKL dies
        print(
            f"exprsim {command_path(args)}: error: the working folder no longer exists "
            "(deleted or moved); cd to one that does",
            file=sys.stderr,
        )
        return 2
    from exprsim.cli.limits import os_limit_message, raise_soft_limits, resource_message

    raise_soft_limits()
    try:
        with logging_redirect_tqdm():  # log lines go above progress bars, not onto them
            code = int(args.func(args))
        if args.command == "serve":  # its stdout carries the access log, not results
            return code
        return lost_output(command_path(args), code)
    except ExprsimError as exc:  # one line, whatever a file name in it holds
        print(f"exprsim {command_path(args)}: error: {printable(str(exc))}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `exprsim ... | head` closed the pipe: stop quietly, as cat does
        try:  # Python would complain again when flushing stdout at exit
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 141  # 128 + SIGPIPE
    except sqlite3.Error as exc:  # a damaged index database, found after it was opened
        print(f"exprsim {command_path(args)}: error: {_sqlite_message(exc, args)}", file=sys.stderr)
        return 2
    except OSError as exc:  # the file system refused (an output folder, a full disk, ...)
        limit = os_limit_message(exc)  # a limit, not the file's fault: no file named
        where = f" {printable(str(exc.filename))}:" if exc.filename and not limit else ""
        print(f"exprsim {command_path(args)}: error:{where} {limit or exc.strerror or exc}",
              file=sys.stderr)  # fmt: skip
        return 2
    except KeyboardInterrupt as exc:  # Ctrl-C (130); SIGTERM, SIGHUP (Terminated: 143, 129)
        word, code = interruption(exc)
        print(f"exprsim {command_path(args)}: {word}", file=sys.stderr)
        return code
    except (MemoryError, RuntimeError, ImportError) as exc:  # a resource limit, or a bug
        line = resource_message(exc)
        if line is None:
            raise
        print(f"exprsim {command_path(args)}: error: {line}", file=sys.stderr)
        return 2
    except Exception as exc:
        from exprsim.index.pgvector import is_driver_error, primary_message, scrub

        if not is_driver_error(exc):
            raise
        # PostgreSQL went away or refused mid-command (server stopped, permissions, ...)

        db = getattr(args, "db", None)
        text = scrub(primary_message(exc), str(db) if db else None)  # one line, no password
        print(f"exprsim {command_path(args)}: error: PostgreSQL: {text}", file=sys.stderr)
        return 2
    finally:
        _restore(real_stdout, real_stderr, argv is None)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
