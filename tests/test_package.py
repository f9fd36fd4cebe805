"""Package-level promises: cheap side-effect-free import, version, CLI basics."""

from __future__ import annotations

import subprocess
import sys

import pytest

import exprsim
from exprsim.cli import main


def test_import_is_light_and_fast():
    code = (
        "import sys, time, os; t = time.perf_counter(); env = dict(os.environ);"
        "import exprsim; dt = time.perf_counter() - t;"
        "heavy = [m for m in ('torch', 'cv2', 'mediapipe', 'pandas', 'sklearn') if m in sys.modules];"
        "assert env == dict(os.environ), 'import changed the environment';"
        "print(dt, heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    dt, heavy = out.stdout.split(" ", 1)
    assert float(dt) < 1.0
    assert heavy.strip() == "[]"
    assert out.stderr == ""


def test_public_names_resolve():
    for name in exprsim.__all__:
        assert getattr(exprsim, name) is not None
    with pytest.raises(AttributeError):
        exprsim.does_not_exist  # noqa: B018


def test_cli_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert exprsim.__version__ in capsys.readouterr().out


def test_cli_models_lists_registry(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in ("exprnet_s", "fecnet", "feenet", "densenet"):
        assert name in out


def test_cli_bad_config_is_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main(["train", "--config", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not valid JSON" in err[0]


def test_cli_no_command_shows_help(capsys):
    assert main([]) == 2
    assert "usage" in capsys.readouterr().out


def test_apps_functions_stay_functions_after_their_modules_are_imported() -> None:
    """``exprsim.apps.search`` / ``.summarize`` are the documented functions, even once the
    submodules of the same names have been imported anywhere in the process."""
    import importlib
    import types

    import exprsim.apps as apps

    importlib.import_module("exprsim.apps.search")
    importlib.import_module("exprsim.apps.summarize")

    for name in ("search", "summarize"):
        module = importlib.import_module(f"exprsim.apps.{name}")
        assert isinstance(module, types.ModuleType)
        assert getattr(apps, name) is getattr(module, name)
        assert callable(getattr(apps, name)) and not isinstance(
            getattr(apps, name), types.ModuleType
        )
    from exprsim.apps import search, summarize

    for fn in (search, summarize):
        assert isinstance(fn, types.FunctionType)
