"""End to end: configs/tiny.yaml through Snakemake, then what a config change would rerun."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from deltaspace.delta import INIT, TRAINED
from deltaspace.io import load_table, load_tensors
from deltaspace.stack import read_delta

from conftest import ROOT, TINY


def snakemake(workdir: Path, configfile: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(configfile), "--cores", "2", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=900)


def scheduled(result: subprocess.CompletedProcess) -> set[str]:
    """Outputs of the jobs a dry run would run (one per job: its first output)."""
    text = result.stdout + result.stderr
    return set(re.findall(r"^\s*output: ([^,\s]+)", text, re.MULTILINE))


def tiny_with(tmp_path: Path, name: str, change) -> Path:
    cfg = yaml.safe_load(TINY.read_text())
    change(cfg)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """configs/tiny.yaml run once, end to end, in a scratch directory."""
    workdir = tmp_path_factory.mktemp("tiny")
    result = snakemake(workdir, TINY)
    assert result.returncode == 0, result.stderr[-4000:]
    return workdir


def test_end_to_end_outputs(tiny_run, tiny_config):
    results = tiny_run / "results"
    tasks = [t["name"] for t in tiny_config["tasks"]]
    for det in tiny_config["dets"]:
        stacked, meta = load_tensors(results / "stacked" / f"{det}.safetensors")
        index = load_table(results / "stacked" / f"{det}.parquet")
        assert list(index.columns) == ["row", "task", "seed", "validation_accuracy"]
        assert list(index.task) == tasks and stacked["delta"].shape[0] == len(tasks)
        assert stacked["delta"].dtype == torch.float32 and stacked["delta"].shape == stacked["init"].shape
        for row in index.itertuples():
            delta_file = results / "dets" / det / row.task / f"seed{row.seed}" / "delta.safetensors"
            layout, trained, init, dmeta = read_delta(delta_file)
            assert meta["layout"] == layout.to_json() and stacked["delta"].shape[1] == layout.size
            # the row is trained minus initial, and the layout turns it back into the DET's tensors exactly
            tensors, _ = load_tensors(delta_file)
            for name, delta in layout.unflatten(stacked["delta"][row.row]).items():
                assert torch.equal(delta, tensors[TRAINED + name] - tensors[INIT + name]), name
            assert torch.equal(stacked["init"][row.row], init)
            assert dmeta["param_count"] == layout.size and dmeta["seed"] == row.seed
            assert dmeta["det_config"] == tiny_config["dets"][det] | {"method": det}
            assert not torch.equal(trained, init), f"{det}/{row.task} did not move"
            metrics = load_table(delta_file.with_name("metrics.parquet"))
            assert list(metrics.columns) == ["det", "task", "seed", "split", "metric", "value"]
            got = metrics.set_index(["split", "metric"]).value
            assert 0 <= got["test", "accuracy"] <= 1 and got["train", "examples_per_s"] > 0
            assert got["train", "trainable_params"] == layout.size
            assert got["validation", "accuracy"] == row.validation_accuracy
    assert not list(results.rglob("*.tmp")), "a temporary file was left behind"


def test_nothing_to_do_after_a_run(tiny_run):
    result = snakemake(tiny_run, TINY, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert scheduled(result) == set()


def test_one_det_change_reruns_only_that_det(tiny_run, tmp_path):
    changed = tiny_with(tmp_path, "lora_r.yaml", lambda c: c["dets"]["lora"].update(r=3))
    result = snakemake(tiny_run, changed, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert scheduled(result) == {
        "results/dets/lora/sst2/seed0/delta.safetensors",
        "results/dets/lora/rte/seed0/delta.safetensors",
        "results/stacked/lora.safetensors",
    }


def test_shared_change_reruns_every_det(tiny_run, tmp_path):
    changed = tiny_with(tmp_path, "epochs.yaml", lambda c: c["train"].update(epochs=2))
    result = snakemake(tiny_run, changed, "--dry-run")
    assert result.returncode == 0, result.stderr
    dets = {m.group(1) for p in scheduled(result) if (m := re.match(r"results/dets/([^/]+)/", p))}
    assert dets == set(yaml.safe_load(TINY.read_text())["dets"])


def test_new_seed_adds_jobs_and_threads_rerun_nothing(tiny_run, tmp_path):
    changed = tiny_with(tmp_path, "seeds.yaml", lambda c: c["train"].update(seeds=[0, 1], threads=2))
    result = snakemake(tiny_run, changed, "--dry-run")
    trained = {p for p in scheduled(result) if p.startswith("results/dets/")}
    assert trained and all("/seed1/" in p for p in trained)


def test_bad_config_stops_before_any_job(tmp_path):
    bad = tiny_with(tmp_path, "bad.yaml", lambda c: c["dets"]["lora"].update(r=0))
    result = snakemake(tmp_path, bad)
    assert result.returncode != 0
    assert "dets.lora.r" in result.stdout + result.stderr
    assert not (tmp_path / "results").exists()
