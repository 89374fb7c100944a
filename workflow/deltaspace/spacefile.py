"""The decompose stages' artifact, projections.safetensors: a subspace and what a stage needs to build each
DET's model again (its layout, recorded config and the initial values the decoded deltas are added to)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .decoded import Decoded
from .delta import Layout
from .io import ArtifactError, load_tensors, save_tensors
from .subspace import Subspace, SubspaceError


@dataclass
class SpaceFile:
    """A decompose output: the subspace plus what a stage needs to build each DET's model again."""

    subspace: Subspace
    inits: dict[str, torch.Tensor]  # per DET: the initial values the decoded deltas are added to
    meta: dict  # method, dim, offset, dets, layouts, det_configs, backbone, rows, held_out, init_from, shared_init
    path: str = "the subspace"  # where it was read from, for messages

    def layout(self, det: str) -> Layout:
        self.subspace.check(det)
        return Layout.from_json(self.meta["layouts"][det])

    def decoded(self, classifier: nn.Module, det: str, z: torch.Tensor | None = None) -> Decoded:
        """The classifier (built with this DET's recorded config) with its DET tensors decoded from the subspace."""
        layout = self.layout(det)
        given = Layout.of_trainable(classifier)
        if given != layout:
            recorded = self.meta["det_configs"].get(det)
            raise SubspaceError(f"{self.path}: the model given for dets.{det} has {given.size} DET entries in "
                                f"{len(given.names)} tensors; this subspace records {layout.size} in "
                                f"{len(layout.names)}, from dets.{det} = {recorded}: build the model from that "
                                "config, or rerun stack_deltas and decompose with the current one")
        s = self.subspace
        return Decoded(classifier, layout, s.projections[det], s.offsets[det], self.inits[det], z)


def save_space(path, space: SpaceFile) -> None:
    s = space.subspace
    tensors = {"codes": s.codes, "singular_values": s.singular_values, "explained": s.explained}
    for det in s.dets:
        tensors |= {f"P/{det}": s.projections[det], f"b/{det}": s.offsets[det], f"init/{det}": space.inits[det]}
    save_tensors(path, tensors, space.meta | {"scales": s.scales, "offset": s.offset})


def load_space(path) -> SpaceFile:
    tensors, meta = load_tensors(path)
    missing = [k for k in ("method", "dim", "dets", "layouts", "det_configs", "backbone") if k not in meta]
    if missing:
        raise ArtifactError(f"{path}: no {', '.join(missing)} in the header; not a decompose output")
    dets = meta["dets"]
    subspace = Subspace(
        method=meta["method"],
        dim=int(meta["dim"]),
        projections={d: tensors[f"P/{d}"] for d in dets},
        offsets={d: tensors[f"b/{d}"] for d in dets},
        codes=tensors["codes"],
        singular_values=tensors["singular_values"],
        explained=tensors["explained"],
        scales=meta.get("scales", {}),
        offset=meta.get("offset", "mean"),  # files written before offsets existed were all centred
    )
    return SpaceFile(subspace, {d: tensors[f"init/{d}"] for d in dets}, meta, str(path))
