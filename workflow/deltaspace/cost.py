"""What a run will cost before it runs: the jobs left per rule (Snakemake's dry run, so a resumed run counts
only what is left) times an estimate of each job's CPU seconds, and the wall time on the cores given; and,
with --spent, what the finished jobs took.

    python -m deltaspace.cost --configfile configs/folds.yaml [--cores 2] [--spent]

A rule's seconds per job are the median of its finished jobs in this run's logs where there are some
(train_det and optimize_subspace log "N s for the whole job"), else a model of the job from the config and
speeds measured on this project's 2-core machine with MiniLM at 48 tokens, one thread per job (bench/results.md
and the first jobs of configs/folds.yaml): scaled by backbone.max_length / 48; another backbone or a GPU
differs.
"""
from __future__ import annotations

import argparse
import json
import math
import re
import statistics
import subprocess
import sys
from pathlib import Path

import pandas as pd

from .config import load_config, validate_config
from .config.plan import det_names

ROOT = Path(__file__).resolve().parents[2]  # the Snakefile's folder

TRAIN_EXAMPLES_PER_S = 44.0  # train_det, median of 60 jobs of configs/folds.yaml (2 jobs on 2 cores)
SEARCH_EXAMPLES_PER_S = 32.0  # optimize_subspace: bench's subspace step, 0.5 s per 16 examples
EVAL_EXAMPLES_PER_S = 75.0  # evaluation batches of 16 (the schema's eval_batch_size note)
LEARNED_S_PER_STEP = 3.0  # decompose_learned, every DET through the backbone per step (docs/results.md)
START_S = 8.0  # a model job's start: imports, backbone, task
LIGHT_S = 4.0  # a job that reads and writes a few files
DONE = re.compile(r"([\d.]+) s for the whole job")


def job_counts(configfile: Path, cores: int = 1) -> dict[str, int]:
    """The jobs a run would start now, per rule (Snakemake's dry run)."""
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--configfile", str(configfile),
           "--cores", str(cores), "--dry-run", "--quiet", "rules"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"snakemake's dry run failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    counts = {}
    for line in done.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit() and parts[0] not in ("total", "job"):
            counts[parts[0]] = int(parts[1])
    return counts


def measured(workdir: Path, rule: str) -> list[float]:
    """Whole-job seconds of this rule's finished jobs, from their logs."""
    found = []
    for log in (workdir / "results" / "logs" / rule).rglob("*.log"):
        match = DONE.search(log.read_text(errors="replace"))
        if match:
            found.append(float(match.group(1)))
    return found


