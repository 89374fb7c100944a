"""Exports (deltaspace.export, rules export_det and export_optimized): every DET's trained solution, and LoRA's and
prefix's codes decoded from the tiny run's subspace, reloaded in a fresh process give the logits the workflow
computes itself; peft folders load with PeftModel.from_pretrained; a folder that is no export, or a backbone
that is not the solution's, is one clear error.

The solutions are the tiny run's (the session's `tiny_run`, copied: no training here); a registered method the
tiny config does not train gets a short train_det run of its own."""
from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from deltaspace import dets
from deltaspace.config import plan
from deltaspace.delta import TRAINED, Layout
from deltaspace.export import ExportError, apply, export_delta, load, read_recipe
from deltaspace.heads import build_classifier
from deltaspace.io import load_table, load_tensors
from deltaspace.models import load_backbone
from deltaspace.spacefile import load_space
from deltaspace.stages.in_subspace import decoded_model, load_code
from deltaspace.stages.train_det import train_det
from deltaspace.tasks import load_task

from conftest import ROOT, TINY, snakemake_command

TRAINED_TASK, CODE_TASK, SPACE = "rte", "mr", "svd-d3"  # rte: sentence pairs; mr: unseen by the subspace
DECODED = ("lora", "prefix")
TOLERANCE = 1e-4  # logits are cosine similarities over a temperature of 0.1: up to 10 in size

# Run in a fresh interpreter: each export loaded with deltaspace.export.load, and each peft folder also with
# PeftModel.from_pretrained on a backbone from load_backbone under a head built by hand.
FRESH = r"""
import json, sys, torch
from safetensors.torch import save_file
from deltaspace.export import load, read_recipe
from deltaspace.heads import Classifier
from deltaspace.models import load_backbone

out = {}
for key, job in json.load(open(sys.argv[1])).items():
    classifier = load(job["folder"])
    batch = classifier.collate(classifier.encode(job["texts"], job["pairs"]))
    with torch.no_grad():
        out[key] = classifier(**batch)
    recipe = read_recipe(job["folder"])
    if recipe["format"] == "peft":
        from peft import PeftModel
        backbone = load_backbone(recipe["backbone"])
        model = PeftModel.from_pretrained(backbone.model, job["folder"]).eval()
        head = Classifier(model, backbone.tokenizer, recipe["kind"], recipe["labels"], **recipe["head"]).eval()
        with torch.no_grad():
            out[key + "/peft"] = head(**batch)
save_file(out, sys.argv[2])
"""


def _test_split(cfg: dict, task: str):
    frame = load_task(plan.task_config(cfg, task), cfg["data"], ROOT).splits["test"]
    pairs = frame["text_pair"].tolist() if "text_pair" in frame else None
    return frame["text"].tolist(), pairs


@torch.no_grad()
def _logits(model, texts, pairs) -> torch.Tensor:
    model.eval()
    return model(**model.collate(model.encode(texts, pairs)))


def _delta_of(method: str, work, cfg: dict):
    """The tiny run's solution of a DET it trains; else a short train_det run of the method's defaults."""
    path = work / "results" / "dets" / method / TRAINED_TASK / "seed0" / "delta.safetensors"
    if path.is_file():
        return path
    from deltaspace.config import validate_config

    raw = copy.deepcopy(cfg)
    raw["dets"][method] = {}  # beside the others: a budget may follow another DET's (apet's follows lora's)
    det_cfg = validate_config(raw, ROOT)["dets"][method]
    out = work / "extra" / method
    train_det(backbone=cfg["backbone"], data=cfg["data"], task=plan.task_config(cfg, TRAINED_TASK),
              train_cfg=plan.train_params(cfg) | {"steps": 2}, det_name=method, det_cfg=det_cfg, seed=0,
              device="cpu", base_dir=ROOT, delta_path=out / "delta.safetensors", metrics_path=out / "metrics.parquet",
              predictions_path=out / "predictions.parquet")
    return out / "delta.safetensors"


def _trained_logits(delta_path, texts, pairs) -> torch.Tensor:
    """The workflow's own evaluation of a trained solution: the classifier train_det builds, its kept tensors."""
    tensors, meta = load_tensors(delta_path)
    classifier, _ = build_classifier(meta["backbone"], meta["det_config"], meta["labels"], meta["init_seed"])
    params = dict(classifier.named_parameters())
    with torch.no_grad():
        for name in Layout.from_json(meta["layout"]).names:
            params[name].copy_(tensors[TRAINED + name])
    return _logits(classifier, texts, pairs)


