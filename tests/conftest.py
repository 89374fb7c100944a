"""Shared fixtures: tiny random backbones built from a config (no download) and ../shared/tasks."""
from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from deltaspace.config import load_config, validate_config

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "tiny.yaml"


@pytest.fixture(scope="session")
def tiny_config() -> dict:
    """configs/tiny.yaml, validated and filled (a fresh copy per use: tests may change it)."""
    return validate_config(load_config(TINY), ROOT)


@pytest.fixture
def tiny(tiny_config) -> dict:
    return copy.deepcopy(tiny_config)


def llama_backbone(cfg: dict) -> dict:
    """A tiny random causal LM (grouped-query attention, no biases) in place of the tiny encoder."""
    out = copy.deepcopy(cfg["backbone"])
    out["kind"] = "causal"
    out["architecture"] = {
        "model_type": "llama",
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "intermediate_size": 64,
        "max_position_embeddings": 128,
    }
    return out


def tiny_with(folder: Path, name: str, change) -> Path:
    """configs/tiny.yaml changed in place by `change(cfg)`, written to folder/name."""
    cfg = yaml.safe_load(TINY.read_text())
    change(cfg)
    path = folder / name
    path.write_text(yaml.safe_dump(cfg))
    return path


def snakemake_command(workdir: Path, configfile: Path, *args: str) -> list[str]:
    """The command line of the workflow on `configfile` in `workdir`, as a user types it (later args win)."""
    return [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
            "--configfile", str(configfile), "--cores", "2", *args]


def snakemake(workdir: Path, configfile: Path, *args: str) -> subprocess.CompletedProcess:
    """The workflow on `configfile` in `workdir` (a subprocess, as a user runs it)."""
    return subprocess.run(snakemake_command(workdir, configfile, *args), capture_output=True, text=True, timeout=900,
                          check=False)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """configs/tiny.yaml run once, end to end, in a scratch directory (shared by the workflow tests)."""
    workdir = tmp_path_factory.mktemp("tiny")
    result = snakemake(workdir, TINY)
    assert result.returncode == 0, result.stderr[-4000:]
    return workdir
