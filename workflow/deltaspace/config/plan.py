"""What a valid config asks the workflow to do: the DETs, tasks, runs and subspaces, and the slices of the
config that the rules pass as `params:` (Snakemake reruns a job when its params change)."""
from __future__ import annotations

import copy
from typing import Any

from ..names import CONTROL, SpaceName
from ..paper import PAPER_DETS
from .errors import ConfigError, line


def canonical(node: Any) -> Any:
    """A copy with every mapping's keys in sorted order (lists keep theirs).

    Snakemake's params rerun trigger compares the params' text, so the rules get canonical slices:
    reordering keys in a config file then reruns nothing.
    """
    if isinstance(node, dict):
        return {key: canonical(node[key]) for key in sorted(node)}
    if isinstance(node, list):
        return [canonical(item) for item in node]
    return node


def det_names(cfg: dict) -> list[str]:
    return list(cfg["dets"])


def task_names(cfg: dict) -> list[str]:
    return [task["name"] for task in cfg["tasks"]]


def det_config(cfg: dict, det: str) -> dict:
    """The filled settings of one DET of a validated config, `method` and `lr` included."""
    if det not in cfg["dets"]:
        raise ConfigError(line(f"dets.{det}", f"no such DET (known: {', '.join(det_names(cfg))})"))
    return copy.deepcopy(cfg["dets"][det])


def task_config(cfg: dict, task: str) -> dict:
    """How a job loads one task: its entry of a validated config, `name` included, `seeds`, `fold` and `hub`
    left out (which runs exist, which fold a task is unseen in and the source the entry does not use are not
    what a run computes: a new seed or another fold reruns no training)."""
    entry = _task_entry(cfg, task)
    return {key: copy.deepcopy(value) for key, value in entry.items() if key not in ("seeds", "fold", "hub")}


def _task_entry(cfg: dict, task: str) -> dict:
    for entry in cfg["tasks"]:
        if entry["name"] == task:
            return entry
    raise ConfigError(line("tasks", f"no task named {task!r} (known: {', '.join(task_names(cfg))})"))


def task_seeds(cfg: dict, task: str) -> list[int]:
    """The training seeds of one task: its own `seeds`, else train.seeds."""
    return list(_task_entry(cfg, task).get("seeds") or cfg["train"]["seeds"])


def runs(cfg: dict) -> list[tuple[str, int]]:
    """Every (task, seed) that each DET is trained on."""
    return [(task, seed) for task in task_names(cfg) for seed in task_seeds(cfg, task)]


def optimize_tasks(cfg: dict) -> list[str]:
    """The tasks optimised in each subspace: subspace.tasks, else the held-out ones, else every task."""
    sub = cfg["subspace"]
    return list(sub["tasks"] or sub["held_out"] or task_names(cfg))


def optimize_runs(cfg: dict) -> list[tuple[str, int]]:
    """Every (task, seed) optimised in each subspace: optimize_tasks from subspace.seeds (each task's own
    seeds if null)."""
    seeds = cfg["subspace"]["seeds"]
    return [(task, seed) for task in optimize_tasks(cfg) for seed in seeds or task_seeds(cfg, task)]



def landscape_tasks(cfg: dict) -> list[str]:
    """Tasks swept by the landscape stage: as configured, else the held-out tasks, else every task."""
    land = cfg["landscape"]
    return list(land["tasks"] or cfg["subspace"]["held_out"] or task_names(cfg))


def landscape_dets(cfg: dict) -> list[str]:
    """The DETs whose solutions span the landscape's plane: as configured, else the paper's three methods,
    filled up to three from the other DETs by name (never by their order in the file: key order changes
    nothing)."""
    if cfg["landscape"]["dets"]:
        return list(cfg["landscape"]["dets"])
    names = sorted(det_names(cfg))
    paper = [n for n in names if cfg["dets"][n]["method"] in PAPER_DETS]
    return (paper + [n for n in names if n not in paper])[:3]


def train_slice(cfg: dict) -> dict:
    return copy.deepcopy(cfg["train"])


def backbone_slice(cfg: dict) -> dict:
    return copy.deepcopy(cfg["backbone"])


def data_slice(cfg: dict) -> dict:
    return copy.deepcopy(cfg["data"])


def device(cfg: dict) -> str:
    """Where every model stage runs (train.device): one param of each model rule, and the only one."""
    return cfg["train"]["device"]


def train_params(cfg: dict) -> dict:
    """train_det's training settings. Which seeds exist decides which jobs exist, threads how fast they run
    and checkpoint_minutes how often a job saves its state, not what a job computes: they stay out, so
    changing them reruns nothing (train_det reads checkpoint_minutes from the config itself). The device
    is a param of its own (`device`)."""
    left_out = ("seeds", "threads", "checkpoint_minutes", "device")
    return {key: copy.deepcopy(value) for key, value in cfg["train"].items() if key not in left_out}


def found_spaces(cfg: dict, min_dim: int = 1) -> list[str]:
    """The names of the subspaces the config finds: every method at every offset and dimension (of at least
    min_dim)."""
    sub = cfg["subspace"]
    return [str(SpaceName(method, dim, offset)) for method in sub["methods"] for offset in sub["offsets"]
            for dim in sub["dims"] if dim >= min_dim]


def spaces(cfg: dict) -> list[str]:
    """Every subspace the config builds: the found ones and, with subspace.control, the random control of
    each offset and dimension (random-d{dim}, scaled like svd's)."""
    sub = cfg["subspace"]
    controls = [str(SpaceName(CONTROL, dim, offset)) for offset in sub["offsets"] for dim in sub["dims"]]
    return found_spaces(cfg) + (controls if sub["control"] else [])


def landscape_seeds(cfg: dict) -> dict[str, int]:
    """Each landscape task is swept on the codes of its first optimisation seed."""
    runs = optimize_runs(cfg)
    return {task: min(seed for t, seed in runs if t == task) for task in landscape_tasks(cfg)}


def landscape_spaces(cfg: dict) -> list[str]:
    """The subspaces swept: a plane needs two dimensions and two DETs' solutions."""
    if not cfg["landscape"]["enabled"] or len(landscape_dets(cfg)) < 2:
        return []
    return found_spaces(cfg, min_dim=2)


def report_files(cfg: dict) -> dict[str, list[str]]:
    """The report's outputs: tables (Parquet and Markdown), plots and the index pages."""
    names = ("headline", "gaps", "original", "subspace", "norms", "merge", "methods", "transfer", "landscape",
             "reconstruction")
    learned = "learned" in cfg["subspace"]["methods"]
    names += (("paper",) if cfg["report"]["paper"] else ()) + (("learned",) if learned else ())
    plots = ["relative", "dims", "curves"] + (["learned"] if learned else [])
    return {
        "tables": [f"results/report/{name}.{ext}" for name in names for ext in ("parquet", "md")],
        "plots": [f"results/report/{name}.png" for name in plots],
        "index": ["results/report/index.md", "results/report/index.html"],
    }


def final_targets(cfg: dict) -> list[str]:
    """What `rule all` asks for: the report, or only the stacks when subspace.enabled is false."""
    if not cfg["subspace"]["enabled"]:
        return [f"results/stacked/{det}.{ext}" for det in det_names(cfg) for ext in ("safetensors", "parquet")]
    return [path for files in report_files(cfg).values() for path in files]
