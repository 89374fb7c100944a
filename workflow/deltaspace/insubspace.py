"""The stages that work in a subspace: optimize_subspace, transfer and landscape.

Each builds the frozen classifier with a DET attached, then decodes that DET's tensors from a code z of the
subspace (deltaspace.subspace.Decoded). The Snakemake scripts in workflow/scripts/ are thin calls into these
functions, so a stage can be run by hand.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from .heads import build_classifier
from .io import ArtifactError, load_table, load_tensors, save_table, save_tensors
from .landscape import plane, plot_landscape, square_grid
from .models import job_device
from .subspace import Decoded, SpaceFile, SubspaceError, load_space
from .tasks import TaskData, load_task
from .train import SCORES, Split, autocast, batches, predict, scores, stored_metrics, to_device, train


def _prepare(space_path, det_names: list[str], backbone: dict, task: dict, data: dict, base_dir,
             device: str, threads: int | None) -> tuple[SpaceFile, TaskData, torch.device]:
    device = job_device(device, threads)
    space = load_space(space_path)
    missing = [d for d in det_names if d not in space.subspace.dets]
    if missing:
        raise SubspaceError(f"{space_path}: no DET {', '.join(missing)} in this subspace")
    if space.meta["backbone"] != backbone:
        raise SubspaceError(f"{space_path}: built from solutions on another backbone than the config's; rerun decompose")
    return space, load_task(task, data, Path(base_dir)), device


def _decoded(space: SpaceFile, det: str, backbone: dict, labels: list[str], z=None):
    # the DET's own initial values are replaced by the decoded ones: any init seed builds the same model
    classifier, _ = build_classifier(backbone, space.meta["det_configs"][det], labels, 0)
    return space.decoded(classifier, det, z)


def _load_code(path) -> torch.Tensor:
    tensors, _ = load_tensors(path)
    if "z" not in tensors:
        raise ArtifactError(f"{path}: no code z in it; not an optimize_subspace output")
    return tensors["z"]


def points_per_pass(device: torch.device) -> int:
    """How many codes a sweep evaluates in one pass. A GPU is far from busy with one point's examples. On a
    CPU the forward pass is already bound by matrix products (bench/: 67-84% of the measured peak with one
    point at a time), and vmap's batching over points only adds copies: one point at a time."""
    return 16 if device.type == "cuda" else 1


@torch.no_grad()
def predict_codes(model: Decoded, split: Split, codes: torch.Tensor, batch_size: int, device: torch.device,
                  points: int | None = None, bar: tqdm | None = None) -> np.ndarray:
    """Predictions (codes x examples) of the decoded model at each code; `bar` advances per code.

    With several `points` per pass, Decoded.logits_at evaluates that many codes at once over batches of
    `batch_size` examples sorted by length. With one, each code's tensors are written into the classifier's
    own parameters and it predicts as a trained model does (no functional_call per batch, the label names
    encoded once per code)."""
    points = points or points_per_pass(device)
    preds = np.empty((len(codes), len(split)), dtype=np.int64)
    if points == 1:
        params = dict(model.classifier.named_parameters())
        for i, z in enumerate(codes):
            for name, tensor in model.tensors(z.to(device)).items():
                params[name].copy_(tensor)
            preds[i] = predict(model.classifier, split, batch_size, device)
            if bar is not None:
                bar.update(1)
        return preds
    was_training = model.training
    model.eval()
    encoded = [(index, to_device(model, split, index, device)[0]) for index in batches(split, batch_size, None)]
    with autocast(device):
        for start in range(0, len(codes), points):
            chunk = codes[start : start + points]
            for index, enc in encoded:
                preds[start : start + len(chunk), index] = model.logits_at(chunk, **enc).argmax(-1).cpu().numpy()
            if bar is not None:
                bar.update(len(chunk))
    model.train(was_training)
    return preds


def optimize_subspace(*, space_path, det_name: str, backbone: dict, data: dict, task: dict, optimize_cfg: dict,
                      device: str, seed: int, base_dir, z_path, metrics_path, threads: int | None = None) -> None:
    """Train only the code z of one DET in the subspace on one task; keep the best one on validation."""
    started = time.perf_counter()
    space, task_data, device = _prepare(space_path, [det_name], backbone, task, data, base_dir, device, threads)
    z0 = torch.randn(space.subspace.dim, generator=torch.Generator().manual_seed(seed)) * optimize_cfg["init_std"]
    model = _decoded(space, det_name, backbone, task_data.labels, z0)
    splits = {name: Split.of(model, frame) for name, frame in task_data.splits.items()}
    tag = space.subspace.name
    desc = f"{tag}/{det_name}/{task['name']}"
    result = train(model, splits, optimize_cfg, optimize_cfg["lr"], seed, device, desc=desc)
    save_tensors(z_path, {"z": result.best["z"], "z_init": result.init["z"]},
                 {"space": tag, "det": det_name, "task": task["name"], "seed": seed})
    rows = stored_metrics(result, desc, started)
    frame = pd.DataFrame(rows).assign(space=tag, det=det_name, task=task["name"], seed=seed)
    save_table(metrics_path, frame[["space", "det", "task", "seed", "split", "metric", "value"]])


