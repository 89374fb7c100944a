"""What a stage's code is, for Snakemake's rerun trigger.

A digest of the library modules a stage runs, read as Python syntax trees without docstrings: a change to
what the code does reruns the stage, while editing a comment, a docstring or blank lines reruns nothing.
"""
from __future__ import annotations

import ast
import hashlib
from functools import lru_cache
from pathlib import Path

_SCOPES = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def _without_docstrings(tree: ast.Module) -> ast.Module:
    for node in ast.walk(tree):
        if isinstance(node, _SCOPES) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                node.body = node.body[1:] or [ast.Pass()]
    return tree


@lru_cache(maxsize=512)
def _tree_text(source: str, filename: str) -> bytes:
    # The stages share most modules, so one Snakemake start would parse each several times: keyed on the
    # text itself, a module is parsed once per process and an edited one again.
    return ast.dump(_without_docstrings(ast.parse(source, filename=filename))).encode()


def code_digest(root: Path, *parts: str) -> str:
    """16 hex digits over the modules `parts` (files or folders under `root`), comments and docstrings aside."""
    digest = hashlib.sha256()
    for part in parts:
        path = Path(root) / part
        for file in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            tree = _tree_text(file.read_text(encoding="utf-8"), str(file))
            digest.update(file.relative_to(root).as_posix().encode() + b"\0" + tree + b"\0")
    return digest.hexdigest()[:16]


def _imports(file: Path, root: Path) -> frozenset[Path]:
    """The library files that `file` imports (at the top or inside a function), as written in its source.
    An imported package counts with every module in it (dets/ loads its methods by name)."""
    return _imports_in(file.read_text(encoding="utf-8"), file, root)


@lru_cache(maxsize=512)
def _imports_in(source: str, file: Path, root: Path) -> frozenset[Path]:
    # keyed on the text, like _tree_text: every stage's walk reads the shared modules, each is parsed once
    package = file.parent.relative_to(root).parts  # where a relative import starts
    targets: list[tuple[str, ...]] = []
    for node in ast.walk(ast.parse(source, filename=str(file))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base, module = package[: len(package) + 1 - node.level], node.module
            elif node.module and node.module.split(".")[0] == root.name:
                base, module = (), node.module.partition(".")[2] or None
            else:
                continue
            where = (*base, *module.split(".")) if module else base
            if module:
                targets.append(where)
            targets += [(*where, alias.name) for alias in node.names]  # `from . import dets`: a module
        elif isinstance(node, ast.Import):
            targets += [tuple(a.name.split(".")[1:]) for a in node.names if a.name.split(".")[0] == root.name]
    found = set()
    for parts in targets:
        found |= _inits(root, parts[:-1])
        path = root.joinpath(*parts)
        if path.is_dir():
            found.update(path.rglob("*.py"))
        elif path.with_suffix(".py").is_file():
            found.add(path.with_suffix(".py"))
    return frozenset(found)


def _inits(root: Path, folders: tuple[str, ...]) -> set[Path]:
    """The __init__.py files that run before a module in `folders` (root's own, then each package's)."""
    candidates = [root.joinpath(*folders[:depth], "__init__.py") for depth in range(len(folders) + 1)]
    return {init for init in candidates if init.is_file()}


def modules_of(root: Path, module: str) -> list[str]:
    """Every library file (relative to `root`, the deltaspace folder) that the module `module` (e.g.
    "stages/train_det.py") runs: itself, its packages' __init__ files and whatever they import, transitively."""
    root = Path(root)
    start = root / module
    seen = {start} | _inits(root, start.parent.relative_to(root).parts)
    todo = list(seen)
    while todo:
        for found in _imports(todo.pop(), root) - seen:
            seen.add(found)
            todo.append(found)
    return sorted(p.relative_to(root).as_posix() for p in seen)


def stage_digest(root: Path, stage: str) -> str:
    """code_digest over what stage `stage` runs: stages/<stage>.py and every library module it imports."""
    return code_digest(root, *modules_of(root, f"stages/{stage}.py"))
