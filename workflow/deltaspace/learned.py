"""Method `learned`: the subspace found the paper's way (its stage 1), beside the closed-form `svd`.

Per DET k a down-projection to an intrinsic vector and a bias-free up-projection back:

    I_k = W2 tanh(W1 x_k + c1) + c2          x_k: the DET's flat delta (trained minus initial values)
    theta_k(I) = init_k + b_k + U_k I         U_k: D_k x dim, no bias; b_k = 0 in the paper

Each step takes one seen solution (task, seed) of every DET, mixes their intrinsic vectors with random convex
weights, I = sum_k w_k I_k, decodes I into every DET and minimises

    sum_k [ task loss of the frozen backbone with theta_k(I) on a batch of that task
            + alpha * || x_k - b_k - U_k I_k ||_2 ]        (the distance, not squared)

The weights are broken off a stick in a random DET order (w = a, then b ~ U(0, 1 - a), ..., the last DET takes
the rest): with three DETs in a fixed order that is the paper's a ~ U(0, 1), b ~ U(0, 1 - a); the random order
favours no DET.

Offset (`offset`, as in `subspace.decompose`): `init` is the paper's, b = 0 (a bias-free up-projection: z = 0
decodes to the initial values); `mean` fixes b at each DET's mean solution (the rows' mean), never trained.

Starting point (`init`): `random` is the paper's, every weight of both projections drawn from N(0, INIT_STD^2)
(std 0.02) and the down-projection's biases zero; `svd` starts at the closed-form solution of the same stacks
with the same offset (U = P, b = its offset, the down-projection its least-squares encoder), so that the few
hundred steps a CPU affords refine a subspace instead of leaving a random one. The result is a Subspace like
svd's: decode, transfer and landscape run on either unchanged.

How far learning moves from its start is measured, not assumed: the history's `up_moved` is
||U_t - U_0||_F / ||U_0||_F and `down_moved` the same over all the down-projection's parameters (weights and
biases flattened together), U_0 and the rest taken at step 0 (after the init or the svd start).
"""
from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call
from tqdm.auto import tqdm
from transformers.optimization import Adafactor

from .delta import Layout
from .subspace import OFFSETS, Subspace, SubspaceError, decompose
from .train import Model, Split, autocast, to_device

INIT_STD = 0.02  # random start (the paper's): every projection weight ~ N(0, INIT_STD^2), biases zero
INIT_SCALE = 0.25  # svd start: tanh(INIT_SCALE * code) / INIT_SCALE stays close to the code for whitened codes


