"""What the stages that work in a subspace share (optimize_subspace, transfer, landscape): the subspace, the
task and the device of a job, each DET's model decoded from the subspace, and the codes earlier jobs found."""
from __future__ import annotations

from pathlib import Path

import torch

from ..decoded import Decoded
from ..heads import build_classifier
from ..io import ArtifactError, load_tensors
from ..models import job_device
from ..spacefile import SpaceFile, load_space
from ..subspace import SubspaceError
from ..tasks import TaskData, load_task


def prepare(space_path, det_configs: dict[str, dict], backbone: dict, task: dict, data: dict, base_dir,
            device: str, threads: int | None) -> tuple[SpaceFile, TaskData, torch.device]:
    """The job's device (first: a missing GPU fails at once), its subspace, checked against the DETs and the
    backbone as configured now, and its task's data."""
    device = job_device(device, threads)
    space = load_space(space_path)
    missing = [d for d in det_configs if d not in space.subspace.dets]
    if missing:
        raise SubspaceError(f"{space_path}: no DET {', '.join(missing)} in this subspace")
    if space.meta["backbone"] != backbone:
        raise SubspaceError(f"{space_path}: built from solutions on another backbone than the config's; rerun decompose")
    for det, now in det_configs.items():
        check_configured(space_path, det, now, space.meta["det_configs"][det], "this subspace was built from",
                         "rerun stack_deltas and decompose")
    return space, load_task(task, data, Path(base_dir)), device


def check_configured(path, det: str, now: dict, recorded: dict, recorded_as: str, rerun: str) -> None:
    """Refuse an artifact made with another config of the DET than the one configured now, naming both."""
    if now != recorded:
        raise SubspaceError(f"{path}: dets.{det} as configured now ({now}) is not the config {recorded_as} "
                            f"({recorded}); {rerun}")


def decoded_model(space: SpaceFile, det: str, backbone: dict, labels: list[str], z=None) -> Decoded:
    """The DET's model with its tensors decoded from the subspace. The DET's own initial values are replaced by
    the decoded ones: any init seed builds the same model."""
    classifier, _ = build_classifier(backbone, space.meta["det_configs"][det], labels, 0)
    return space.decoded(classifier, det, z)


def load_code(path) -> torch.Tensor:
    """The code z an optimize_subspace job found."""
    tensors, _ = load_tensors(path)
    if "z" not in tensors:
        raise ArtifactError(f"{path}: no code z in it; not an optimize_subspace output")
    return tensors["z"]
