"""Stage optimize_subspace: only the code z (dim numbers) of one DET in the subspace, trained on one task."""
from __future__ import annotations

import time

import pandas as pd
import torch

from ..io import save_table, save_tensors
from ..train import Split, predictions_frame, stored_metrics, train
from .in_subspace import decoded_model, prepare

KEYS = ["space", "det", "task", "seed"]


def optimize_subspace(*, space_path, det_name: str, det_cfg: dict, backbone: dict, data: dict, task: dict,
                      optimize_cfg: dict, device: str, seed: int, base_dir, z_path, metrics_path,
                      history_path=None, predictions_path=None, threads: int | None = None) -> None:
    """Train only the code z of one DET in the subspace on one task, from z ~ N(0, init_std) (seeded), once
    per learning rate of optimize_cfg["lr"] (a number or a list), each with the same step budget; keep the
    code best on validation over every rate, the starting code included. Writes the code, the metrics (with
    the rate kept and the norm of z at the start and the end), the validation curve of every rate
    (history_path) and the test predictions at the start and of the kept code (predictions_path)."""
    started = time.perf_counter()
    space, task_data, device = prepare(space_path, {det_name: det_cfg}, backbone, task, data, base_dir, device, threads)
    z0 = torch.randn(space.subspace.dim, generator=torch.Generator().manual_seed(seed)) * optimize_cfg["init_std"]
    lrs = optimize_cfg["lr"] if isinstance(optimize_cfg["lr"], list) else [optimize_cfg["lr"]]
    tag = space.subspace.name
    desc = f"{tag}/{det_name}/{task['name']}"
    splits, kept, history = None, None, []
    for lr in lrs:
        model = decoded_model(space, det_name, backbone, task_data.labels, z0)
        if splits is None:  # one tokenizer: tokenise once
            splits = {name: Split.of(model, frame) for name, frame in task_data.splits.items()}
        # the start is a candidate: the kept code is never worse on validation than where it began
        result = train(model, splits, optimize_cfg, lr, seed, device, desc=f"{desc} lr {lr:g}", start_is_candidate=True)
        history += [row | {"lr": lr} for row in result.history]
        accuracy = _validation_accuracy(result)
        if kept is None or accuracy > kept[0]:
            kept = (accuracy, lr, result)
    _, lr, result = kept
    save_tensors(z_path, {"z": result.best["z"], "z_init": result.init["z"]},
                 {"space": tag, "det": det_name, "task": task["name"], "seed": seed, "lr": lr})
    rows = stored_metrics(result, desc, started) + [
        {"split": "train", "metric": "lr", "value": float(lr)},
        {"split": "train", "metric": "z_norm_start", "value": float(result.init["z"].norm())},
        {"split": "train", "metric": "z_norm_end", "value": float(result.best["z"].norm())},
    ]
    ids = {"space": tag, "det": det_name, "task": task["name"], "seed": seed}
    frame = pd.DataFrame(rows).assign(**ids)
    save_table(metrics_path, frame[[*KEYS, "split", "metric", "value"]])
    if history_path is not None:
        curve = pd.DataFrame(history).assign(**ids)
        save_table(history_path, curve[[*KEYS, "lr", "step", "epoch", "train_loss", "validation_accuracy"]])
    if predictions_path is not None:
        save_table(predictions_path, predictions_frame(result.predictions, splits["test"].labels).assign(**ids))


def _validation_accuracy(result) -> float:
    return next(m["value"] for m in result.metrics if m["split"] == "validation" and m["metric"] == "accuracy")