def transfer(*, space_path, z_paths: dict[str, str], metrics_paths: dict[str, str], backbone: dict, data: dict,
             task: dict, eval_batch_size: int, device: str, seed: int, base_dir, table_path,
             threads: int | None = None) -> None:
    """Every source DET's code decoded with every other target DET's projection, evaluated on the test split.
    A code decoded with its own DET is what optimize_subspace already evaluated: its test scores come from
    that job's metrics (metrics_paths), not from a second pass over the test split."""
    space, task_data, device = _prepare(space_path, list(z_paths), backbone, task, data, base_dir, device, threads)
    codes = {src: _load_code(path) for src, path in z_paths.items()}
    tag = space.subspace.name
    majority = int(np.bincount(task_data.splits["train"]["label"], minlength=len(task_data.labels)).argmax())
    rows, test = [], None
    for target in z_paths:
        own = load_table(metrics_paths[target])
        own = own[(own.split == "test") & own.metric.isin(SCORES)]
        if sorted(own.metric) != sorted(SCORES):
            raise ArtifactError(f"{metrics_paths[target]}: no test {', '.join(SCORES)}; not an optimize_subspace output")
        rows += [{"source": target, "target": target, "metric": m, "value": v} for m, v in zip(own.metric, own.value)]
        model = _decoded(space, target, backbone, task_data.labels).to(device)
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


def landscape(*, space_path, z_paths: dict[str, str], backbone: dict, data: dict, task: dict, settings: dict,
              eval_batch_size: int, device: str, seed: int, base_dir, table_path, solutions_path, plot_path,
              threads: int | None = None) -> None:
    """Every DET of the subspace evaluated on a square grid over the plane through the given DETs' solutions."""
    space, task_data, device = _prepare(space_path, list(z_paths), backbone, task, data, base_dir, device, threads)
    sub = space.subspace
    solutions = {det: _load_code(path) for det, path in z_paths.items()}
    origin, axes = plane(torch.stack(list(solutions.values())), sub.dim)
    coords = {det: ((z - origin) @ axes.T).tolist() for det, z in solutions.items()}
    a_values, b_values = square_grid(torch.tensor(list(coords.values())), settings["grid"], settings["margin"])
    test_frame = task_data.splits["test"].iloc[: settings["max_examples"]]
    tag = sub.name
    rows = []
    bar = tqdm(total=len(sub.dets) * len(a_values) * len(b_values), desc=f"landscape {tag}/{task['name']}",
               unit="point", dynamic_ncols=True, mininterval=2.0)
    grid = [(a, b) for a in a_values for b in b_values]
    codes = torch.stack([origin + a * axes[0] + b * axes[1] for a, b in grid])
    test = None
    for det in sub.dets:
        model = _decoded(space, det, backbone, task_data.labels).to(device)
        if test is None:  # one backbone, one tokenizer: encode once
            test = Split.of(model, test_frame)
        for (a, b), preds in zip(grid, predict_codes(model, test, codes, eval_batch_size, device, bar=bar)):
            for metric, value in scores(preds, test.labels, len(task_data.labels), 0).items():
                if metric != "majority_accuracy":
                    rows.append({"a": a, "b": b, "det": det, "metric": metric, "value": value})
    bar.close()
    frame = pd.DataFrame(rows).assign(space=tag, task=task["name"], seed=seed)
    frame = frame[["space", "task", "seed", "a", "b", "det", "metric", "value"]]
    sol = pd.DataFrame([{"space": tag, "task": task["name"], "seed": seed, "det": det, "a": c[0], "b": c[1]}
                        for det, c in coords.items()])
    save_table(table_path, frame)
    save_table(solutions_path, sol)
    plot_landscape(frame, sol, plot_path, title=f"{task['name']} in {tag}: test accuracy on the plane of "
                   f"{', '.join(solutions)}", threshold=settings["threshold"])
