"""Jobs running side by side on a workstation with several GPUs claim different devices (no GPU needed)."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from deltaspace import gpus, models

HOLDER = """
import sys
from pathlib import Path
from deltaspace.gpus import claim
print(claim({count}, Path(sys.argv[1])), flush=True)
sys.stdin.read()  # hold the device until the test closes stdin
"""


def job(tmp_path, count: int) -> subprocess.Popen:
    """A separate process (as a Snakemake job is) that claims a device and holds it."""
    return subprocess.Popen([sys.executable, "-c", HOLDER.format(count=count), str(tmp_path)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_concurrent_jobs_get_different_devices_and_free_them_on_exit(tmp_path):
    first, second = job(tmp_path, 2), job(tmp_path, 2)
    got = {int(first.stdout.readline()), int(second.stdout.readline())}
    assert got == {0, 1}
    third = job(tmp_path, 2)  # more GPU jobs than devices: a clear error, not a shared device
    _, err = third.communicate(timeout=60)
    assert third.returncode != 0 and "all 2 GPUs are held by other deltaspace jobs" in err
    first.communicate(timeout=60)  # the first job ends (its lock goes with it) ...
    fourth = job(tmp_path, 2)
    index = int(fourth.stdout.readline())  # ... and a new job gets its device
    for p in (second, fourth):
        p.communicate(timeout=60)
    assert index in got


def test_a_killed_job_frees_its_device(tmp_path):
    held = job(tmp_path, 1)
    assert held.stdout.readline().strip() == "0"
    held.kill()
    held.wait(timeout=60)
    assert gpus.claim(1, tmp_path / "") == 0


def test_devices_are_claimed_only_when_several_are_visible(monkeypatch, tmp_path):
    monkeypatch.setenv("DELTASPACE_GPU_LOCKS", str(tmp_path))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    claimed = []
    monkeypatch.setattr(models, "claim", lambda count: claimed.append(count) or 1)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    assert models.select_device("auto") == torch.device("cuda", 1) and claimed == [3]
    assert models.select_device("cuda:2") == torch.device("cuda", 2) and claimed == [3]  # as given
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)  # e.g. SLURM gave this job one device
    assert models.select_device("cuda") == torch.device("cuda", 0) and claimed == [3]


def test_no_device_to_claim_is_an_error(tmp_path):
    with pytest.raises(gpus.GPUError, match="no GPU"):
        gpus.claim(0, tmp_path)
