"""Round 37 (exprsim seen by a user's type checker): ``exprsim.apps`` and ``exprsim.index``
load their names lazily through a module ``__getattr__`` that type checkers saw, so every
name imported from them (the README's ``from exprsim.index import FaceIndex``) was ``Any``
(``index.qeury(...)`` passed ``mypy --strict``), ``search`` and ``summarize`` were typed as
modules ("Module not callable"), and a misspelt name passed. Each package now shows a type
checker every lazy name as imported from its module (and hides ``__getattr__``), while
importing the package stays cheap."""

from __future__ import annotations

import ast
import subprocess
import sys
from importlib import import_module
from pathlib import Path

import pytest

import exprsim

PACKAGES = ["exprsim", "exprsim.apps", "exprsim.index"]


def _tree(package: str) -> ast.Module:
    path = Path(import_module(package).__file__ or "")
    return ast.parse(path.read_text(encoding="utf-8"))


def _type_checking_blocks(tree: ast.Module) -> list[ast.If]:
    def checks(test: ast.expr) -> bool:
        inner = test.operand if isinstance(test, ast.UnaryOp) else test
        return isinstance(inner, ast.Name) and inner.id == "TYPE_CHECKING"

    return [n for n in tree.body if isinstance(n, ast.If) and checks(n.test)]


@pytest.mark.parametrize("package", PACKAGES)
def test_every_lazy_name_is_imported_for_type_checkers_from_its_module(package: str) -> None:
    lazy: dict[str, str] = import_module(package)._LAZY  # type: ignore[attr-defined]
    seen: dict[str, str] = {}
    for block in _type_checking_blocks(_tree(package)):
        body = block.body if not isinstance(block.test, ast.UnaryOp) else block.orelse
        for node in body:
            if isinstance(node, ast.ImportFrom):
                for alias in node.names:
                    seen[alias.asname or alias.name] = str(node.module)
    assert seen == lazy


@pytest.mark.parametrize("package", PACKAGES)
def test_no_module_getattr_is_seen_by_a_type_checker(package: str) -> None:
    tree = _tree(package)
    top = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
    assert "__getattr__" not in top  # defined under `if not TYPE_CHECKING` / `else` only
    assert callable(getattr(import_module(package), "__getattr__", None))


def test_importing_the_packages_loads_no_heavy_module() -> None:
    code = (
        "import sys, exprsim, exprsim.apps, exprsim.index\n"
        "heavy = [m for m in ('torch', 'cv2', 'mediapipe', 'exprsim.index.store') if m in sys.modules]\n"
        "print(heavy)\n"
        "print(exprsim.apps.search.__name__, exprsim.index.FaceIndex.__name__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["[]", "search FaceIndex"]


def test_a_misspelt_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'load_modle'"):
        exprsim.load_modle  # type: ignore[attr-defined]  # noqa: B018


def test_parameters_that_take_lists_and_path_likes_say_so() -> None:
    """``embed_crops([crop])`` (as its own error message advises), ``load_model(Path(...))``
    and ``odd_one_out(list_of_embeddings)`` work, and failed ``mypy --strict``."""
    import inspect

    from exprsim.apps.classify import ExpressionKNN
    from exprsim.apps.compare import distance_matrix, odd_one_out
    from exprsim.index.store import FaceIndex
    from exprsim.io import ImageSource
    from exprsim.models.embedder import Embedder, load_model

    takes = {
        Embedder.embed_crops: "crops",
        Embedder.emotion_proba: "crops",
        Embedder.embed_with_proba: "crops",
        odd_one_out: "embeddings",
        distance_matrix: "embeddings",
        ExpressionKNN.fit: "X",
        ExpressionKNN.predict: "X",
        ExpressionKNN.predict_proba: "X",
        FaceIndex.query: "embeddings",
    }
    for function, name in takes.items():
        assert inspect.signature(function).parameters[name].annotation == "ArrayLike", function
    assert "PathLike" in str(inspect.signature(load_model).parameters["name"].annotation)
    assert {bytearray, memoryview} <= set(ImageSource.__args__)
