"""The config schema (workflow/schemas/config.schema.yaml): where it is, its defaults filled into a config, and
its errors turned into lines that name the key to fix."""
from __future__ import annotations

import copy
import difflib
import re
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from .errors import join

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schemas" / "config.schema.yaml"
_MISSING = object()


@lru_cache(maxsize=1)
def load_schema() -> dict:
    # libyaml's loader where PyYAML has it (6x faster; every Snakemake start reads the schema).
    with open(SCHEMA_PATH, encoding="utf-8") as fh:
        return yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


@lru_cache(maxsize=1)
def _validator() -> Draft202012Validator:
    return Draft202012Validator(load_schema())


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


def schema_errors(cfg: dict) -> list[tuple[str, str]]:
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
    return [(join(path, key), f"is required{why}") for key in missing]


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
        out.append((join(path, key), msg))
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
            out = join(out, str(part))
            node = node.get(part) if isinstance(node, dict) else None
    return out


def read_text_values(cfg: dict) -> bool:
    """Read as YAML, in place, each text value where the schema wants a number, a boolean or null, when that
    reading fits: Snakemake hands the values of a nested `--config` mapping over as text, so
    `--config 'subspace={"optimize": {"epochs": 8}}'` arrives as epochs '8'. Text that does not read as the
    wanted type stays text, and the schema reports it. Returns whether any value was read."""
    read = False
    for _ in range(8):  # a fix can reveal an error further down (an if/then branch); a few passes settle it
        changed = False
        for error in _type_errors(_validator().iter_errors(cfg)):
            value = _yaml_scalar(error.instance)
            wanted = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
            if value is not _MISSING and any(_validator().is_type(value, kind) for kind in wanted):
                *parents, last = error.absolute_path
                node = cfg
                for part in parents:
                    node = node[part]
                node[last] = value
                changed = read = True
        if not changed:
            break
    return read


def _type_errors(errors: Iterable[ValidationError]) -> Iterable[ValidationError]:
    """The type errors of text values, also inside anyOf / oneOf alternatives."""
    for error in errors:
        if error.validator == "type" and isinstance(error.instance, str) and error.absolute_path:
            yield error
        yield from _type_errors(error.context or [])


def _yaml_scalar(text: str) -> Any:
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return _MISSING
    return value if value is None or isinstance(value, (bool, int, float)) else _MISSING
