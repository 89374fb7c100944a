"""Stage transfer: each DET's code decoded with every DET's projection, evaluated on the task with no more
training."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..io import ArtifactError, load_table, save_table
from ..train import SCORES, Split, predict, scores
from .in_subspace import decoded_model, load_code, prepare


def transfer(*, space_path, z_paths: dict[str, str], metrics_paths: dict[str, str], det_configs: dict[str, dict],
             backbone: dict, data: dict, task: dict, eval_batch_size: int, device: str, seed: int, base_dir, table_path,
             threads: int | None = None) -> None:
    """Every source DET's code decoded with every other target DET's projection, evaluated on the test split.
    A code decoded with its own DET is what optimize_subspace already evaluated: its test scores come from
    that job's metrics (metrics_paths), not from a second pass over the test split."""
    space, task_data, device = prepare(space_path, det_configs, backbone, task, data, base_dir, device, threads)
    codes = {src: load_code(path) for src, path in z_paths.items()}
    tag = space.subspace.name
    majority = int(np.bincount(task_data.splits["train"]["label"], minlength=len(task_data.labels)).argmax())
    rows, test = [], None
    for target in z_paths:
        own = load_table(metrics_paths[target])
        own = own[(own.split == "test") & own.metric.isin(SCORES)]
        if sorted(own.metric) != sorted(SCORES):
            raise ArtifactError(f"{metrics_paths[target]}: no test {', '.join(SCORES)}; not an optimize_subspace output")
        rows += [{"source": target, "target": target, "metric": m, "value": v} for m, v in zip(own.metric, own.value)]
        model = decoded_model(space, target, backbone, task_data.labels).to(device)
        if test is None:  # one backbone, one tokenizer: encode once
            test = Split.of(model, task_data.splits["test"])
        for source, z in codes.items():
            if source == target:
                continue
            model.set_code(z)
            preds = predict(model, test, eval_batch_size, device)
            for metric, value in scores(preds, test.labels, len(task_data.labels), majority).items():
                rows.append({"source": source, "target": target, "metric": metric, "value": value})
    frame = pd.DataFrame(rows).assign(space=tag, task=task["name"], seed=seed, split="test")
    save_table(table_path, frame[["space", "task", "seed", "source", "target", "split", "metric", "value"]])
