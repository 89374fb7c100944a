"""One low-dimensional subspace shared by several DETs, and classifiers whose DET tensors live in it.

The closed-form method `svd` takes, per DET, a stack of solutions (rows x D_det, flat deltas: trained minus
initial values) whose rows are the same (task, seed) runs in the same order. Each DET's stack is centred on
its mean (the offset b) and scaled so that its centred stack has unit Frobenius norm; the scaled stacks are
concatenated side by side and their truncated SVD is taken through the rows x rows Gram matrix, so the cost
grows with rows^2 * D and never needs a D x D matrix. With U the top `dim` left singular vectors:

    codes  Z   = sqrt(rows) * U                 (rows x dim; every coordinate has mean 0, variance 1)
    per DET P  = C^T U / sqrt(rows)             (D x dim; C the DET's centred, unscaled stack)
    decode(z)  = b + P z                        (Z P^T = U U^T C: the rank-dim reconstruction)

A code z therefore means the same point for every DET: decoding one z with different DETs' projections is
cross-DET transfer.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import pandas as pd
import torch
from torch import nn
from torch.func import functional_call

from .delta import Layout
from .io import ArtifactError, load_table, load_tensors, save_table, save_tensors

METHODS = ("svd",)
_CHUNK = 1 << 20  # columns per step when a stack is read in float64 (bounded memory for millions of entries)


class SubspaceError(ValueError):
    """Solutions cannot be decomposed as asked, or a code does not fit the subspace."""


@dataclass
class Subspace:
    """Per DET an up-projection P (D x dim) and offset b (D,); one code per row of the stacks."""

    method: str
    dim: int
    projections: dict[str, torch.Tensor]
    offsets: dict[str, torch.Tensor]
    codes: torch.Tensor  # rows x dim
    singular_values: torch.Tensor  # dim, of the scaled, concatenated, centred stacks
    explained: torch.Tensor  # dim, share of the total (scaled) variance per direction
    scales: dict[str, float] = field(default_factory=dict)  # Frobenius norm of each DET's centred stack

    @property
    def dets(self) -> list[str]:
        return list(self.projections)

    @property
    def name(self) -> str:
        """How the workflow names it: results/subspace/{method}-d{dim}/."""
        return f"{self.method}-d{self.dim}"

    def _check(self, det: str) -> None:
        if det not in self.projections:
            raise SubspaceError(f"no DET {det!r} in this subspace (it has {', '.join(self.dets)})")

    def decode(self, det: str, z: torch.Tensor) -> torch.Tensor:
        """The DET's flat delta b + P z for a code z of shape (dim,), or (n, dim) for n codes."""
        self._check(det)
        if z.shape[-1] != self.dim:
            raise SubspaceError(f"a code has {self.dim} entries in this subspace; got shape {tuple(z.shape)}")
        p = self.projections[det]
        return self.offsets[det] + z.to(p.dtype) @ p.T

    def encode(self, det: str, delta: torch.Tensor) -> torch.Tensor:
        """The least-squares code of a flat delta (D,) or deltas (n, D) of one DET."""
        self._check(det)
        p = self.projections[det].double()
        if delta.shape[-1] != p.shape[0]:
            raise SubspaceError(f"{det}: a delta has {p.shape[0]} entries; got shape {tuple(delta.shape)}")
        rhs = (delta.double() - self.offsets[det].double()) @ p
        return torch.linalg.solve(p.T @ p, rhs.unsqueeze(-1)).squeeze(-1).to(torch.float32)


