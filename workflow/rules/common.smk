# Validate the config before any job is scheduled, and derive the target lists from it.
import re
import sys
from pathlib import Path

from deltaspace.config import (
    ConfigError,
    canonical,
    det_config,
    det_names,
    landscape_dets,
    landscape_tasks,
    optimize_runs,
    runs,
    task_config,
    task_names,
    validate_config,
)
from deltaspace.digest import code_digest

try:
    CFG = canonical(validate_config(config, workflow.basedir))
except ConfigError as exc:
    sys.exit(f"deltaspace: the config is not valid, nothing was run:\n{exc}")

DETS = det_names(CFG)
TASKS = task_names(CFG)
RUNS = runs(CFG)  # (task, seed) pairs: train.seeds, or a task's own seeds
# Which seeds exist decides which jobs exist, threads how fast they run and checkpoint_minutes how often a
# job saves its state, not what a job computes: they stay out of train's params, so changing them reruns
# nothing (train_det reads checkpoint_minutes from the config itself).
TRAIN = {key: value for key, value in CFG["train"].items() if key not in ("seeds", "threads", "checkpoint_minutes")}
THREADS = CFG["train"]["threads"] or workflow.cores
LIBRARY = Path(workflow.basedir) / "workflow" / "deltaspace"


def library(*parts):
    """A digest of library modules (files or folders under workflow/deltaspace/): as a param, a change to the
    code a stage runs reruns that stage (Snakemake itself only watches the rule's script); comments and
    docstrings do not count."""
    return code_digest(LIBRARY, *parts)


# The library modules each stage runs (io: every stage reads and writes through it).
MODEL = ("models.py", "gpus.py", "heads.py", "dets", "tasks.py", "delta.py", "train.py", "io.py")
CODE = {
    "train_det": library("stages.py", *MODEL),
    "stack_deltas": library("stack.py", "delta.py", "io.py"),
    "decompose": library("subspace.py", "delta.py", "io.py"),
    "decompose_learned": library("subspace.py", "learned.py", *MODEL),
    "in_subspace": library("insubspace.py", "subspace.py", *MODEL),
    "landscape": library("insubspace.py", "subspace.py", "landscape.py", *MODEL),
    "report": library("report.py", "paper.py", "landscape.py", "io.py"),
}

# What a job of a model stage asks the scheduler for (SLURM through a profile; --resources on a workstation).
MODEL_JOB = CFG["resources"]

# Light rules (reading and writing a few files) never go to a cluster.
localrules:
    all,
    stack_deltas,
    decompose,
    report,

SUB = CFG["subspace"]
def spaces(min_dim=1):
    return [f"{method}-d{dim}" for method in SUB["methods"] for dim in SUB["dims"] if dim >= min_dim]


SPACES = spaces()
OPT_RUNS = optimize_runs(CFG)
OPTIMIZE = SUB["optimize"] | {"device": CFG["train"]["device"]}
# transfer and landscape evaluate with train's batch size on train's device.
EVAL = {"eval_batch_size": CFG["train"]["eval_batch_size"], "device": CFG["train"]["device"]}

LAND = CFG["landscape"]
LAND_DETS = landscape_dets(CFG)
LAND_TASKS = landscape_tasks(CFG)
# Each landscape task is swept on the codes of its first optimisation seed.
LAND_SEED = {task: min(seed for t, seed in OPT_RUNS if t == task) for task in LAND_TASKS}
# A plane needs two solutions and two dimensions.
LAND_SPACES = spaces(min_dim=2) if LAND["enabled"] and len(LAND_DETS) >= 2 else []


# A wildcard takes only the config's own names (escaped: "." in a name is no regex wildcard), so no path
# outside results/ nor any other value can reach a job.
wildcard_constraints:
    det="|".join(map(re.escape, DETS)),
    task="|".join(map(re.escape, TASKS)),
    seed=r"\d+",
    dim=r"\d+",
    space=r"[a-z]+-d\d+",


def per_run(kind):
    """One DET's train_det outputs of a kind, over every task and seed."""
    return lambda wc: [f"results/dets/{wc.det}/{task}/seed{seed}/{kind}" for task, seed in RUNS]


def codes_of(dets, seeds=None, name="z.safetensors"):
    """The optimised codes of these DETs for the job's space and task (and seed: the job's, or seeds[task]);
    with name="metrics.parquet", their optimize_subspace metrics."""
    return lambda wc: expand(
        "results/optimized/{space}/{det}/{task}/seed{seed}/" + name,
        space=wc.space, det=dets, task=wc.task, seed=wc.seed if seeds is None else seeds[wc.task],
    )


PAPER = CFG["report"]["paper"]
REPORT = {
    "tables": [f"results/report/{name}.{ext}"
               for name in ("subspace", "original", "methods", "transfer", "landscape", "reconstruction")
               + (("paper",) if PAPER else ()) for ext in ("parquet", "md")],
    "plots": ["results/report/relative.png", "results/report/dims.png"],
    "index": ["results/report/index.md", "results/report/index.html"],
}


def all_targets():
    if not SUB["enabled"]:
        return expand("results/stacked/{det}.{ext}", det=DETS, ext=["safetensors", "parquet"])
    return [*REPORT["tables"], *REPORT["plots"], *REPORT["index"]]
