"""Stage export: a trained DET solution, or a code optimised in a subspace decoded for its DET, written as a
folder that peft (LoRA, prompt tuning, IA3) or deltaspace.export.load (every DET) loads."""
from __future__ import annotations

from pathlib import Path

from ..export import export_code, export_delta
from ..spacefile import load_space
from ..tasks import load_task
from .in_subspace import load_code


def export_det(*, delta_path, folder) -> None:
    """The kept tensors of one train_det job (its delta.safetensors) as an export folder."""
    export_delta(delta_path, folder)


def export_optimized(*, space_path, z_path, det_name: str, task: dict, data: dict, seed: int, base_dir,
                     folder) -> None:
    """The code one optimize_subspace job found, decoded with its DET's projection, as an export folder; the
    task's labels come from its data (the code's file does not record them)."""
    labels = load_task(task, data, Path(base_dir)).labels
    export_code(load_space(space_path), det_name, load_code(z_path), labels, folder,
                {"task": task["name"], "seed": seed, "z_path": str(z_path)})
