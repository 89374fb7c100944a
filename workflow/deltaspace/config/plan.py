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


def folds(cfg: dict) -> dict[int, list[str]]:
    """subspace.folds: each fold's tasks (the tasks unseen by its subspace), in config order. A task entry's
    `fold:` pins it; the others go, in config order, to the fold with the fewest tasks (the lowest of a tie),
    so a task added at the end moves no other. {} without folds."""
    k = cfg["subspace"]["folds"]
    if not k:
        return {}
    members: dict[int, list[str]] = {i: [] for i in range(k)}
    for entry in cfg["tasks"]:
        if entry.get("fold") is not None:
            members[entry["fold"]].append(entry["name"])
    for entry in cfg["tasks"]:
        if entry.get("fold") is None:
            members[min(members, key=lambda i: (len(members[i]), i))].append(entry["name"])
    order = {name: i for i, name in enumerate(task_names(cfg))}
    return {i: sorted(names, key=order.__getitem__) for i, names in members.items()}


def unseen_groups(cfg: dict) -> dict[str, list[str]]:
    """What the leakage audit checks: each group's tasks against every task outside it ("fold 0": ..., or
    "held out": subspace.held_out; {} when every task builds the subspace)."""
    if cfg["subspace"]["folds"]:
        return {f"fold {i}": names for i, names in folds(cfg).items()}
    held_out = cfg["subspace"]["held_out"]
    return {"held out": list(held_out)} if held_out else {}


def unseen(cfg: dict) -> list[str]:
    """The tasks that some subspace never sees: every task with folds, else subspace.held_out."""
    return task_names(cfg) if cfg["subspace"]["folds"] else list(cfg["subspace"]["held_out"])


def held_out_of(cfg: dict, space: str) -> list[str]:
    """The tasks whose solutions stay out of one subspace: its fold's, or subspace.held_out."""
    fold = SpaceName.parse(space).fold
    return folds(cfg)[fold] if fold is not None else list(cfg["subspace"]["held_out"])


def fold_of(cfg: dict, task: str) -> int | None:
    return next((i for i, names in folds(cfg).items() if task in names), None)


def merge_held_out(cfg: dict, task: str) -> list[str]:
    """The tasks left out of the merge evaluated on `task`: those of its fold (its fold's sources are
    merged), or subspace.held_out."""
    fold = fold_of(cfg, task)
    return folds(cfg)[fold] if fold is not None else list(cfg["subspace"]["held_out"])


def optimize_tasks(cfg: dict) -> list[str]:
    """The tasks optimised: every task with folds (each in its fold's subspaces), else subspace.tasks, else the
    held-out ones, else every task."""
    sub = cfg["subspace"]
    if sub["folds"]:
        return task_names(cfg)
    return list(sub["tasks"] or sub["held_out"] or task_names(cfg))


def optimize_runs(cfg: dict) -> list[tuple[str, int]]:
    """Every (task, seed) optimised in each subspace: optimize_tasks from subspace.seeds (each task's own
    seeds if null)."""
    seeds = cfg["subspace"]["seeds"]
    return [(task, seed) for task in optimize_tasks(cfg) for seed in seeds or task_seeds(cfg, task)]


def optimize_jobs(cfg: dict) -> list[tuple[str, str, int]]:
    """Every optimize_subspace job as (space, task, seed): with folds, each fold's subspaces on its own tasks
    only; else every subspace on every optimised run."""
    jobs = []
    for space in spaces(cfg):
        fold = SpaceName.parse(space).fold
        for task, seed in optimize_runs(cfg):
            if fold is None or task in folds(cfg)[fold]:
                jobs.append((space, task, seed))
    return jobs


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


def _in_folds(cfg: dict, names: list[SpaceName]) -> list[str]:
    """Each name once per fold (svd-d4-f0, svd-d4-f1, ...) with subspace.folds, else as it is; a learned
    subspace only in subspace.learned.folds when that is set."""
    k = cfg["subspace"]["folds"]
    learned_folds = cfg["subspace"]["learned"]["folds"]
    return [str(name.in_fold(fold)) for name in names for fold in (range(k) if k else [None])
            if name.method != "learned" or fold is None or learned_folds is None or fold in learned_folds]


