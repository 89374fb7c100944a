"""Jobs running side by side on a workstation with several GPUs claim different devices (no GPU needed)."""
from __future__ import annotations

import subprocess
import sys
import threading

import pytest
import torch

from deltaspace import gpus, models

WAIT = 60  # seconds any wait on a job process may take before the test fails (instead of hanging)

HOLDER = """
import sys
from pathlib import Path
from deltaspace.gpus import claim
print(claim({count}, Path(sys.argv[1])), flush=True)
sys.stdin.read()  # hold the device until the test closes stdin
"""


@pytest.fixture
def job(tmp_path):
    """Starts a separate process (as a Snakemake job is) that claims a device and holds it; any still
    running at the end of the test is killed."""
    started: list[subprocess.Popen] = []

    def start(count: int) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-c", HOLDER.format(count=count), str(tmp_path)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=WAIT)
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            pipe.close()


def claimed(proc: subprocess.Popen) -> int:
    """The device a job printed, read with a timeout: a job that hangs or dies fails the test with its stderr."""
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(WAIT)
    if reader.is_alive():
        proc.kill()
        _, err = proc.communicate(timeout=WAIT)
        pytest.fail(f"the job printed no device within {WAIT} s; stderr: {err[-2000:]}")
    if not line[0].strip():
        _, err = proc.communicate(timeout=WAIT)
        pytest.fail(f"the job ended (exit {proc.returncode}) without claiming a device; stderr: {err[-2000:]}")
    return int(line[0])


def release(proc: subprocess.Popen) -> str:
    """Close the job's stdin, so that it ends, and wait (bounded) for it; its stderr."""
    _, err = proc.communicate(timeout=WAIT)
    return err


def test_concurrent_jobs_get_different_devices_and_free_them_on_exit(job):
    first, second = job(2), job(2)
    got = {claimed(first), claimed(second)}
    assert got == {0, 1}
    third = job(2)  # more GPU jobs than devices: a clear error, not a shared device
    err = release(third)
    assert third.returncode != 0 and "all 2 GPUs are held by other deltaspace jobs" in err
    release(first)  # the first job ends (its lock goes with it) ...
    assert first.returncode == 0
    fourth = job(2)
    index = claimed(fourth)  # ... and a new job gets its device
    for p in (second, fourth):
        release(p)
    assert index in got


def test_a_killed_job_frees_its_device(job, tmp_path):
    held = job(1)
    assert claimed(held) == 0
    held.kill()
    held.wait(timeout=WAIT)
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
