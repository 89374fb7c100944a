# Validate the config before any job is scheduled; the plan (deltaspace.config.plan) derives what runs.
import re
import sys
from pathlib import Path

from deltaspace.config import ConfigError, canonical, validate_config
from deltaspace.config import plan
from deltaspace.digest import stage_digest
from deltaspace.names import PATTERN as SPACE_PATTERN

try:
    CFG = canonical(validate_config(config, workflow.basedir))
except ConfigError as exc:
    sys.exit(f"deltaspace: the config is not valid, nothing was run:\n{exc}")

DETS = plan.det_names(CFG)
TASKS = plan.task_names(CFG)
RUNS = plan.runs(CFG)  # (task, seed) pairs: train.seeds, or a task's own seeds
OPT_JOBS = plan.optimize_jobs(CFG)  # (space, task, seed): with folds, each fold's subspaces on its tasks
OPT_TASKS = plan.optimize_tasks(CFG)
SPACES = plan.spaces(CFG)
SUB, LAND = CFG["subspace"], CFG["landscape"]
LAND_DETS = plan.landscape_dets(CFG)
LAND_SEED = plan.landscape_seeds(CFG)
LAND_JOBS = plan.landscape_jobs(CFG)  # (space, task)
REPORT = plan.report_files(CFG)
DEVICE = plan.device(CFG)
THREADS = CFG["train"]["threads"] or workflow.cores
LIBRARY = Path(workflow.basedir) / "workflow" / "deltaspace"


def code(stage):
    """A digest of the library modules stage `stage` runs (deltaspace/stages/<stage>.py and what it imports):
    as a param, a change to that code reruns the stage (Snakemake itself only watches the rule's script);
    comments and docstrings do not count."""
    return stage_digest(LIBRARY, stage)


def dets_config(names):
    """The named DETs' settings as configured now: the in-subspace stages check them against the subspace's."""
    return {det: plan.det_config(CFG, det) for det in names}


# What a job of a model stage asks the scheduler for (SLURM through a profile; --resources on a workstation).
MODEL_JOB = CFG["resources"]

# Light rules (reading and writing a few files) never go to a cluster.
localrules:
    all,
    audit,
    stack_deltas,
    decompose,
    report,


# A wildcard takes only the config's own names (escaped: "." in a name is no regex wildcard), so no path
# outside results/ nor any other value can reach a job.
wildcard_constraints:
    det="|".join(map(re.escape, DETS)),
    task="|".join(map(re.escape, TASKS)),
    seed=r"\d+",
    dim=r"\d+",
    space=SPACE_PATTERN,


def per_run(kind):
    """One DET's train_det outputs of a kind, over every task and seed."""
    return lambda wc: [f"results/dets/{wc.det}/{task}/seed{seed}/{kind}" for task, seed in RUNS]


def optimized(name):
    """One file of every optimize_subspace job: every DET in every (space, task, seed) of OPT_JOBS."""
    return [f"results/optimized/{space}/{det}/{task}/seed{seed}/{name}"
            for space, task, seed in OPT_JOBS for det in DETS]


def codes_of(dets, seeds=None, name="z.safetensors"):
    """The optimised codes of these DETs for the job's space and task (and seed: the job's, or seeds[task]);
    with name="metrics.parquet", their optimize_subspace metrics."""
    return lambda wc: expand(
        "results/optimized/{space}/{det}/{task}/seed{seed}/" + name,
        space=wc.space, det=dets, task=wc.task, seed=wc.seed if seeds is None else seeds[wc.task],
    )