def modelled(cfg: dict, rule: str) -> float:
    """Seconds one job of this rule takes by the model of the module docstring."""
    scale = cfg["backbone"]["max_length"] / 48
    data, train, sub = cfg["data"], cfg["train"], cfg["subspace"]
    evals = lambda examples: scale * examples / EVAL_EXAMPLES_PER_S  # noqa: E731
    if rule == "train_det":
        steps = train["steps"] or math.ceil(data["max_train"] / train["batch_size"]) * train["epochs"]
        every = train["eval_every"] or max(1, steps // (train["epochs"] * train["evals_per_epoch"]))
        return (START_S + scale * steps * train["batch_size"] / TRAIN_EXAMPLES_PER_S
                + evals(data["max_validation"] * steps / every + 2 * data["max_test"]))
    if rule == "optimize_subspace":
        opt = sub["optimize"]
        rates = len(opt["lr"]) if isinstance(opt["lr"], list) else 1
        return (START_S + rates * (scale * opt["steps"] * opt["batch_size"] / SEARCH_EXAMPLES_PER_S
                                   + evals(data["max_validation"] * opt["steps"] / opt["eval_every"]))
                + evals(2 * data["max_test"]))
    if rule == "transfer":
        pairs = len(det_names(cfg)) * (len(det_names(cfg)) - 1)
        return START_S + evals(pairs * data["max_test"])
    if rule == "merge":
        return START_S + evals(len(sub["merge_scales"]) * data["max_validation"] + data["max_test"])
    if rule == "landscape":
        land = cfg["landscape"]
        return START_S + evals(land["grid"] ** 2 * len(det_names(cfg)) * land["max_examples"])
    if rule == "decompose_learned":
        return START_S + sub["learned"]["steps"] * LEARNED_S_PER_STEP * scale
    if rule == "audit":
        return LIGHT_S + 0.5 * len(cfg["tasks"])  # 16 tasks read whole: 3 s
    return LIGHT_S


def estimate(configfile: Path, cores: int = 1) -> pd.DataFrame:
    """Per rule: the jobs left, seconds per job (measured or modelled) and CPU hours."""
    cfg = validate_config(load_config(configfile), ROOT)
    workdir = _workdir(cfg)
    rows = []
    for rule, jobs in job_counts(configfile, cores).items():
        if rule == "all":
            continue
        seen = measured(workdir, rule)
        per_job = statistics.median(seen) if seen else modelled(cfg, rule)
        rows.append({"rule": rule, "jobs": jobs, "seconds_per_job": round(per_job, 1),
                     "from": f"median of {len(seen)} finished" if seen else "model",
                     "cpu_hours": round(jobs * per_job / 3600, 2)})
    return pd.DataFrame(rows, columns=["rule", "jobs", "seconds_per_job", "from", "cpu_hours"])


def spent(workdir: Path) -> pd.DataFrame:
    """Per rule, what its finished jobs took by Snakemake's own records (.snakemake/metadata: each output's
    job, start and end): the jobs, the sum of their durations (CPU hours at one thread per job) and the wall
    hours during which at least one of them ran."""
    jobs = {}
    for record in (workdir / ".snakemake" / "metadata").glob("*"):
        meta = json.loads(record.read_text())
        if None not in (meta.get("starttime"), meta.get("endtime")) and not meta.get("incomplete"):
            jobs[(meta["rule"], meta["job_hash"])] = (meta["starttime"], meta["endtime"])
    rows = []
    for rule in sorted({r for r, _ in jobs}):
        spans = sorted(span for (r, _), span in jobs.items() if r == rule)
        wall, end = 0.0, -math.inf
        for start, stop in spans:  # the union of the jobs' spans
            wall += max(0.0, stop - max(start, end))
            end = max(end, stop)
        rows.append({"rule": rule, "jobs": len(spans), "cpu_hours": round(sum(b - a for a, b in spans) / 3600, 2),
                     "wall_hours": round(wall / 3600, 2)})
    return pd.DataFrame(rows, columns=["rule", "jobs", "cpu_hours", "wall_hours"])


def _workdir(cfg: dict) -> Path:
    return ROOT / cfg["workdir"] if cfg["workdir"] else ROOT


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m deltaspace.cost", description=__doc__.split("\n\n")[0])
    parser.add_argument("--configfile", type=Path, default=ROOT / "config.yaml")
    parser.add_argument("--cores", type=int, default=2, help="cores the run will get (wall = CPU hours / cores)")
    parser.add_argument("--spent", action="store_true", help="what the finished jobs took, per rule, instead")
    args = parser.parse_args(argv)
    if args.spent:
        done = spent(_workdir(validate_config(load_config(args.configfile.resolve()), ROOT)))
        print(done.to_string(index=False) if len(done) else "No finished job on record.")
        if len(done):
            print(f"total: {int(done.jobs.sum())} jobs, {done.cpu_hours.sum():.1f} CPU hours (one thread per job)")
        return
    table = estimate(args.configfile.resolve(), args.cores)
    if table.empty:
        print("Nothing to run: every output is up to date.")
        return
    total = table.cpu_hours.sum()
    print(table.to_string(index=False))
    print(f"total: {int(table.jobs.sum())} jobs, about {total:.1f} CPU hours, about {total / args.cores:.1f} hours "
          f"on {args.cores} cores (one thread per job); stop at any time and rerun to resume")


if __name__ == "__main__":
    main()
