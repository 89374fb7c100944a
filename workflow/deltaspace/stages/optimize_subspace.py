"""Stage optimize_subspace: only the code z (dim numbers) of one DET in the subspace, trained on one task."""
from __future__ import annotations

import time

import pandas as pd
import torch

from ..io import save_table, save_tensors
from ..train import Split, stored_metrics, train
from .in_subspace import decoded_model, prepare


def optimize_subspace(*, space_path, det_name: str, det_cfg: dict, backbone: dict, data: dict, task: dict,
                      optimize_cfg: dict, device: str, seed: int, base_dir, z_path, metrics_path,
                      threads: int | None = None) -> None:
    """Train only the code z of one DET in the subspace on one task; keep the best one on validation, the
    starting code included."""
    started = time.perf_counter()
    space, task_data, device = prepare(space_path, {det_name: det_cfg}, backbone, task, data, base_dir, device, threads)
    z0 = torch.randn(space.subspace.dim, generator=torch.Generator().manual_seed(seed)) * optimize_cfg["init_std"]
    model = decoded_model(space, det_name, backbone, task_data.labels, z0)
    splits = {name: Split.of(model, frame) for name, frame in task_data.splits.items()}
    tag = space.subspace.name
    desc = f"{tag}/{det_name}/{task['name']}"
    # the start is a candidate: the kept code is never worse on validation than where it began
    result = train(model, splits, optimize_cfg, optimize_cfg["lr"], seed, device, desc=desc, start_is_candidate=True)
    save_tensors(z_path, {"z": result.best["z"], "z_init": result.init["z"]},
                 {"space": tag, "det": det_name, "task": task["name"], "seed": seed})
    rows = stored_metrics(result, desc, started)
    frame = pd.DataFrame(rows).assign(space=tag, det=det_name, task=task["name"], seed=seed)
    save_table(metrics_path, frame[["space", "det", "task", "seed", "split", "metric", "value"]])
