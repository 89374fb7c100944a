"""Stage train_det: one DET on one task from one seed, written as a delta and a metrics table."""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
import torch

from .. import dets
from ..delta import INIT, TRAINED, Layout
from ..heads import build_classifier
from ..io import provenance, save_table, save_tensors
from ..models import job_device
from ..tasks import load_task
from ..train import Checkpoint, NonFiniteLoss, Split, predictions_frame, stored_metrics, train, trainable

CHECKPOINT = "checkpoint.safetensors"  # beside the delta; removed once the delta is written


def train_det(
    *,
    backbone: dict,
    data: dict,
    task: dict,
    train_cfg: dict,
    det_name: str,
    det_cfg: dict,
    seed: int,
    device: str,
    base_dir: str | Path,
    delta_path: str | Path,
    metrics_path: str | Path,
    predictions_path: str | Path | None = None,
    threads: int | None = None,
    checkpoint_minutes: float | None = None,
) -> None:
    """Train and write the delta (the best validation checkpoint's values, and the initial ones), the
    metrics and (with predictions_path) the test predictions at the start and of the kept values. A NaN or infinite loss fails the job, or with train.nonfinite_retries starts over at a lower
    learning rate. With checkpoint_minutes, a killed job's rerun resumes from its last checkpoint."""
    started = time.perf_counter()
    device = job_device(device, threads)  # before anything slow
    task_data = load_task(task, data, Path(base_dir))
    init_seed = seed if train_cfg["init_seed"] is None else train_cfg["init_seed"]
    classifier, expected = build_classifier(backbone, det_cfg, task_data.labels, init_seed)
    layout = Layout.of_trainable(classifier)
    if layout.size != expected:
        raise dets.DETError(f"dets.{det_name}: {layout.size} trainable entries, but the settings give {expected}")
    splits = {name: Split.of(classifier, frame) for name, frame in task_data.splits.items()}
    for name, split in splits.items():
        cut = sum(len(ids) >= classifier.max_length for ids in split.ids)
        if cut:
            print(f"{name}: {cut} of {len(split)} examples reach backbone.max_length ({classifier.max_length} tokens) and are cut there")
    desc = f"{det_name}/{task['name']}/seed{seed}"
    # The checkpoint belongs to this job: other settings, code or versions make an earlier file one to replace.
    job = json.dumps([backbone, data, task, train_cfg, det_name, det_cfg, seed, str(device), provenance()], sort_keys=True,
                     default=str)
    checkpoint = None
    if checkpoint_minutes is not None:
        checkpoint = Checkpoint(Path(delta_path).parent / CHECKPOINT, hashlib.sha256(job.encode()).hexdigest(),
                                60.0 * checkpoint_minutes)
    result, lr, retries = _train_or_retry(classifier, splits, train_cfg, det_name, det_cfg["lr"], seed, device, desc,
                                          checkpoint)

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
            "lr": lr,
        },
    )
    rows = stored_metrics(result, desc, started) + [
        {"split": "train", "metric": "lr", "value": float(lr)},
        {"split": "train", "metric": "nonfinite_retries", "value": float(retries)},
    ]
    frame = pd.DataFrame(rows).assign(det=det_name, task=task["name"], seed=seed)
    save_table(metrics_path, frame[["det", "task", "seed", "split", "metric", "value"]])
    if predictions_path is not None:
        preds = predictions_frame(result.predictions, splits["test"].labels)
        save_table(predictions_path, preds.assign(det=det_name, task=task["name"], seed=seed))
    if checkpoint is not None:
        checkpoint.remove()


def _train_or_retry(classifier, splits: dict, train_cfg: dict, det_name: str, lr: float, seed: int, device,
                    desc: str, checkpoint: Checkpoint | None):
    """train(), started over from the initial values at lr x nonfinite_lr_factor after a NaN or infinite
    loss, up to train.nonfinite_retries times. Returns the result, the learning rate and the retries taken."""
    start = {n: p.detach().clone() for n, p in trainable(classifier).items()}
    retries = 0
    while True:
        # each attempt's checkpoint is its own: no attempt resumes another's state at another learning rate
        attempt = None if checkpoint is None else replace(checkpoint, key=f"{checkpoint.key}-retry{retries}")
        try:
            return train(classifier, splits, train_cfg, lr, seed, device, desc=desc, checkpoint=attempt), lr, retries
        except NonFiniteLoss as exc:
            if attempt is not None:
                attempt.remove()
            if retries == train_cfg["nonfinite_retries"]:
                hint = ("set train.nonfinite_retries to retry at a lower rate, or lower" if retries == 0 else
                        f"{retries} retries at lower rates failed too; lower")
                raise NonFiniteLoss(f"{exc}; {hint} dets.{det_name}.lr or train.max_grad_norm") from None
            retries += 1
            lr *= train_cfg["nonfinite_lr_factor"]
            print(f"{exc}; retry {retries} of {train_cfg['nonfinite_retries']} from the initial values at learning rate {lr:g}")
            with torch.no_grad():
                for name, p in trainable(classifier).items():
                    p.copy_(start[name])
