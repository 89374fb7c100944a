"""Stage train_det: one DET on one task from one seed, written as a delta and a metrics table.

The Snakemake script in workflow/scripts/ is a thin call into this, so the stage can be run by hand too.
"""
from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from . import dets
from .delta import INIT, TRAINED, Layout
from .heads import build_classifier
from .io import save_table, save_tensors
from .models import job_device
from .tasks import load_task
from .train import Split, train


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
    device = job_device(train_cfg["device"], threads)  # before anything slow
    task_data = load_task(task, data, Path(base_dir))
    init_seed = seed if train_cfg["init_seed"] is None else train_cfg["init_seed"]
    classifier, expected = build_classifier(backbone, det_cfg, task_data.labels, init_seed)
    layout = Layout.of_trainable(classifier)
    if layout.size != expected:
        raise dets.DETError(f"dets.{det_name}: {layout.size} trainable entries, but the settings give {expected}")
    splits = {name: Split.of(classifier, frame) for name, frame in task_data.splits.items()}
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
            "init_seed": init_seed,
            "param_count": layout.size,
            "layout": layout.to_json(),
            "device": str(device),
        },
    )
    rows = result.metrics + [{"split": "train", "metric": "wall_seconds", "value": time.perf_counter() - started}]
    frame = pd.DataFrame(rows).assign(det=det_name, task=task["name"], seed=seed)
    save_table(metrics_path, frame[["det", "task", "seed", "split", "metric", "value"]])