def found_spaces(cfg: dict, min_dim: int = 1) -> list[str]:
    """The names of the subspaces the config finds: every method at every offset and dimension (of at least
    min_dim), in every fold."""
    sub = cfg["subspace"]
    learned_dims = sub["learned"]["dims"] or sub["dims"]
    return _in_folds(cfg, [SpaceName(method, dim, offset) for method in sub["methods"] for offset in sub["offsets"]
                           for dim in sub["dims"] if dim >= min_dim and (method != "learned" or dim in learned_dims)])


def spaces(cfg: dict) -> list[str]:
    """Every subspace the config builds: the found ones and, with subspace.control, the random control of
    each offset and dimension (random-d{dim}, scaled like svd's), in every fold."""
    sub = cfg["subspace"]
    controls = [SpaceName(CONTROL, dim, offset) for offset in sub["offsets"] for dim in sub["dims"]]
    return found_spaces(cfg) + (_in_folds(cfg, controls) if sub["control"] else [])


def landscape_seeds(cfg: dict) -> dict[str, int]:
    """Each landscape task is swept on the codes of its first optimisation seed."""
    runs = optimize_runs(cfg)
    return {task: min(seed for t, seed in runs if t == task) for task in landscape_tasks(cfg)}


def landscape_jobs(cfg: dict) -> list[tuple[str, str]]:
    """Every landscape job as (space, task): the found subspaces of at least two dimensions (a plane needs
    two, and two DETs' solutions), each on the landscape tasks it did not see (with folds: its fold's)."""
    if not cfg["landscape"]["enabled"] or len(landscape_dets(cfg)) < 2:
        return []
    jobs = []
    for space in found_spaces(cfg, min_dim=2):
        fold = SpaceName.parse(space).fold
        jobs += [(space, task) for task in landscape_tasks(cfg) if fold is None or task in folds(cfg)[fold]]
    return jobs


def report_files(cfg: dict) -> dict[str, list[str]]:
    """The report's outputs: tables (Parquet and Markdown), plots and the index pages."""
    names = ("pooled", "headline", "gaps", "original", "subspace", "norms", "merge", "methods", "transfer", "landscape",
             "reconstruction", "overlap")
    learned = "learned" in cfg["subspace"]["methods"]
    names += (("paper",) if cfg["report"]["paper"] else ()) + (("learned",) if learned else ())
    plots = ["pooled", "transfer", "relative", "dims", "curves"] + (["learned"] if learned else [])
    return {
        "tables": [f"results/report/{name}.{ext}" for name in names for ext in ("parquet", "md")],
        "plots": [f"results/report/{name}.png" for name in plots],
        "index": ["results/report/index.md", "results/report/index.html"],
    }


def export_folders(cfg: dict) -> list[str]:
    """What `snakemake export_all` writes: every trained solution (results/export/{det}/{task}/seed{seed}) and,
    with a subspace, every optimised code decoded for its DET (results/export/{space}/{det}/{task}/seed{seed})."""
    trained = [f"results/export/{det}/{task}/seed{seed}" for det in det_names(cfg) for task, seed in runs(cfg)]
    if not cfg["subspace"]["enabled"]:
        return trained
    return trained + [f"results/export/{space}/{det}/{task}/seed{seed}"
                      for space, task, seed in optimize_jobs(cfg) for det in det_names(cfg)]


def final_targets(cfg: dict) -> list[str]:
    """What `rule all` asks for: the report, or only the stacks when subspace.enabled is false."""
    if not cfg["subspace"]["enabled"]:
        return [f"results/stacked/{det}.{ext}" for det in det_names(cfg) for ext in ("safetensors", "parquet")]
    return [path for files in report_files(cfg).values() for path in files]
