"""Artifact I/O: safetensors for tensors, Parquet for tables, every write atomic.

A file appears under its final name only once it is complete: we write to a temporary name in the same
directory, fsync, and rename. A killed job therefore leaves either the previous file or nothing, never a
truncated file that Snakemake would take as done.
"""
from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from safetensors import safe_open
from safetensors.torch import save_file


class ArtifactError(ValueError):
    """An artifact from an earlier stage is missing, truncated or not what this stage expects."""


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_tensors(path, tensors: dict[str, torch.Tensor], metadata: dict[str, Any] | None = None) -> None:
    """Save tensors with JSON-encoded metadata in the safetensors header (values must be JSON-able)."""
    header = {k: json.dumps(v, sort_keys=True) for k, v in (metadata or {}).items()}
    contiguous = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(contiguous, str(tmp), metadata=header)


def load_tensors(path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Load every tensor and the decoded metadata; a damaged file raises ArtifactError naming it."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path}: artifact is missing")
    try:
        with safe_open(str(path), framework="pt") as fh:
            header = fh.metadata() or {}
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except Exception as exc:  # safetensors raises several types for damaged files
        raise ArtifactError(f"{path}: not a readable safetensors file ({exc}); delete it and rerun its stage") from exc
    return tensors, {k: json.loads(v) for k, v in header.items()}


def save_table(path, frame: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)


def load_table(path) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path}: artifact is missing")
    try:
        return pd.read_parquet(path)
    except Exception as exc:
        raise ArtifactError(f"{path}: not a readable Parquet file ({exc}); delete it and rerun its stage") from exc


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend (jobs have no display); imported only by plotting stages."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path) -> None:
    """Write a figure as PNG, atomically, and free it."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    pyplot().close(fig)
