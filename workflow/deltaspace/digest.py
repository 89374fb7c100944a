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