class Projections(nn.Module):
    """One DET's down-projection (delta -> intrinsic vector) and bias-free up-projection (vector -> delta).

    Initialised the paper's way: every weight of both projections ~ N(0, INIT_STD^2), the down-projection's
    biases zero, the offset b zero (drawn from `generator`, else from torch's global generator). The
    up-projection U (D x dim) is held as one parameter per DET tensor (its rows for that tensor), so that
    decoding a DET's tensors with gradients never forms a gradient of U's full size per tensor.
    """

    def __init__(self, layout: Layout, dim: int, generator: torch.Generator | None = None):
        super().__init__()
        self.layout = layout
        self.down = nn.Sequential(nn.Linear(layout.size, dim), nn.Tanh(), nn.Linear(dim, dim))
        with torch.no_grad():
            for linear in (self.down[0], self.down[2]):
                linear.weight.copy_(torch.randn(linear.weight.shape, generator=generator) * INIT_STD)
                linear.bias.zero_()
        weight = torch.randn(layout.size, dim, generator=generator) * INIT_STD
        self.up = nn.ParameterList([nn.Parameter(weight[span].clone()) for _, _, span in layout.spans()])
        self.register_buffer("offset", torch.zeros(layout.size))

    @property
    def weight(self) -> torch.Tensor:
        """U, D x dim."""
        return torch.cat(list(self.up))

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        """U code, the flat delta (without the offset)."""
        return torch.cat([piece @ code for piece in self.up])

    def tensors(self, base: torch.Tensor, code: torch.Tensor) -> dict[str, torch.Tensor]:
        """The DET's tensors base + b + U code, each from its own rows."""
        return {name: (base[span] + self.offset[span] + piece @ code).view(shape)
                for (name, shape, span), piece in zip(self.layout.spans(), self.up)}

    def start_at(self, projection: torch.Tensor, offset: torch.Tensor) -> None:
        """Start at a closed-form solution: up = projection, the down-projection its least-squares encoder."""
        p = projection.double()
        encoder = torch.linalg.solve(p.T @ p, p.T).float()  # dim x D
        dim = p.shape[1]
        with torch.no_grad():
            for (_, _, span), piece in zip(self.layout.spans(), self.up):
                piece.copy_(projection[span])
            self.offset.copy_(offset)
            self.down[0].weight.copy_(encoder * INIT_SCALE)
            self.down[0].bias.copy_(-(encoder @ offset) * INIT_SCALE)
            self.down[2].weight.copy_(torch.eye(dim) / INIT_SCALE)
            self.down[2].bias.zero_()

    def snapshot(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Copies of the up-projection's pieces and of the down-projection's parameters (the start to measure
        from)."""
        with torch.no_grad():
            return [p.detach().clone() for p in self.up], [p.detach().clone() for p in self.down.parameters()]

    def moved(self, start: tuple[list[torch.Tensor], list[torch.Tensor]]) -> tuple[float, float]:
        """How far both projections are from `start` (a snapshot), relative to its size: ||U - U_0||_F /
        ||U_0||_F, and the same over all the down-projection's parameters flattened together (nan for a zero
        start)."""
        def relative(now, then) -> float:
            with torch.no_grad():
                gap = math.sqrt(sum(float((a.double() - b.double()).square().sum()) for a, b in zip(now, then)))
                size = math.sqrt(sum(float(b.double().square().sum()) for b in then))
            return gap / size if size > 0 else float("nan")

        up, down = start
        return relative(list(self.up), up), relative(list(self.down.parameters()), down)


def convex_weights(count: int, generator: torch.Generator) -> torch.Tensor:
    """Random convex weights: stick-breaking (a ~ U(0, 1), b ~ U(0, 1 - a), ...) in a random order."""
    weights, left = torch.zeros(count), 1.0
    order = torch.randperm(count, generator=generator).tolist()
    for k in order[:-1]:
        weights[k] = left * float(torch.rand((), generator=generator))
        left -= float(weights[k])
    weights[order[-1]] = left
    return weights


def learn(*, deltas: dict[str, torch.Tensor], tasks: list[str], models: dict[str, dict[str, Model]],
          train_splits: dict[str, Split], inits: dict[str, torch.Tensor], layouts: dict[str, Layout], dim: int,
          settings: dict, device: torch.device, offset: str = "init") -> tuple[Subspace, pd.DataFrame]:
    """Learn the projections from the DETs' solutions (rows aligned; row i is a solution of tasks[i]).

    models[det][task]: the frozen classifier of that DET with that task's labels; train_splits[task]: its
    tokenised training split; offset: "init" (b = 0, the paper's) or "mean" (b = each DET's mean solution,
    fixed). Returns the subspace and the history, one row per DET every log_every steps: step, det,
    task_loss and distance (means over the steps since the last row), up_moved and down_moved (the relative
    Frobenius distance of U and of the down-projection's parameters from their values at step 0), seconds.
    """
    if offset not in OFFSETS:
        raise SubspaceError(f"learned: unknown offset {offset!r} (known: {', '.join(OFFSETS)})")
    dets = list(deltas)
    rows = {d.shape[0] for d in deltas.values()}
    if len(rows) != 1 or rows != {len(tasks)}:
        raise SubspaceError(f"learned: every stack must have one row per task entry ({len(tasks)}); got {rows}")
    if dim < 1:
        raise SubspaceError(f"learned: dim must be at least 1, got {dim}")
    torch.manual_seed(settings["seed"])  # the projections' random init and dropout
    generator = torch.Generator().manual_seed(settings["seed"])
    projections = nn.ModuleDict({det: Projections(layouts[det], dim) for det in dets})
    if settings["init"] == "svd":
        start = decompose(deltas, dim, "svd", offset)
        for det in dets:
            projections[det].start_at(start.projections[det], start.offsets[det])
    elif offset == "mean":
        with torch.no_grad():
            for det in dets:
                projections[det].offset.copy_(deltas[det].double().mean(0).float())
    projections.to(device)
    starts = {det: projections[det].snapshot() for det in dets}  # step 0, to measure how far learning moves
    x = {det: deltas[det].to(device) for det in dets}
    base = {det: inits[det].to(device) for det in dets}
    # Adafactor as in the paper's code, with a fixed lr (no relative step, no parameter scaling)
    optimizer = Adafactor(projections.parameters(), lr=settings["lr"], scale_parameter=False, relative_step=False,
                          warmup_init=False)
    for per_task in models.values():
        for model in per_task.values():
            model.to(device).train()

    history, running = [], {det: [] for det in dets}
    bar = tqdm(total=settings["steps"], desc=f"learned-d{dim}", unit="step", dynamic_ncols=True, mininterval=2.0)
    started = time.perf_counter()
    for step in range(1, settings["steps"] + 1):
        row = int(torch.randint(len(tasks), (), generator=generator))
        task, split = tasks[row], train_splits[tasks[row]]
        index = torch.randint(len(split), (settings["batch_size"],), generator=generator).numpy()
        codes = {det: projections[det].down(x[det][row]) for det in dets}
        weights = convex_weights(len(dets), generator)
        mixed = sum(w * codes[det] for w, det in zip(weights.tolist(), dets))
        total = 0.0
        for det in dets:
            proj, model = projections[det], models[det][task]
            enc, labels = to_device(model, split, index, device)
            with autocast(device):
                logits = functional_call(model, proj.tensors(base[det], mixed), (enc["input_ids"], enc["attention_mask"]))
            task_loss = F.cross_entropy(logits.float(), labels)
            distance = (x[det][row] - proj.offset - proj.decode(codes[det])).norm()
            total = total + task_loss + settings["alpha"] * distance
            running[det].append((task_loss.item(), distance.item()))
        value = total.item()
        if not math.isfinite(value):
            raise SubspaceError(f"learned: the loss is {value} at step {step}; lower subspace.learned.lr")
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        bar.update(1)
        bar.set_postfix(loss=f"{value:.3f}", refresh=False)
        if step % settings["log_every"] == 0 or step == settings["steps"]:
            for det in dets:
                losses = np.array(running[det])
                up_moved, down_moved = projections[det].moved(starts[det])
                history.append({"step": step, "det": det, "task_loss": float(losses[:, 0].mean()),
                                "distance": float(losses[:, 1].mean()), "up_moved": up_moved,
                                "down_moved": down_moved, "seconds": time.perf_counter() - started})
                running[det] = []
    bar.close()

    with torch.no_grad():
        codes = torch.stack([projections[det].down(x[det]) for det in dets]).mean(0).cpu()
    subspace = Subspace(
        method="learned",
        dim=dim,
        projections={det: projections[det].weight.detach().cpu() for det in dets},
        offsets={det: projections[det].offset.detach().cpu().clone() for det in dets},
        codes=codes,
        singular_values=torch.full((dim,), float("nan")),  # svd only
        explained=torch.full((dim,), float("nan")),
        offset=offset,
    )
    return subspace, pd.DataFrame(history)
