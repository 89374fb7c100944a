"""The workflow's stages as plain functions: each reads its config slices and inputs, writes its outputs.

The Snakemake scripts in workflow/scripts/ are thin calls into these, so a stage can be run by hand too.
"""
from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import torch

from . import dets
from .delta import Layout
from .heads import Classifier
from .io import ArtifactError, load_table, load_tensors, save_table, save_tensors
from .models import load_backbone, select_device
from .tasks import load_task
from .train import Split, train

TRAINED, INIT = "trained/", "init/"


def build_classifier(backbone_cfg: dict, det_cfg: dict, labels: list[str], seed: int) -> tuple[Classifier, int]:
    """Backbone + DET (initialised from `seed`) + head; returns the classifier and the expected count."""
    backbone = load_backbone(backbone_cfg)
    expected = dets.expected_count(backbone.model, det_cfg, backbone.kind)
    model = dets.attach(backbone.model, det_cfg, backbone.kind, seed)
    classifier = Classifier(
        model,
        backbone.tokenizer,
        backbone.kind,
        labels,
        max_length=backbone_cfg["max_length"],
        temperature=backbone_cfg["temperature"],
        pooling=backbone_cfg["pooling"],
        answer_prefix=backbone_cfg["answer_prefix"],
    )
    return classifier, expected


def train_det(
    *,
    backbone: dict,
    data: dict,
    task: dict,
    train_cfg: dict,
    det_name: str,
    det_cfg: dict,
    seed: int,
    base_dir: str | Path,
    delta_path: str | Path,
    metrics_path: str | Path,
    threads: int | None = None,
) -> None:
    started = time.perf_counter()
    if threads:
        torch.set_num_threads(threads)
    task_data = load_task(task, data, Path(base_dir))
    classifier, expected = build_classifier(backbone, det_cfg, task_data.labels, seed)
    layout = Layout.of_trainable(classifier)
    if layout.size != expected:
        raise dets.DETError(f"dets.{det_name}: {layout.size} trainable entries, but the settings give {expected}")
    splits = {name: Split.of(classifier, frame) for name, frame in task_data.splits.items()}
    device = select_device(train_cfg["device"])
    result = train(classifier, splits, train_cfg, det_cfg["lr"], seed, device, desc=f"{det_name}/{task['name']}/seed{seed}")

    tensors = {TRAINED + n: t for n, t in result.best.items()} | {INIT + n: t for n, t in result.init.items()}
    save_tensors(
        delta_path,
        tensors,
        {
            "backbone": backbone,
            "det": det_name,
            "det_config": det_cfg,
            "task": task["name"],
            "labels": task_data.labels,
            "seed": seed,
            "param_count": layout.size,
            "layout": layout.to_json(),
            "device": str(device),
        },
    )
    rows = result.metrics + [{"split": "train", "metric": "wall_seconds", "value": time.perf_counter() - started}]
    frame = pd.DataFrame(rows).assign(det=det_name, task=task["name"], seed=seed)
    save_table(metrics_path, frame[["det", "task", "seed", "split", "metric", "value"]])


def read_delta(path) -> tuple[Layout, torch.Tensor, torch.Tensor, dict]:
    """(layout, trained vector, initial vector, metadata) of one delta.safetensors."""
    tensors, meta = load_tensors(path)
    if "layout" not in meta:
        raise ArtifactError(f"{path}: no layout in the header; not a train_det output")
    layout = Layout.from_json(meta["layout"])
    trained = layout.flatten({n: tensors[TRAINED + n] for n in layout.names})
    init = layout.flatten({n: tensors[INIT + n] for n in layout.names})
    return layout, trained, init, meta


def stack_deltas(*, det_name: str, deltas: list, metrics: list, stacked_path, index_path) -> None:
    """Stack trained-minus-initial vectors of one DET, one row per (task, seed), in the order given."""
    rows, inits, index, layout, first = [], [], [], None, None
    for row, (delta_path, metrics_path) in enumerate(zip(deltas, metrics)):
        this, trained, init, meta = read_delta(delta_path)
        if layout is None:
            layout, first = this, meta
        elif this != layout or meta["backbone"] != first["backbone"] or meta["det_config"] != first["det_config"]:
            raise ArtifactError(f"{delta_path}: its layout, backbone or DET config differs from {deltas[0]}; "
                                "rerun its train_det job")
        table = load_table(metrics_path)
        acc = table[(table.split == "validation") & (table.metric == "accuracy")].value
        if len(acc) != 1:
            raise ArtifactError(f"{metrics_path}: expected one validation accuracy, found {len(acc)}")
        rows.append(trained - init)
        inits.append(init)
        index.append({"row": row, "task": meta["task"], "seed": meta["seed"], "validation_accuracy": float(acc.iloc[0])})
    save_tensors(
        stacked_path,
        {"delta": torch.stack(rows), "init": torch.stack(inits)},
        {"det": det_name, "det_config": first["det_config"], "backbone": first["backbone"], "layout": layout.to_json()},
    )
    save_table(index_path, pd.DataFrame(index))
