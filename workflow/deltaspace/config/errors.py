"""The one error type of config problems: lines that read `config: <dotted.key.path>: <what is wrong>`."""
from __future__ import annotations

import re
from collections.abc import Iterable


class ConfigError(ValueError):
    """The config is unreadable or breaks the schema; `errors` holds (dotted path, message) pairs."""

    def __init__(self, message: str, errors: list[tuple[str, str]] | None = None):
        super().__init__(message)
        self.errors = errors or []

    @classmethod
    def from_errors(cls, errors: Iterable[tuple[str, str]]) -> ConfigError:
        errors = sorted(set(errors))
        return cls("\n".join(line(path, msg) for path, msg in errors), errors)


def line(path: str, msg: str) -> str:
    return f"config: {path}: {msg}" if path else f"config: {msg}"


def join(path: str, key: str) -> str:
    """A dotted key path one level down; a key with a space, a dot or a line break is quoted in brackets."""
    if not re.fullmatch(r"[A-Za-z0-9_-]+", key):  # a space, a dot or a line break would blur the path
        return f"{path}[{key!r}]"
    return f"{path}.{key}" if path else key
