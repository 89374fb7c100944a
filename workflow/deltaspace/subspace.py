"""One low-dimensional subspace shared by several DETs: the algebra (decompose, encode, decode).

The closed-form method `svd` takes, per DET, a stack of solutions (rows x D_det, flat deltas: trained minus
initial values) whose rows are the same (task, seed) runs in the same order. Where a code starts (`offset`):

- `init` (the paper's): no offset, b = 0, so z = 0 decodes to the DET's initial values (zero-shot) and a
  code has to travel to a solution; the stacks are decomposed as they are (uncentred).
- `mean`: b = the DET's mean solution, so z = 0 is the mean of the sources; the stacks are centred first.

Each DET's stack (centred or not) is scaled to unit Frobenius norm; the scaled stacks are concatenated side
by side and their truncated SVD is taken through the rows x rows Gram matrix, so the cost grows with
rows^2 * D and never needs a D x D matrix. With U the top `dim` left singular vectors:

    codes  Z   = sqrt(rows) * U                 (rows x dim; every coordinate has mean square 1)
    per DET P  = C^T U / sqrt(rows)             (D x dim; C the DET's stack minus b, unscaled)
    decode(z)  = b + P z                        (Z P^T = U U^T C: the rank-dim reconstruction)

A code z therefore means the same point for every DET: decoding one z with different DETs' projections is
cross-DET transfer.

The control `random` (`random_like`) has the same dimension, offset and per-DET scale as a found subspace,
but orthonormal Gaussian directions: what any subspace of that size offers.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

from .names import SpaceName

METHODS = ("svd",)
OFFSETS = ("init", "mean")  # where z = 0 decodes to: the initial values, or the mean source solution
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
    scales: dict[str, float] = field(default_factory=dict)  # Frobenius norm of each DET's stack minus its offset
    offset: str = "init"  # where z = 0 decodes to (OFFSETS)

    @property
    def dets(self) -> list[str]:
        return list(self.projections)

    @property
    def name(self) -> str:
        """How the workflow names it: results/subspace/{name}/."""
        return str(SpaceName(self.method, self.dim, self.offset))

    def check(self, det: str) -> None:
        """Fail with the DETs it has when `det` is not one of them."""
        if det not in self.projections:
            raise SubspaceError(f"no DET {det!r} in this subspace (it has {', '.join(self.dets)})")

    def decode(self, det: str, z: torch.Tensor) -> torch.Tensor:
        """The DET's flat delta b + P z for a code z of shape (dim,), or (n, dim) for n codes."""
        self.check(det)
        if z.shape[-1] != self.dim:
            raise SubspaceError(f"a code has {self.dim} entries in this subspace; got shape {tuple(z.shape)}")
        p = self.projections[det]
        return self.offsets[det] + z.to(p.dtype) @ p.T

    def encode(self, det: str, delta: torch.Tensor) -> torch.Tensor:
        """The least-squares code of a flat delta (D,) or deltas (n, D) of one DET."""
        self.check(det)
        p = self.projections[det].double()
        if delta.shape[-1] != p.shape[0]:
            raise SubspaceError(f"{det}: a delta has {p.shape[0]} entries; got shape {tuple(delta.shape)}")
        rhs = (delta.double() - self.offsets[det].double()) @ p
        return torch.linalg.solve(p.T @ p, rhs.unsqueeze(-1)).squeeze(-1).to(torch.float32)


def _stack_stats(stack: torch.Tensor, centre: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The offset (column mean, or zeros) and the Gram matrix of the stack minus it (both float64), read in
    column chunks."""
    rows, width = stack.shape
    offset = torch.zeros(width, dtype=torch.float64)
    gram = torch.zeros(rows, rows, dtype=torch.float64)
    for start in range(0, width, _CHUNK):
        block = stack[:, start : start + _CHUNK].double()
        if centre:
            offset[start : start + _CHUNK] = block.mean(0)
            block = block - offset[start : start + _CHUNK]
        gram += block @ block.T
    return offset, gram


def decompose(stacks: Mapping[str, torch.Tensor], dim: int, method: str = "svd", offset: str = "init") -> Subspace:
    """Jointly decompose the DETs' solution stacks (each rows x D_det, rows aligned) into a dim-subspace whose
    z = 0 decodes to the initial values (offset "init") or to the mean solution ("mean")."""
    if method == "learned":
        raise SubspaceError("method 'learned' trains with the backbone and the tasks' data: call "
                            "deltaspace.learned.learn, or run the workflow's decompose_learned rule")
    if method not in METHODS:
        raise SubspaceError(f"unknown decomposition method {method!r} (known: {', '.join(METHODS)}, learned)")
    if offset not in OFFSETS:
        raise SubspaceError(f"unknown offset {offset!r} (known: {', '.join(OFFSETS)})")
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
    centre = offset == "mean"
    most = n - 1 if centre else n
    if not 1 <= dim <= most:
        around = " around their mean" if centre else ""
        raise SubspaceError(f"dim {dim}: {n} solutions per DET span at most {most} directions{around}; "
                            f"use 1 <= dim <= {most} or add tasks or seeds")
    means, grams, scales = {}, {}, {}
    for det, stack in stacks.items():
        means[det], gram = _stack_stats(stack, centre)
        total = float(gram.trace())
        if not math.isfinite(total) or total <= 0.0:
            raise SubspaceError(f"{det}: its {n} solutions are all equal (or not finite): nothing to decompose")
        grams[det], scales[det] = gram / total, math.sqrt(total)
    joint = sum(grams.values())
    values, vectors = torch.linalg.eigh(joint)  # ascending
    values, vectors = values.flip(0).clamp(min=0.0), vectors.flip(1)
    if values[dim - 1] <= 1e-10 * values[0]:
        rank = int((values > 1e-10 * values[0]).sum())
        around = " around their mean" if centre else ""
        raise SubspaceError(f"dim {dim}: the solutions span only {rank} directions{around}")
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
        offset=offset,
    )


def random_like(found: Subspace, stacks: Mapping[str, torch.Tensor], seed: int) -> Subspace:
    """The control of a found subspace: per DET `dim` orthonormal Gaussian directions (seeded), each scaled to
    the norm of the found projection's column in its place, and the same offset. Its codes are the rows' least-
    squares codes (stacks: the solutions the found one was built from), averaged over the DETs."""
    generator = torch.Generator().manual_seed(seed)
    projections = {}
    for det, p in found.projections.items():
        q, _ = torch.linalg.qr(torch.randn(p.shape[0], found.dim, generator=generator, dtype=torch.float64))
        projections[det] = (q * p.double().norm(dim=0)).float()
    nan = torch.full((found.dim,), float("nan"))
    control = Subspace(method="random", dim=found.dim, projections=projections,
                       offsets={det: b.clone() for det, b in found.offsets.items()}, codes=found.codes,
                       singular_values=nan, explained=nan.clone(), scales=dict(found.scales), offset=found.offset)
    control.codes = torch.stack([control.encode(det, stacks[det]) for det in found.dets]).mean(0)
    return control