def _stack_stats(stack: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Column mean (float64) and Gram matrix of the centred stack (float64), read in column chunks."""
    rows, width = stack.shape
    mean = torch.empty(width, dtype=torch.float64)
    gram = torch.zeros(rows, rows, dtype=torch.float64)
    for start in range(0, width, _CHUNK):
        block = stack[:, start : start + _CHUNK].double()
        mean[start : start + _CHUNK] = block.mean(0)
        block = block - mean[start : start + _CHUNK]
        gram += block @ block.T
    return mean, gram


def decompose(stacks: Mapping[str, torch.Tensor], dim: int, method: str = "svd") -> Subspace:
    """Jointly decompose the DETs' solution stacks (each rows x D_det, rows aligned) into a dim-subspace."""
    if method == "learned":
        raise SubspaceError("method 'learned' trains with the backbone and the tasks' data: call "
                            "deltaspace.learned.learn, or run the workflow's decompose_learned rule")
    if method not in METHODS:
        raise SubspaceError(f"unknown decomposition method {method!r} (known: {', '.join(METHODS)}, learned)")
    if not stacks:
        raise SubspaceError("no stacks to decompose")
    sizes = {det: tuple(s.shape) for det, s in stacks.items()}
    bad = {det: shape for det, shape in sizes.items() if len(shape) != 2}
    if bad:
        raise SubspaceError(f"every stack must be rows x entries; got shapes {bad}")
    rows = {shape[0] for shape in sizes.values()}
    if len(rows) != 1:
        raise SubspaceError(f"the stacks must have the same rows in the same order; row counts differ: {sizes}")
    (n,) = rows
    if not 1 <= dim <= n - 1:
        raise SubspaceError(
            f"dim {dim}: {n} solutions per DET span at most {n - 1} directions around their mean; "
            f"use 1 <= dim <= {n - 1} or add tasks or seeds"
        )
    means, grams, scales = {}, {}, {}
    for det, stack in stacks.items():
        means[det], gram = _stack_stats(stack)
        total = float(gram.trace())
        if not math.isfinite(total) or total <= 0.0:
            raise SubspaceError(f"{det}: its {n} solutions are all equal (or not finite): nothing to decompose")
        grams[det], scales[det] = gram / total, math.sqrt(total)
    joint = sum(grams.values())
    values, vectors = torch.linalg.eigh(joint)  # ascending
    values, vectors = values.flip(0).clamp(min=0.0), vectors.flip(1)
    if values[dim - 1] <= 1e-10 * values[0]:
        rank = int((values > 1e-10 * values[0]).sum())
        raise SubspaceError(f"dim {dim}: the solutions span only {rank} directions around their mean")
    u = vectors[:, :dim]
    u = u * torch.where(u[u.abs().argmax(0), torch.arange(dim)] < 0, -1.0, 1.0)  # deterministic signs
    projections = {}
    for det, stack in stacks.items():
        p = torch.empty(stack.shape[1], dim, dtype=torch.float32)
        for start in range(0, stack.shape[1], _CHUNK):
            block = stack[:, start : start + _CHUNK].double() - means[det][start : start + _CHUNK]
            p[start : start + _CHUNK] = (block.T @ u / math.sqrt(n)).float()
        projections[det] = p
    return Subspace(
        method=method,
        dim=dim,
        projections=projections,
        offsets={det: m.float() for det, m in means.items()},
        codes=(u * math.sqrt(n)).float(),
        singular_values=values[:dim].sqrt().float(),
        explained=(values[:dim] / values.sum()).float(),
        scales=scales,
    )


def spans(layout: Layout) -> list[tuple[str, tuple[int, ...], slice]]:
    """(name, shape, where in the flat vector) of each of a DET's tensors, in layout order."""
    return [(n, s, slice(o, o + k)) for n, s, o, k in zip(layout.names, layout.shapes, layout.offsets, layout.numels)]


class _LabelNames(nn.Module):
    """Calls the classifier's label_embeddings() as a forward, so that functional_call can reach it."""

    def __init__(self, classifier: nn.Module):
        super().__init__()
        self.classifier = classifier

    def forward(self) -> torch.Tensor:
        return self.classifier.label_embeddings()


class Decoded(nn.Module):
    """A classifier whose DET tensors are theta = init + b + P z; the code z is its only trainable tensor.

    The frozen classifier is called with torch.func.functional_call and the decoded tensors: no copy of the
    model is made, and gradients of the loss reach z. It offers what deltaspace.train needs from a
    Classifier (labels, kind, encode, collate, label_embeddings), so the same training loop optimises z.
    """

    def __init__(self, classifier: nn.Module, layout: Layout, projection: torch.Tensor, offset: torch.Tensor,
                 init: torch.Tensor, z: torch.Tensor | None = None):
        super().__init__()
        if projection.shape[0] != layout.size or offset.shape != (layout.size,) or init.shape != (layout.size,):
            raise SubspaceError(f"projection {tuple(projection.shape)}, offset {tuple(offset.shape)} and init "
                                f"{tuple(init.shape)} do not fit the DET's {layout.size} entries")
        classifier.requires_grad_(False)
        self.classifier = classifier
        self._labels = [_LabelNames(classifier)]  # a list: not a second registered copy of the classifier
        self.layout = layout
        self.register_buffer("projection", projection.float())
        self.register_buffer("base", (init + offset).float())
        dim = projection.shape[1]
        self.z = nn.Parameter(torch.zeros(dim) if z is None else z.detach().clone().float().reshape(dim))
        self.labels, self.kind = classifier.labels, classifier.kind

    def encode(self, *args, **kwargs):
        return self.classifier.encode(*args, **kwargs)

    def collate(self, *args, **kwargs):
        return self.classifier.collate(*args, **kwargs)

    def set_code(self, z: torch.Tensor) -> None:
        with torch.no_grad():
            self.z.copy_(z.reshape(self.z.shape))

    def tensors(self, z: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The DET's tensors at code z (default: the current one) in full precision, each decoded from its own
        rows of P and b: the backward pass then only ever forms dim-sized pieces of the gradient of z, never a
        vector of the DET's full size per tensor (which made full fine-tuning 20x slower than the DET itself)."""
        z = self.z if z is None else z
        with torch.autocast(self.base.device.type, enabled=False):
            return {name: (self.base[span] + self.projection[span] @ z).view(shape)
                    for name, shape, span in spans(self.layout)}

    def label_embeddings(self, z: torch.Tensor | None = None) -> torch.Tensor:
        names = {f"classifier.{name}": t for name, t in self.tensors(z).items()}
        return functional_call(self._labels[0], names, ())

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                label_embeddings: torch.Tensor | None = None) -> torch.Tensor:
        return functional_call(self.classifier, self.tensors(), (input_ids, attention_mask),
                               {"label_embeddings": label_embeddings})

    def logits_at(self, codes: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Logits (points, batch, labels) of one batch of examples at many codes (points x dim) in one pass:
        torch.func.vmap over the code, so the frozen weights are applied to every point's activations at once
        (one large matrix product per layer in place of one per point)."""
        def at(z):
            labels = self.label_embeddings(z) if self.kind == "encoder" else None
            return functional_call(self.classifier, self.tensors(z), (input_ids, attention_mask),
                                   {"label_embeddings": labels})

        return torch.func.vmap(at, randomness="different")(codes.to(self.base.device, torch.float32))


# -- the decompose stage and its artifact -----------------------------------------------------------------
@dataclass
class SpaceFile:
    """A decompose output: the subspace plus what a stage needs to build each DET's model again."""

    subspace: Subspace
    inits: dict[str, torch.Tensor]  # per DET: the initial values the decoded deltas are added to
    meta: dict  # method, dim, dets, layouts, det_configs, backbone, rows, held_out, init_from, shared_init
    path: str = "the subspace"  # where it was read from, for messages

    def layout(self, det: str) -> Layout:
        self.subspace._check(det)
        return Layout.from_json(self.meta["layouts"][det])

    def decoded(self, classifier: nn.Module, det: str, z: torch.Tensor | None = None) -> Decoded:
        """The classifier (built with this DET's config) with its DET tensors decoded from the subspace."""
        layout = self.layout(det)
        if Layout.of_trainable(classifier) != layout:
            recorded = self.meta["det_configs"].get(det)
            raise SubspaceError(f"{self.path}: dets.{det} as configured now does not fit the DET this subspace was "
                                f"built from ({recorded}); rerun decompose on stacks of the current config")
        s = self.subspace
        return Decoded(classifier, layout, s.projections[det], s.offsets[det], self.inits[det], z)


def save_space(path, space: SpaceFile) -> None:
    s = space.subspace
    tensors = {"codes": s.codes, "singular_values": s.singular_values, "explained": s.explained}
    for det in s.dets:
        tensors |= {f"P/{det}": s.projections[det], f"b/{det}": s.offsets[det], f"init/{det}": space.inits[det]}
    save_tensors(path, tensors, space.meta | {"scales": s.scales})


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
    )
    return SpaceFile(subspace, {d: tensors[f"init/{d}"] for d in dets}, meta, str(path))


def decompose_stacks(*, method: str, dim: int, held_out: list[str], stacked: dict[str, str], indexes: dict[str, str],
                     projections_path, codes_path, reconstruction_path, learning: dict | None = None) -> None:
    """Stage decompose: the seen rows of every DET's stack, aligned by (task, seed), jointly decomposed.

    Method `learned` also needs `learning`, the keywords of deltaspace.learned.learn_stage other than the
    stacks: data, task_configs (name -> task config), settings (subspace.learned), device, threads,
    base_dir and history_path (its loss curve); the backbone is the one the stacks record.
    """
    data, frames, metas = {}, {}, {}
    for det, path in stacked.items():
        tensors, metas[det] = load_tensors(path)
        if "delta" not in tensors or "layout" not in metas[det]:
            raise ArtifactError(f"{path}: not a stack_deltas output")
        data[det], frames[det] = tensors, load_table(indexes[det])
        if len(frames[det]) != tensors["delta"].shape[0]:
            raise ArtifactError(f"{indexes[det]}: {len(frames[det])} rows, but its stack has {tensors['delta'].shape[0]}")
    first = next(iter(stacked))
    key = ["task", "seed"]
    order = frames[first][key].sort_values(key, kind="stable")
    for det, frame in frames.items():
        if sorted(map(tuple, frame[key].values.tolist())) != sorted(map(tuple, order.values.tolist())):
            raise ArtifactError(f"{indexes[det]}: its (task, seed) rows differ from those of {indexes[first]}")
        if metas[det]["backbone"] != metas[first]["backbone"]:
            raise ArtifactError(f"{stacked[det]}: trained on another backbone than {stacked[first]}")
    # Every DET's rows in one order, (task, seed) sorted; the seen ones build the subspace.
    deltas, initial = {}, {}
    for det, frame in frames.items():
        where = {row: i for i, row in enumerate(frame[key].itertuples(index=False, name=None))}
        index = [where[row] for row in order.itertuples(index=False, name=None)]
        deltas[det], initial[det] = data[det]["delta"][index], data[det]["init"][index]
    is_seen = ~order.task.isin(held_out).to_numpy()
    seen = order[is_seen]
    if seen.empty:
        raise SubspaceError(f"every task is held out ({', '.join(held_out)}): no solutions build the subspace")
    mask = torch.as_tensor(is_seen)
    # Decoded deltas are added to one set of initial values: those of the first row of the smallest seed
    # (with train.init_seed set, every row has the same ones).
    first_row = int(seen.seed.to_numpy().argmin())
    inits = {det: init[mask][first_row] for det, init in initial.items()}
    shared = all(bool((init[mask] == inits[det]).all()) for det, init in initial.items())
    seen_deltas = {det: d[mask] for det, d in deltas.items()}
    if method == "learned":
        if learning is None:
            raise SubspaceError("method 'learned' needs the backbone, data and settings (learning=...)")
        from .learned import learn_stage  # transformers and the backbone: only this method needs them

        subspace = learn_stage(deltas=seen_deltas, tasks=seen.task.tolist(), inits=inits, dim=dim,
                               layouts={det: Layout.from_json(m["layout"]) for det, m in metas.items()},
                               det_configs={det: m["det_config"] for det, m in metas.items()},
                               backbone=metas[first]["backbone"], **learning)
    else:
        subspace = decompose(seen_deltas, dim, method)
    reference = seen.iloc[first_row]
    meta = {
        "method": method,
        "dim": dim,
        "dets": list(stacked),
        "layouts": {det: metas[det]["layout"] for det in stacked},
        "det_configs": {det: metas[det]["det_config"] for det in stacked},
        "backbone": metas[first]["backbone"],
        "rows": [{"task": t, "seed": int(s)} for t, s in seen[key].itertuples(index=False)],
        "held_out": list(held_out),
        "init_from": {"task": reference.task, "seed": int(reference.seed)},
        "shared_init": shared,
    }
    space = subspace.name
    codes = pd.DataFrame(subspace.codes.numpy(), columns=[f"z{i}" for i in range(dim)])
    codes.insert(0, "seed", seen.seed.to_numpy())
    codes.insert(0, "task", seen.task.to_numpy())
    codes.insert(0, "space", space)

    errors = []
    for det, x in deltas.items():
        z = subspace.encode(det, x)  # held-out rows: their own least-squares codes
        z[mask] = subspace.codes  # seen rows: the joint code of the decomposition
        residual = (x - subspace.decode(det, z)).norm(dim=1)
        errors += [
            {"space": space, "det": det, "task": t, "seed": int(s), "seen": bool(v),
             "relative_error": float(r / max(n, 1e-30)), "unexplained": float((r / max(c, 1e-30)) ** 2)}
            for (t, s), v, r, n, c in zip(order[key].itertuples(index=False), is_seen, residual, x.norm(dim=1),
                                          (x - subspace.offsets[det]).norm(dim=1))
        ]
    save_space(projections_path, SpaceFile(subspace, inits, meta))
    save_table(codes_path, codes)
    save_table(reconstruction_path, pd.DataFrame(errors))
