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
                base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
            elif node.module and node.module.split(".")[0] == root.name:
                base = ()
                node = ast.ImportFrom(module=".".join(node.module.split(".")[1:]) or None, names=node.names, level=0)
            else:
                continue
            module = (*base, *node.module.split(".")) if node.module else base
            if node.module:
                targets.append(module)
            targets += [(*module, alias.name) for alias in node.names]  # `from . import dets`: a module
        elif isinstance(node, ast.Import):
            targets += [tuple(a.name.split(".")[1:]) for a in node.names if a.name.split(".")[0] == root.name]
    found: set[Path] = set()
    for parts in targets:
        for depth in range(1, len(parts) + 1):  # a module's packages run their __init__ first
            init = root.joinpath(*parts[:depth], "__init__.py")
            if init.is_file():
                found.add(init)
        path = root.joinpath(*parts)
        if path.is_dir():
            found.update(path.rglob("*.py"))
        elif path.with_suffix(".py").is_file():
            found.add(path.with_suffix(".py"))
    return frozenset(found)


def modules_of(root: Path, module: str) -> list[str]:
    """Every library file (relative to `root`, the deltaspace folder) that the module `module` (e.g.
    "stages/train_det.py") runs: itself, its packages' __init__ files and whatever they import, transitively."""
    root = Path(root)
    start = root / module
    seen = {start} | {root.joinpath(*start.relative_to(root).parts[:d], "__init__.py")
                      for d in range(len(start.relative_to(root).parts))}
    seen = {p for p in seen if p.is_file()}
    todo = list(seen)
    while todo:
        for found in _imports(todo.pop(), root) - seen:
            seen.add(found)
            todo.append(found)
    return sorted(p.relative_to(root).as_posix() for p in seen)


def stage_digest(root: Path, stage: str) -> str:
    """code_digest over what stage `stage` runs: stages/<stage>.py and every library module it imports."""
    return code_digest(root, *modules_of(root, f"stages/{stage}.py"))
