"""Artifact I/O: safetensors for tensors, Parquet for tables, every write atomic, every artifact stamped.

A file appears under its final name only once it is complete: we write to a temporary name in the same
directory, fsync, and rename. A killed job therefore leaves either the previous file or nothing, never a
truncated file that Snakemake would take as done; a full disk fails the write and keeps the previous file.

Tensors are only ever read with safetensors (no pickle). Every artifact carries its provenance: the versions
of the packages that made it and, inside a workflow job, the job's rule, wildcards, config slice and code
digest (see `recording`).
"""
from __future__ import annotations

import errno
import importlib.metadata
import json
import os
import platform
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from safetensors import safe_open
from safetensors.torch import save_file

PROVENANCE = "provenance"  # the metadata key of every artifact (Parquet: b"deltaspace.provenance")
_PARQUET_KEY = b"deltaspace." + PROVENANCE.encode()
_HEADER_KEY = "deltaspace"  # the one safetensors metadata key, holding every entry as one JSON text
_PACKAGES = ("transformers", "peft", "safetensors", "pandas", "pyarrow", "numpy")
_job: dict[str, Any] = {}  # what `recording` says about the running job


class ArtifactError(ValueError):
    """An artifact from an earlier stage is missing, truncated or not what this stage expects."""


def versions() -> dict[str, str | None]:
    """The versions of Python and of the packages whose behaviour decides what an artifact holds."""
    found = {"python": platform.python_version(), "torch": torch.__version__}
    for name in _PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def provenance() -> dict[str, Any]:
    """What every artifact written now records: package versions, and the job's stage, wildcards, config
    slice and code digest where a workflow job is `recording`."""
    return {"versions": versions(), **_job}


@contextmanager
def recording(stage: str, config: Mapping[str, Any], code: str | None, wildcards: Mapping[str, str] | None = None):
    """Stamp every artifact written inside the block with this job's stage, config slice and code digest."""
    previous = dict(_job)
    _job.clear()
    _job.update(stage=stage, wildcards=dict(wildcards or {}), config=dict(config), code=code)
    try:
        yield
    finally:
        _job.clear()
        _job.update(previous)


def _os_error(exc: Exception) -> int | None:
    """The errno of a failed write (0 where unknown); None for an error that is not the system's. Writers
    written in Rust or C++ (safetensors, pyarrow) report it only in their message, as "os error N"."""
    if isinstance(exc, OSError):
        return exc.errno or 0
    found = re.search(r"os error (\d+)", str(exc))
    return int(found.group(1)) if found else None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _stale_temporaries(path: Path) -> list[Path]:
    return list(path.parent.glob(f".{path.name}.*.tmp"))


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    Temporaries a killed writer left beside `path` are removed first (one job owns an output at a time). A
    failed write (a full disk, a quota, a file size limit) becomes an ArtifactError naming `path`; the
    previous file, if any, is kept as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in _stale_temporaries(path):
        stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        try:
            yield tmp
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's file is private; an artifact gets the usual mode
            os.replace(tmp, path)
        except Exception as exc:
            code = _os_error(exc)
            if code is None:
                raise
            kept = "the previous file is kept" if path.exists() else "nothing was written"
            hint = " (no space left on the device)" if code in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG) else ""
            raise ArtifactError(f"{path}: writing failed{hint}: {os.strerror(code) if code else exc}; {kept}") from exc
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """atomic_path for a folder: yield a temporary folder beside `path`, put in its place (its files synced)
    only if the block succeeds. A folder cannot replace another in one rename: an existing one is moved aside
    first and removed after."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in _stale_temporaries(path):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        for file in tmp.iterdir():
            with open(file, "rb") as fh:
                os.fsync(fh.fileno())
            os.chmod(file, 0o666 & ~_umask())
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp's folder is private; an artifact gets the usual mode
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def save_tensors(path, tensors: dict[str, torch.Tensor], metadata: dict[str, Any] | None = None) -> None:
    """Save tensors with metadata (JSON-able values) in the safetensors header, the provenance under
    "provenance". The metadata goes in as one sorted JSON text under one key: safetensors writes several keys
    in a varying order, and then the same tensors would give other bytes (and other input checksums, which
    Snakemake compares) on every run."""
    metadata = {**(metadata or {}), PROVENANCE: provenance()}
    header = {_HEADER_KEY: json.dumps(metadata, sort_keys=True)}
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
    if _HEADER_KEY in header:
        return tensors, json.loads(header[_HEADER_KEY])
    return tensors, {k: json.loads(v) for k, v in header.items()}  # written before the one-key header


def save_table(path, frame: pd.DataFrame) -> None:
    """Write a table as Parquet, its provenance in the file's schema metadata (see `table_provenance`)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    stamp = json.dumps(provenance(), sort_keys=True).encode()
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), _PARQUET_KEY: stamp})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def table_provenance(path) -> dict[str, Any]:
    """The provenance a table was written with ({} for a Parquet file this project did not write)."""
    import pyarrow.parquet as pq

    try:
        meta = pq.read_schema(path).metadata or {}
    except Exception as exc:
        raise ArtifactError(f"{path}: not a readable Parquet file ({exc}); delete it and rerun its stage") from exc
    return json.loads(meta[_PARQUET_KEY]) if _PARQUET_KEY in meta else {}


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
    """Write a figure as PNG, atomically, its provenance in a text chunk, and free it."""
    stamp = {"Software": "deltaspace", "Comment": json.dumps({PROVENANCE: provenance()}, sort_keys=True)}
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight", metadata=stamp)
    pyplot().close(fig)
