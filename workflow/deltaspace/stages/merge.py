"""Stage merge: a baseline that needs no training. Each DET's initial values plus s x the mean of its source
solutions (the seen rows of its stack: a task-arithmetic merge), s picked on the task's validation split."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..decoded import Decoded, predict_codes
from ..delta import Layout
from ..heads import build_classifier
from ..io import ArtifactError, load_table, load_tensors, save_table
from ..models import job_device
from ..subspace import SubspaceError
from ..tasks import load_task
from ..train import Split, predictions_frame
from .in_subspace import check_configured


def merge(*, stacked, index, det_name: str, det_cfg: dict, backbone: dict, data: dict, task: dict,
          held_out: list[str], scales: list[float], eval_batch_size: int, device: str, base_dir, table_path,
          predictions_path, threads: int | None = None) -> None:
    """Evaluate init + s x mean(source deltas) at every scale s on validation, the best one on test; write the
    scales' validation accuracies (the kept one marked, with its test accuracy) and its test predictions."""
    device = job_device(device, threads)
    tensors, meta = load_tensors(stacked)
    rows = load_table(index)
    if "delta" not in tensors or len(rows) != tensors["delta"].shape[0]:
        raise ArtifactError(f"{stacked}: not a stack_deltas output that fits {index}")
    check_configured(stacked, det_name, det_cfg, meta["det_config"], "its solutions were trained with",
                     "rerun train_det and stack_deltas")
    if meta["backbone"] != backbone:
        raise SubspaceError(f"{stacked}: trained on another backbone than the config's; rerun train_det")
    sources = torch.as_tensor(~rows.task.isin(held_out).to_numpy())
    if not bool(sources.any()):
        raise SubspaceError(f"every task is held out ({', '.join(held_out)}): no source solutions to merge")
    mean = tensors["delta"][sources].double().mean(0).float()
    init = tensors["init"][sources][0]  # every row starts from these (decompose refuses a stack that does not)
    task_data = load_task(task, data, Path(base_dir))
    classifier, _ = build_classifier(backbone, det_cfg, task_data.labels, 0)
    layout = Layout.from_json(meta["layout"])
    # a one-dimensional "subspace" along the mean delta: the code is the scale
    model = Decoded(classifier, layout, mean.unsqueeze(1), torch.zeros_like(mean), init).to(device)
    validation, test = (Split.of(model, task_data.splits[name]) for name in ("validation", "test"))
    codes = torch.tensor([[float(s)] for s in scales])
    accuracy = (predict_codes(model, validation, codes, eval_batch_size, device) == validation.labels).mean(1)
    best = int(np.argmax(accuracy))  # the first of equals: the smaller scale when listed first
    preds = predict_codes(model, test, codes[best : best + 1], eval_batch_size, device)[0]
    test_accuracy = float(np.mean(preds == test.labels))
    print(f"merge {det_name}/{task['name']}: scale {scales[best]:g} kept (validation {accuracy[best]:.3f}), "
          f"test {test_accuracy:.3f}")
    ids = {"det": det_name, "task": task["name"], "sources": int(sources.sum())}
    table = pd.DataFrame({"scale": [float(s) for s in scales], "validation_accuracy": accuracy.astype(float),
                          "kept": np.arange(len(scales)) == best})
    table["test_accuracy"] = np.where(table.kept, test_accuracy, np.nan)
    save_table(table_path, table.assign(**ids)[["det", "task", "sources", "scale", "kept", "validation_accuracy",
                                                 "test_accuracy"]])
    save_table(predictions_path, predictions_frame({"test": preds}, test.labels).assign(det=det_name,
                                                                                        task=task["name"]))
