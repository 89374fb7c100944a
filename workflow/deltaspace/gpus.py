"""Concurrent GPU jobs on one workstation land on different devices.

`snakemake --cores N --resources gpu=K` lets at most K jobs that ask for a GPU run at once, but does not say
which device each should use. Each job therefore claims one: it takes an exclusive, non-blocking lock on a
file per device and keeps the first one it gets for as long as the process lives. The operating system
drops the lock when the process ends, killed or not, so a crashed job never holds a device.

Under a scheduler that gives each job its own devices (SLURM sets CUDA_VISIBLE_DEVICES), a job sees one
device and needs no claim.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
from pathlib import Path
from typing import IO


class GPUError(RuntimeError):
    """No device is free for this job."""


_HELD: list[IO] = []  # the open lock files of this process: closing one would free its device


def lock_dir() -> Path:
    """Where the lock files live: machine-wide (devices are), per user; DELTASPACE_GPU_LOCKS overrides it."""
    default = Path(tempfile.gettempdir()) / f"deltaspace-gpus-{os.getuid()}"
    return Path(os.environ.get("DELTASPACE_GPU_LOCKS", default))


def claim(count: int, where: Path | None = None) -> int:
    """Index (0..count-1) of a device no other live process holds; held until this process ends."""
    if count < 1:
        raise GPUError("no GPU to claim")
    where = where or lock_dir()
    where.mkdir(parents=True, exist_ok=True)
    # Lock names carry the visible set, so jobs that see different devices as cuda:0 never collide.
    visible = hashlib.sha1(os.environ.get("CUDA_VISIBLE_DEVICES", "all").encode()).hexdigest()[:8]
    for index in range(count):
        handle = open(where / f"gpu-{visible}-{index}.lock", "a+")  # noqa: SIM115 (held open on purpose)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        _HELD.append(handle)
        return index
    raise GPUError(f"all {count} GPUs are held by other deltaspace jobs; run with --resources gpu={count} so that "
                   "Snakemake starts no more GPU jobs than there are devices")