@pytest.fixture(scope="module")
def exported(tiny_run, tiny_config, tmp_path_factory):
    """Every registered DET's solution exported by the library, LoRA's and prefix's optimised codes by the
    workflow's rule, all loaded in one fresh process: {key: (the workflow's logits, the reloaded ones, the
    peft-loaded ones or None, the stored test predictions or None, the folder)}."""
    work = tmp_path_factory.mktemp("export") / "run"
    shutil.copytree(tiny_run, work, symlinks=True)
    targets = [f"results/export/{SPACE}/{det}/{CODE_TASK}/seed0" for det in DECODED]
    # the rule's two jobs run beside the library's exports below; the copy's solutions are taken as they are
    said = work.parent / "snakemake.txt"
    with open(said, "w") as out:
        rule = subprocess.Popen(snakemake_command(work, TINY, *targets, "--allowed-rules", "export_optimized", "--cores", "1"),
                                stdout=out, stderr=subprocess.STDOUT)
    cases = {}
    texts, pairs = _test_split(tiny_config, TRAINED_TASK)
    for method in dets.METHODS:
        delta = _delta_of(method, work, tiny_config)
        folder = export_delta(delta, work / "results" / "export" / method / TRAINED_TASK / "seed0")
        stored = delta.parent / "predictions.parquet"
        cases[method] = (_trained_logits(delta, texts, pairs), folder, stored, texts, pairs)
    assert rule.wait(timeout=300) == 0, said.read_text()[-3000:]
    code_texts, code_pairs = _test_split(tiny_config, CODE_TASK)
    space = load_space(work / "results" / "subspace" / SPACE / "projections.safetensors")
    labels = load_task(plan.task_config(tiny_config, CODE_TASK), tiny_config["data"], ROOT).labels
    for det in DECODED:
        run = work / "results" / "optimized" / SPACE / det / CODE_TASK / "seed0"
        model = decoded_model(space, det, tiny_config["backbone"], labels, load_code(run / "z.safetensors"))
        cases[f"{SPACE}/{det}"] = (_logits(model, code_texts, code_pairs), work / targets[DECODED.index(det)],
                                   run / "predictions.parquet", code_texts, code_pairs)
    jobs = {key: {"folder": str(folder), "texts": t, "pairs": p} for key, (_, folder, _, t, p) in cases.items()}
    (work / "jobs.json").write_text(json.dumps(jobs))
    fresh = subprocess.run([sys.executable, "-c", FRESH, str(work / "jobs.json"), str(work / "logits.safetensors")],
                           capture_output=True, text=True, timeout=300, check=False)
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    loaded = load_file(work / "logits.safetensors")
    return {key: (want, loaded[key], loaded.get(f"{key}/peft"), stored, folder)
            for key, (want, folder, stored, _, _) in cases.items()}


def _same_as_the_workflow(case) -> None:
    want, got, _, stored, _ = case
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, atol=TOLERANCE, rtol=0)
    # the in-process logits are the workflow's: their argmax is the stored test predictions of the kept tensors
    best = load_table(stored).query("point == 'best'").sort_values("example")
    top2 = want.topk(2, dim=-1).values
    tie = (top2[:, 0] - top2[:, 1]).numpy() < TOLERANCE
    assert np.all((want.argmax(-1).numpy() == best.prediction.to_numpy()) | tie)


@pytest.mark.parametrize("method", dets.METHODS)
def test_a_trained_solution_reloads_in_a_fresh_process_with_the_workflows_logits(exported, method):
    _same_as_the_workflow(exported[method])
    recipe = read_recipe(exported[method][4])
    assert recipe["det"]["method"] == method and recipe["origin"]["stage"] == "train_det"
    assert recipe["labels"] and recipe["head"]["temperature"] == 0.1 and recipe["backbone"]["source"] == "random"


@pytest.mark.parametrize("det", DECODED)
def test_a_code_decoded_from_the_subspace_reloads_in_a_fresh_process_with_equal_logits(exported, det):
    case = exported[f"{SPACE}/{det}"]
    _same_as_the_workflow(case)
    folder = case[4]
    assert read_recipe(folder)["origin"]["space"] == SPACE
    assert (folder.parents[4] / "logs" / "export" / SPACE / det / CODE_TASK / "seed0.log").is_file()


def test_peft_folders_load_with_peft_from_pretrained(exported):
    peft_backed = [key for key, case in exported.items() if read_recipe(case[4])["format"] == "peft"]
    assert {"lora", "prompt", f"{SPACE}/lora"} <= set(peft_backed)
    for key in peft_backed:
        want, _, with_peft, _, folder = exported[key]
        assert {"adapter_config.json", "adapter_model.safetensors"} <= {p.name for p in folder.iterdir()}
        torch.testing.assert_close(with_peft, want, atol=TOLERANCE, rtol=0)
    own = [key for key in exported if key not in peft_backed]
    assert {"adapter", "prefix", "bitfit", "finetune", f"{SPACE}/prefix"} <= set(own)
    assert all((exported[key][4] / "det_model.safetensors").is_file() for key in own)


def test_a_folder_that_is_no_export_is_one_clear_error(exported, tmp_path):
    with pytest.raises(ExportError, match="no such folder"):
        load(tmp_path / "nowhere")
    with pytest.raises(ExportError, match="not a deltaspace export"):
        load(tmp_path)
    half = tmp_path / "half"
    shutil.copytree(exported["adapter"][4], half)
    (half / "det_model.safetensors").unlink()
    with pytest.raises(ExportError, match="det_model.safetensors missing"):
        load(half)


@pytest.mark.parametrize("key", ["lora", "prefix"])
def test_another_backbone_is_refused_naming_what_differs(exported, tiny_config, key):
    other = load_backbone(tiny_config["backbone"] | {"init_seed": 1})  # same architecture, other weights
    with pytest.raises(ExportError, match=r"not the backbone this solution was trained on \(embeddings_sha256"):
        apply(other.model, exported[key][4])
    with pytest.raises(ExportError, match="not the backbone"):
        load(exported[key][4], backbone=other)


def test_export_all_asks_for_every_solution_and_code(tiny_config):
    folders = plan.export_folders(tiny_config)
    trained = [f for f in folders if f.count("/") == 4]
    assert len(trained) == len(plan.det_names(tiny_config)) * len(plan.runs(tiny_config))
    assert len(folders) - len(trained) == len(plan.optimize_jobs(tiny_config)) * len(plan.det_names(tiny_config))
    assert "results/export/lora/rte/seed0" in folders and f"results/export/{SPACE}/prefix/mr/seed0" in folders
    assert not set(folders) & set(plan.final_targets(tiny_config))  # not part of `all`
