"""Stage landscape: every DET of the subspace on a square grid over the plane through two or three DETs' codes."""
from __future__ import annotations

import pandas as pd
import torch
from tqdm.auto import tqdm

from ..decoded import predict_codes
from ..io import load_table, save_table
from ..landscape import plane, square_grid
from ..plots import plot_landscape
from ..train import Split, scores
from .in_subspace import decoded_model, load_code, prepare


def landscape(*, space_path, z_paths: dict[str, str], det_configs: dict[str, dict], backbone: dict, data: dict,
              task: dict, settings: dict, eval_batch_size: int, device: str, seed: int, base_dir, table_path,
              solutions_path, plot_path, original_paths: dict[str, str] | None = None,
              threads: int | None = None) -> None:
    """Every DET of the subspace (det_configs: each one's config as now) evaluated on a square grid over the
    plane through the solutions of the DETs in z_paths. The plot outlines where each DET closes
    settings["threshold"] of its gap between zero-shot and its original-space run (original_paths: each DET's
    train_det metrics on this task and seed)."""
    space, task_data, device = prepare(space_path, det_configs, backbone, task, data, base_dir, device, threads)
    sub = space.subspace
    solutions = {det: load_code(path) for det, path in z_paths.items()}
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
        model = decoded_model(space, det, backbone, task_data.labels).to(device)
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
    references = {det: _zero_and_original(path) for det, path in (original_paths or {}).items()}
    plot_landscape(frame, sol, plot_path, title=f"{task['name']} in {tag}: test accuracy on the plane of "
                   f"{', '.join(solutions)}; outlined: {settings['threshold']:.0%} of the gap closed",
                   threshold=settings["threshold"], references=references)


def _zero_and_original(path) -> tuple[float, float]:
    """Test accuracy at the DET's initial values and of its original-space run, from its train_det metrics."""
    frame = load_table(path)
    test = frame[frame.split == "test"].set_index("metric").value
    return float(test["accuracy_at_init"]), float(test["accuracy"])
