"""The task-data check of the config validator, remembering the file tasks that passed."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from .. import tasks


def check_task_cached(task: dict, data: dict, base_dir, cache=None) -> None:
    """deltaspace.tasks.check_task, remembering the file tasks that passed: one whose entry, data settings,
    files (by content) and checking code (deltaspace/tasks.py, pandas, pyarrow, numpy) are those of a passed
    check is not read again.

    Every Snakemake start validates the config, and reading a task's files in full costs ~50 ms each: a
    no-op rerun or a dry run of a config with many tasks would spend seconds on it; hashing a file's bytes
    costs ~1 ms. Only passes are remembered, so a problem is always reported by a fresh check. The cache
    folder (`cache`, else $DELTASPACE_CACHE, else $XDG_CACHE_HOME/deltaspace, else ~/.cache/deltaspace)
    holds one small file per passed check; deleting it is always safe; one that cannot be written is
    skipped. (It lives here, not in tasks.py: tasks.py is code of every model stage, whose edits rerun them.)
    """
    key = _check_key(task, data, Path(base_dir))
    try:
        marker = (Path(cache) if cache is not None else cache_dir()) / "checked-tasks" / key if key else None
    except RuntimeError:  # no home folder to put it in
        marker = None
    if marker is not None and marker.is_file():
        return
    tasks.check_task(task, data, Path(base_dir))
    if marker is not None:
        try:
            marker.parent.mkdir(parents=True, exist_ok=True)
            tmp = marker.with_name(f"{marker.name}.{os.getpid()}.tmp")
            tmp.write_text(f"{task['name']}\n", encoding="utf-8")
            os.replace(tmp, marker)
        except OSError:
            pass


def cache_dir() -> Path:
    """Where deltaspace keeps what it may recompute at any time (check_task_cached's passes)."""
    if os.environ.get("DELTASPACE_CACHE"):
        return Path(os.environ["DELTASPACE_CACHE"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "deltaspace"


def _check_key(task: Any, data: Any, base_dir: Path) -> str | None:
    """What a file task's check depends on, as a hex digest; None when it is no file task or its files
    cannot be listed and read (check_task then says why)."""
    if not isinstance(task, dict) or task.get("source") != "file":
        return None
    import numpy
    import pandas
    import pyarrow

    digest = hashlib.sha256()
    try:
        files = tasks.task_files(task, data, base_dir)
        code = [Path(tasks.__file__).read_bytes(), pandas.__version__, pyarrow.__version__, numpy.__version__]
        digest.update(repr(code).encode() + json.dumps([task, data], sort_keys=True, default=repr).encode())
        for split, file in sorted(files.items()):
            digest.update(f"\0{split}\0{file.resolve()}\0".encode() + hashlib.sha256(file.read_bytes()).digest())
    except (tasks.TaskError, OSError, TypeError, ValueError, KeyError):
        return None
    return digest.hexdigest()
