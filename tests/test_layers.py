"""The layering rules of docs/architecture.md, read from the source with ``ast``.

Every import counts: module level, inside functions, under ``TYPE_CHECKING``. The library
(what users import to embed, search, summarise, classify, tag and analyse video) never
imports training code or the command line; the command line and the web app sit on top.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

#: The library: top-level modules and packages of ``exprsim`` that must stay importable
#: without the training side or the CLI.
LIBRARY = (
    "faces",
    "models",
    "index",
    "apps",
    "video",
    "report",
    "io",
    "web",
    "data",
    "distances",
    "metrics",
    "workers",
)

#: What the library must never import (a name, or anything under it).
FORBIDDEN = (
    "exprsim.training",
    "exprsim.losses",
    "exprsim.cli",
)

#: Longest function allowed, in lines (nested functions count as part of their parent).
MAX_FUNCTION_LINES = 80


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES: dict[str, Path] = {_module_name(p): p for p in sorted((SRC / "exprsim").rglob("*.py"))}


def _imports(name: str, path: Path) -> list[tuple[str, int]]:
    """``(imported exprsim module, line)`` for every import in the file, wherever it is."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names if a.name.startswith("exprsim")]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                parent = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*parent, *([base] if base else [])])
            if base == "exprsim" or base.startswith("exprsim."):
                for a in node.names:  # `from pkg import module` imports pkg.module
                    sub = f"{base}.{a.name}"
                    found.append((sub if sub in MODULES else base, node.lineno))
    return found


IMPORTS = {name: _imports(name, path) for name, path in MODULES.items()}


def _is_library(name: str) -> bool:
    parts = name.split(".")
    return len(parts) > 1 and parts[1] in LIBRARY


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def test_the_rules_see_the_library() -> None:
    """Guard against the rules silently checking nothing (a moved folder, a renamed root)."""
    library = [m for m in MODULES if _is_library(m)]
    assert len(library) > 40
    assert {"exprsim.faces.pipeline", "exprsim.apps.search", "exprsim.io"} <= set(library)
    assert any(t == "exprsim.faces.stream" for t, _ in IMPORTS["exprsim.models.embedder"])


@pytest.mark.parametrize("package", LIBRARY)
def test_library_never_imports_training_or_cli(package: str) -> None:
    bad = [
        f"{MODULES[name].relative_to(SRC)}:{line} imports {target}"
        for name, found in sorted(IMPORTS.items())
        if _is_library(name) and name.split(".")[1] == package
        for target, line in found
        if any(_under(target, f) for f in FORBIDDEN)
    ]
    assert not bad, "the library reaches into training or the CLI:\n" + "\n".join(bad)


def _cycles(nodes: set[str]) -> list[list[str]]:
    """Strongly connected components (more than one module) of the import graph on ``nodes``."""
    graph = {n: {t for t, _ in IMPORTS[n] if t in nodes and t != n} for n in nodes}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycle_between_video_report_and_pipeline() -> None:
    report = {t for t, _ in IMPORTS["exprsim.video.report"]}
    assert "exprsim.video.pipeline" not in report, "the report must not run the pipeline"
    assert not any(
        "exprsim.video.pipeline" in c for c in _cycles({m for m in MODULES if _is_library(m)})
    )


def _long_functions(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    out = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                n = (child.end_lineno or child.lineno) - child.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    out.append(f"{path.relative_to(SRC)}:{child.lineno} {child.name} ({n} lines)")
            elif isinstance(child, ast.ClassDef):
                visit(child)  # methods count one by one; nested functions count in the parent

    visit(tree)
    return out


def test_no_function_over_80_lines() -> None:
    long = [f for path in MODULES.values() for f in _long_functions(path)]
    assert not long, "split these into named steps:\n" + "\n".join(long)
