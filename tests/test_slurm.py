"""configs/tiny.yaml through a real single-node SLURM cluster (cluster/slurm-up.sh) with profiles/slurm.

To keep the test command short, the SLURM runs start from a copy of the local run (tests/conftest.py
tiny_run): the first redoes LoRA's four train_det jobs (one SLURM group job); the second, with modification
times left out of the rerun triggers (the redone deltas are bit-identical, so the subspace built from them
stays valid), redoes LoRA's optimize_subspace jobs, the transfer and landscape jobs that use them (SLURM
group jobs) and the report (a light rule: locally). Every redone output must equal the local run's.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess

import pandas as pd
import pytest
import torch

from deltaspace.io import load_table, load_tensors

from conftest import ROOT, TINY, snakemake

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="starting a SLURM cluster needs root (CI runs as root)")

TASKS = ("sst2", "rte", "cr", "mr")
TRAINED = [f"results/dets/lora/{task}/seed0/{name}" for task in TASKS for name in ("delta.safetensors", "metrics.parquet")]
LATER = ["results/optimized/svd-d3/lora", "results/transfer/svd-d3/mr", "results/landscape", "results/report"]


@pytest.fixture(scope="module")
def cluster():
    up = subprocess.run(["bash", str(ROOT / "cluster" / "slurm-up.sh")], capture_output=True, text=True, check=False)
    assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
    yield
    down = subprocess.run(["bash", str(ROOT / "cluster" / "slurm-down.sh")], capture_output=True, text=True,
                          check=False)
    assert down.returncode == 0, down.stdout + down.stderr


@pytest.fixture(scope="module")
def slurm_run(cluster, tiny_run, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("slurm") / "run"
    shutil.copytree(tiny_run, workdir, symlinks=True)
    shutil.rmtree(workdir / "results" / "dets" / "lora")
    for part in LATER:
        shutil.rmtree(workdir / part)
    profile = ("--profile", str(ROOT / "profiles" / "slurm"))
    log = ""
    for args in (TRAINED, ("--rerun-triggers", "params", "input", "software-env", "code")):
        result = snakemake(workdir, TINY, *args, *profile)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        log += result.stdout + result.stderr
    return workdir, log


def test_every_cluster_job_ran_under_slurm_and_completed(slurm_run):
    _, log = slurm_run
    submitted = set(re.findall(r"submitted with SLURM jobid (\d+)", log))
    assert submitted, "no job went to SLURM"
    acct = subprocess.run(["sacct", "-X", "-n", "-P", "-j", ",".join(sorted(submitted)), "-o", "JobID,State,ExitCode"],
                          capture_output=True, text=True, check=True).stdout.split()
    states = dict(line.split("|", 1) for line in acct)
    assert set(states) == submitted
    assert all(state == "COMPLETED|0:0" for state in states.values()), states
    # the model stages went to SLURM, the light rules ran here
    for rule in ("train_det", "optimize_subspace", "transfer", "landscape"):
        assert re.search(rf"rule {rule}:", log), rule
    assert re.search(r"localrule report:", log)
    for part in TRAINED + LATER:
        assert (slurm_run[0] / part).exists(), part
    assert "localrule decompose:" not in log  # the subspace was kept, and with it every other DET's codes


def test_slurm_outputs_equal_the_local_run(slurm_run, tiny_run):
    workdir, _ = slurm_run
    for path in sorted((tiny_run / "results").rglob("*.safetensors")):
        rel = path.relative_to(tiny_run)
        here, _ = load_tensors(path)
        there, _ = load_tensors(workdir / rel)
        assert here.keys() == there.keys(), rel
        # bit for bit; NaN where a value does not apply (a random control has no singular values) equals NaN
        assert all(torch.equal(here[k], there[k]) or torch.allclose(here[k], there[k], rtol=0, atol=0, equal_nan=True)
                   for k in here), rel
    for name in ("subspace", "transfer", "landscape", "reconstruction"):
        pd.testing.assert_frame_equal(load_table(tiny_run / "results" / "report" / f"{name}.parquet"),
                                      load_table(workdir / "results" / "report" / f"{name}.parquet"), obj=name)
    for part in TRAINED:  # the same bytes, metrics tables included
        assert (tiny_run / part).read_bytes() == (workdir / part).read_bytes(), part
