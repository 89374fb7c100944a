"""The library's shape: each fact declared once, the code digest of a stage derived from its imports, no import
cycle, and the small wrongs the restructuring mended (each test here failed before its fix)."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch

from deltaspace import dets
from deltaspace.config import ConfigError, load_config, validate_config
from deltaspace.config.schema import load_schema
from deltaspace.delta import Layout
from deltaspace.digest import _imports, modules_of, stage_digest
from deltaspace.io import save_table, save_tensors
from deltaspace.names import SpaceName
from deltaspace.stages.decompose import decompose_stacks
from deltaspace.subspace import SubspaceError
from deltaspace.tasks import TaskError, check_task

from conftest import ROOT, snakemake, tiny_with

LIBRARY = ROOT / "workflow" / "deltaspace"
RULES = ROOT / "workflow" / "rules"


# -- each fact once --------------------------------------------------------------------------------------------
def test_the_schema_enum_of_det_methods_is_the_registry():
    schema = load_schema()["$defs"]["det"]["properties"]["method"]["enum"]
    assert schema == list(dets.METHODS)
    assert {p.stem for p in (LIBRARY / "dets").glob("*.py") if not p.stem.startswith("_")} - {"base"} == set(
        dets.METHODS)


def test_a_space_name_formats_and_parses_back():
    name = SpaceName("learned", 12)
    assert str(name) == "learned-d12" and SpaceName.parse(str(name)) == name
    centred = SpaceName("svd", 4, "mean")
    assert str(centred) == "svd-mean-d4" and SpaceName.parse("svd-mean-d4") == centred
    assert centred.control() == SpaceName("random", 4, "mean") and str(name.control()) == "random-d12"
    assert SpaceName.parse("random-d3").is_control and not centred.is_control
    for bad in ("svd", "svd-dx", "SVD-d2", "svd-d2-d3", "svd-middle-d2", "svd-mean"):
        with pytest.raises(ValueError, match="not a subspace name"):
            SpaceName.parse(bad)


def test_the_fraction_check_of_config_and_tasks_says_the_same():
    cfg = load_config(ROOT / "configs" / "tiny.yaml")
    cfg["data"] |= {"validation_fraction": 0.5, "test_fraction": 0.5}
    with pytest.raises(ConfigError) as config_error:
        validate_config(cfg, ROOT)
    task = {"name": "sst2", "source": "file", "path": "sst2"}
    with pytest.raises(TaskError) as task_error:
        check_task(task, {"root": "../shared/tasks", **cfg["data"]}, ROOT)
    said = "validation_fraction + test_fraction must be below 1, got 0.5 + 0.5"
    assert said in str(config_error.value) and said in str(task_error.value)


def test_every_model_rule_takes_the_device_as_one_param_of_its_own():
    text = "\n".join(p.read_text() for p in RULES.glob("*.smk"))
    assert '"device"' not in text  # never folded into another dict
    for rule in ("train_det", "decompose_learned", "merge", "optimize_subspace", "transfer", "landscape"):
        body = re.search(rf"rule {rule}:(.*?)(?=\nrule |\Z)", text, re.S).group(1)
        assert "device=DEVICE" in body, rule


# -- the code digest follows the imports ------------------------------------------------------------------------
def test_each_rule_digests_the_stage_module_named_after_it():
    text = "\n".join(p.read_text() for p in RULES.glob("*.smk"))
    stages = set(re.findall(r'code=code\("(\w+)"\)', text))
    assert stages == {p.stem for p in (LIBRARY / "stages").glob("*.py")} - {"__init__", "in_subspace"}
    assert "CODE" not in text  # no hand-kept table


def test_a_stage_runs_what_it_imports_and_nothing_else():
    train_det = modules_of(LIBRARY, "stages/train_det.py")
    assert {"stages/train_det.py", "heads.py", "models.py", "gpus.py", "tasks.py", "train.py", "delta.py", "io.py",
            "dets/lora.py", "dets/prefix.py"} <= set(train_det)
    assert not [m for m in train_det if m.startswith(("config/", "stages/report", "tables"))]
    assert modules_of(LIBRARY, "stages/stack_deltas.py") == [
        "__init__.py", "delta.py", "io.py", "stages/__init__.py", "stages/stack_deltas.py"]


def test_an_edit_deep_in_the_imports_reruns_exactly_the_stages_that_run_it(tmp_path):
    copy = tmp_path / "deltaspace"
    shutil.copytree(LIBRARY, copy, ignore=shutil.ignore_patterns("__pycache__"))
    stages = ("train_det", "stack_deltas", "optimize_subspace", "report")
    before = {s: stage_digest(copy, s) for s in stages}
    tasks = copy / "tasks.py"
    tasks.write_text(tasks.read_text() + "\nLIMIT = 1\n")
    after = {s: stage_digest(copy, s) for s in stages}
    assert [s for s in stages if after[s] != before[s]] == ["train_det", "optimize_subspace"]


def test_the_library_has_no_import_cycle():
    # A module's own packages are initialised before it runs: an edge up to their __init__ is no cycle.
    graph = {p: {q for q in _imports(p, LIBRARY) if not (q.name == "__init__.py" and q.parent in p.parents)}
             for p in LIBRARY.rglob("*.py")}
    state: dict[Path, int] = {}

    def visit(node, path):
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                cycle = [*path[path.index(nxt):], nxt]
                raise AssertionError(" -> ".join(p.relative_to(LIBRARY).as_posix() for p in cycle))
            if nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for node in graph:
        if node not in state:
            visit(node, [node])


# The library from the bottom up, as docs/architecture.md lists it: a module imports only those before it.
LAYERS = ["io.py", "delta.py", "names.py", "paper.py", "stats.py", "leakage.py", "digest.py", "gpus.py", "tasks.py", "splitzip.py", "models.py",
          "dets", "heads.py", "train.py", "subspace.py", "decoded.py", "spacefile.py", "export.py", "learned.py", "landscape.py",
          "tables.py", "gaps.py", "pooled.py", "plots.py", "page.py", "logs.py", "config", "cost.py", "stages"]


def test_no_module_imports_one_above_it():
    def layer(path: Path) -> int:
        return LAYERS.index(path.relative_to(LIBRARY).parts[0])

    files = [p for p in LIBRARY.rglob("*.py") if p != LIBRARY / "__init__.py"]
    assert {p.relative_to(LIBRARY).parts[0] for p in files} == set(LAYERS)  # a new module takes its place here
    upward = [f"{p.relative_to(LIBRARY)} -> {q.relative_to(LIBRARY)}" for p in files for q in _imports(p, LIBRARY)
              if q != LIBRARY / "__init__.py" and layer(q) > layer(p)]
    assert upward == []


def test_models_and_decoded_models_are_what_training_asks_for(tiny_config):
    from deltaspace.decoded import Decoded
    from deltaspace.heads import build_classifier
    from deltaspace.train import Model

    classifier, _ = build_classifier(tiny_config["backbone"], tiny_config["dets"]["lora"], ["a", "b"], 0)
    layout = Layout.of_trainable(classifier)
    decoded = Decoded(classifier, layout, torch.zeros(layout.size, 2), torch.zeros(layout.size),
                      torch.zeros(layout.size))
    assert isinstance(classifier, Model) and isinstance(decoded, Model)


# -- the small wrongs --------------------------------------------------------------------------------------------
def write_stack(folder: Path, det: str, inits: torch.Tensor) -> tuple[Path, Path]:
    """A stack_deltas output of `rows` random deltas whose rows start from `inits` (rows x 3)."""
    rows = [("a", 0), ("a", 1), ("b", 0), ("b", 1)]
    layout = Layout(("w",), ((3,),))
    stacked, index = folder / f"{det}.safetensors", folder / f"{det}.parquet"
    deltas = torch.randn(len(rows), 3, generator=torch.Generator().manual_seed(1))
    save_tensors(stacked, {"delta": deltas, "init": inits},
                 {"det": det, "det_config": {"method": det}, "backbone": {"id": "x"}, "layout": layout.to_json()})
    save_table(index, pd.DataFrame([{"row": i, "task": t, "seed": s, "validation_accuracy": 0.5}
                                    for i, (t, s) in enumerate(rows)]))
    return stacked, index


def decompose_in(folder: Path, inits: torch.Tensor) -> None:
    stacked, index = write_stack(folder, "lora", inits)
    decompose_stacks(method="svd", dim=1, held_out=[], stacked={"lora": stacked}, indexes={"lora": index},
                     projections_path=folder / "p.safetensors", codes_path=folder / "c.parquet",
                     reconstruction_path=folder / "r.parquet")


def test_a_stack_whose_rows_start_from_other_initial_values_is_refused_by_row(tmp_path):
    inits = torch.zeros(4, 3)
    inits[1] = 1.0  # task a, seed 1: another init seed
    inits[3] = 2.0  # task b, seed 1
    with pytest.raises(SubspaceError, match=r"lora\.safetensors: the rows a seed 1, b seed 1 start from other "
                                            r"initial values than a seed 0.*train\.init_seed"):
        decompose_in(tmp_path, inits)
    assert not (tmp_path / "p.safetensors").exists()
    decompose_in(tmp_path, torch.ones(4, 3))  # one shared init: decomposed
    assert (tmp_path / "p.safetensors").exists()


def test_a_subspace_over_runs_from_other_inits_is_refused_before_any_job():
    cfg = load_config(ROOT / "configs" / "tiny.yaml")
    cfg["train"] |= {"init_seed": None, "seeds": [0, 1]}
    with pytest.raises(ConfigError, match=r"train\.init_seed: null starts each seed \[0, 1\] from its own initial "
                                          r"values"):
        validate_config(cfg, ROOT)
    cfg["subspace"]["enabled"] = False  # stacks alone may hold runs from other inits
    validate_config(cfg, ROOT)


def test_numbers_given_on_the_command_line_are_numbers():
    cfg = load_config(ROOT / "configs" / "tiny.yaml")
    # what Snakemake hands over for --config 'subspace={"optimize": {"steps": 8}}' and --config train=...
    cfg["subspace"]["optimize"] = {"steps": "8", "lr": "0.05"}
    cfg["train"] |= {"init_seed": "null", "device": "cpu"}
    valid = validate_config(cfg, ROOT)
    assert valid["subspace"]["optimize"]["steps"] == 8 and valid["subspace"]["optimize"]["lr"] == 0.05
    assert valid["train"]["init_seed"] is None
    cfg["subspace"]["optimize"]["steps"] = "eight"
    with pytest.raises(ConfigError, match=r"subspace\.optimize\.steps: 'eight' is not of type 'integer'"):
        validate_config(cfg, ROOT)


def test_a_nested_number_can_be_changed_from_the_command_line(tmp_path):
    config = tiny_with(tmp_path, "tiny.yaml", lambda cfg: None)
    result = snakemake(tmp_path, config, "-n", "--config", 'subspace={"optimize": {"steps": 8}}')
    assert result.returncode == 0, result.stderr[-2000:]
    assert "optimize_subspace" in result.stdout


def test_a_det_configured_otherwise_than_its_subspace_is_refused_naming_both(tiny_run, tiny_config):
    from deltaspace.stages.in_subspace import prepare

    path = tiny_run / "results" / "subspace" / "svd-d3" / "projections.safetensors"
    now = {**tiny_config["dets"]["lora"], "r": 3}  # the config changed since the subspace was built
    with pytest.raises(SubspaceError, match=r"dets\.lora as configured now \(\{.*'r': 3.*\) is not the config this "
                                            r"subspace was built from \(\{.*'r': 2.*\); rerun stack_deltas and decompose"):
        prepare(path, {"lora": now}, tiny_config["backbone"], {"name": "sst2"}, tiny_config["data"], ROOT, "cpu", 1)
