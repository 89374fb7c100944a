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

Starting point (`init`): `random` is the paper's (PyTorch's default Linear init, b = 0); `svd` starts at the
closed-form solution of the same stacks (U = P, b = the DETs' mean solution, the down-projection its
least-squares encoder), so that the few hundred steps a CPU affords refine a subspace instead of leaving a
random one. The result is a Subspace like svd's: decode, transfer and landscape run on either unchanged.
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
from .subspace import Subspace, SubspaceError, decompose
from .train import Model, Split, autocast, to_device

INIT_SCALE = 0.25  # svd start: tanh(INIT_SCALE * code) / INIT_SCALE stays close to the code for whitened codes


class Projections(nn.Module):
    """One DET's down-projection (delta -> intrinsic vector) and bias-free up-projection (vector -> delta).

    The up-projection U (D x dim, PyTorch's Linear(dim, D) init) is held as one parameter per DET tensor (its
    rows for that tensor), so that decoding a DET's tensors with gradients never forms a gradient of U's full
    size per tensor.
    """

    def __init__(self, layout: Layout, dim: int):
        super().__init__()
        self.layout = layout
        self.down = nn.Sequential(nn.Linear(layout.size, dim), nn.Tanh(), nn.Linear(dim, dim))
        weight = nn.Linear(dim, layout.size, bias=False).weight.detach()
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
          settings: dict, device: torch.device) -> tuple[Subspace, pd.DataFrame]:
    """Learn the projections from the DETs' solutions (rows aligned; row i is a solution of tasks[i]).

    models[det][task]: the frozen classifier of that DET with that task's labels; train_splits[task]: its
    tokenised training split. Returns the subspace and the loss history (per DET, every log_every steps).
    """
    dets = list(deltas)
    rows = {d.shape[0] for d in deltas.values()}
    if len(rows) != 1 or rows != {len(tasks)}:
        raise SubspaceError(f"learned: every stack must have one row per task entry ({len(tasks)}); got {rows}")
    if dim < 1:
        raise SubspaceError(f"learned: dim must be at least 1, got {dim}")
    torch.manual_seed(settings["seed"])  # the projections' default init and dropout
    generator = torch.Generator().manual_seed(settings["seed"])
    projections = nn.ModuleDict({det: Projections(layouts[det], dim) for det in dets})
    if settings["init"] == "svd":
        start = decompose(deltas, dim, "svd")
        for det in dets:
            projections[det].start_at(start.projections[det], start.offsets[det])
    projections.to(device)
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
                history.append({"step": step, "det": det, "task_loss": float(losses[:, 0].mean()),
                                "distance": float(losses[:, 1].mean()), "seconds": time.perf_counter() - started})
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
    )
    return subspace, pd.DataFrame(history)
