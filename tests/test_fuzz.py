"""Property tests: whatever a config or a task file holds, the answer is a valid result or one clear error
(ConfigError / TaskError), never a crash from deep inside a library."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from deltaspace.config import ConfigError, load_config, validate_config
from deltaspace.tasks import SPLITS, TaskError, check_task, load_task

from conftest import ROOT, TINY

BASE = load_config(TINY)  # file tasks from ../shared/tasks: their checks are cached, so examples stay fast
DELETE = object()


def paths(node, prefix=()):
    """Every key path of a config, inner nodes included."""
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += paths(value, (*prefix, i))
    return found


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers(-10**9, 10**9) | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)
CHANGE = st.tuples(st.sampled_from(paths(BASE)), st.just(DELETE) | JSONISH)


def apply(cfg: dict, path: tuple, value) -> None:
    node = cfg
    for part in path[:-1]:
        if not isinstance(node, dict | list):
            return
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return  # an earlier change removed or replaced this path
    last = path[-1]
    if isinstance(node, dict) or (isinstance(node, list) and isinstance(last, int) and last < len(node)):
        if value is DELETE:
            node.pop(last, None) if isinstance(node, dict) else node.pop(last)
        else:
            node[last] = value


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(changes=st.lists(CHANGE, min_size=1, max_size=3))
def test_any_config_is_valid_or_one_config_error(changes):
    cfg = copy.deepcopy(BASE)
    for path, value in changes:
        apply(cfg, path, value)
    before = copy.deepcopy(cfg)
    try:
        filled = validate_config(cfg, ROOT)
        event("valid")
    except ConfigError as exc:
        event("refused")
        lines = str(exc).splitlines()
        assert lines and all(line.startswith("config: ") for line in lines), str(exc)
    else:
        assert validate_config(filled, ROOT) == filled  # a filled config is its own fill
    assert repr(cfg) == repr(before)  # the input is never changed (repr: NaN != NaN)


# ---------------------------------------------------------------------------------------------- task files
GOOD_ROW = st.tuples(st.text(st.characters(codec="utf-8"), min_size=1, max_size=20).filter(str.strip),
                     st.sampled_from(["yes", "no", "maybe"]))
BAD_TEXT = st.none() | st.text(max_size=20) | st.integers(-5, 5)
BAD_LABEL = st.none() | st.sampled_from(["", "Yes", "n"]) | st.integers(-2, 3) | st.floats(-1, 3)


@st.composite
def rows(draw):
    """Mostly good rows, some cells replaced by odd ones: both outcomes come up often."""
    out = draw(st.lists(GOOD_ROW, min_size=24, max_size=40))
    for _ in range(draw(st.sampled_from([0, 0, 1, 2]))):
        i = draw(st.integers(0, len(out) - 1))
        text, label = out[i]
        out[i] = (draw(BAD_TEXT), label) if draw(st.booleans()) else (text, draw(BAD_LABEL))
    return out


def write(rows: list, path: Path) -> bool:
    frame = pd.DataFrame(rows, columns=["text", "label"])
    try:
        if path.suffix == ".parquet":
            frame.to_parquet(path, index=False)
        elif path.suffix == ".jsonl":
            frame.to_json(path, orient="records", lines=True)
        else:
            frame.to_csv(path, index=False)
    except (TypeError, ValueError):  # pyarrow refuses mixed-type columns: not a file anyone could hand us
        return False
    return True


def well_formed(td, labels_given: list | None) -> None:
    assert list(td.splits) == list(SPLITS)
    if labels_given:
        assert td.labels == labels_given
    for split, frame in td.splits.items():
        assert list(frame.columns) == ["text", "text_pair", "label"], split
        assert frame["label"].between(0, len(td.labels) - 1).all() and frame["label"].nunique() >= 2, split
        assert all(isinstance(t, str) and t.strip() for t in frame["text"]), split


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(
    rows=rows(),
    suffix=st.sampled_from([".parquet", ".jsonl", ".csv"]),
    labels=st.none() | st.just(["no", "yes", "maybe"]),
    damage=st.sampled_from([None, None, None]) | st.tuples(st.floats(0, 1), st.binary(max_size=4)),
)
def test_any_task_file_loads_well_formed_or_gives_one_task_error(tmp_path_factory, rows, suffix, labels, damage):
    root = tmp_path_factory.mktemp("fuzz")
    (root / "t").mkdir()
    path = root / "t" / f"train{suffix}"
    assume(write(rows, path))
    if damage is not None:  # cut the file somewhere and append a few stray bytes
        data = path.read_bytes()
        where, junk = damage
        path.write_bytes(data[: int(where * len(data))] + junk)
    task = {"name": "fuzz", "source": "file", "path": "t"} | ({"labels": labels} if labels else {})
    data_cfg = {"root": str(root), "max_train": 1000, "max_validation": 1000, "max_test": 1000, "validation_fraction": 0.2,
                "test_fraction": 0.2, "split_seed": 0, "max_text_chars": 100_000}
    outcomes = []
    for read in (check_task, load_task):
        try:
            outcomes.append(read(task, data_cfg, ROOT))
        except TaskError as exc:
            message = str(exc)
            assert message.startswith("task 'fuzz', key '") and "\n" not in message.split(": ", 1)[0], message
            outcomes.append(message)
    checked, loaded = outcomes
    event("refused" if isinstance(loaded, str) else "loaded")
    if isinstance(loaded, str):
        assert checked == loaded  # the config check and the job give the same message
    else:
        assert checked is None
        well_formed(loaded, labels)


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl", ".csv"])
def test_a_good_file_loads_in_every_format_the_same(tmp_path, suffix):
    # the property test's write() makes files the reader accepts: a check that the fuzzing reaches success too
    rows = [(f"text {i}", ["no", "yes"][i % 2]) for i in range(40)]
    (tmp_path / "t").mkdir()
    assert write(rows, tmp_path / "t" / f"train{suffix}")
    data_cfg = {"root": str(tmp_path), "max_train": 100, "max_validation": 100, "max_test": 100,
                "validation_fraction": 0.2, "test_fraction": 0.2, "split_seed": 0, "max_text_chars": 100}
    td = load_task({"name": "t", "source": "file", "path": "t"}, data_cfg, ROOT)
    well_formed(td, None)
    assert td.labels == ["no", "yes"] and sum(len(f) for f in td.splits.values()) == 40
    assert json.dumps(sorted(np.concatenate([f["text"] for f in td.splits.values()]).tolist())) == json.dumps(
        sorted(r[0] for r in rows))
