"""Arbitrary parameters, after APET (Su et al. 2023): a fixed random subset of the backbone's weight entries,
trained directly.

The entries are drawn from the DET's own `seed` (never from the task or the training seed), uniformly among
the entries of the target weight matrices (by default every attention and feed-forward projection): every
solution of the DET lives on the same coordinates, so solutions stack. Each weight holding drawn entries gets
a parametrization (torch.nn.utils.parametrize) whose value is the frozen weight plus a vector `delta` of its
entries' changes, scattered into place. The deltas, started at zero (the model starts at the backbone), are
the DET's tensors: plain parameters, so Layout.of_trainable, the flat vectors and functional_call (the
subspace stages' decoded tensors) work as for any other DET. The price: each target weight is computed afresh
on every access, and training keeps that copy for the backward pass (fine-tuning's order of memory, not LoRA's).

`budget` is the number of entries; null takes the trainable count of another DET of the config (the config
validator copies that DET's settings into `budget_like_settings`; by default the config's lora DET).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize

from ._targets import APET_TARGETS, match_linear, targets
from .base import DETError


class SparseDelta(nn.Module):
    """weight + delta at the flat positions `index` (sorted, distinct) of the weight."""

    def __init__(self, index: torch.Tensor, weight: torch.Tensor):
        super().__init__()
        self.register_buffer("index", index.to(weight.device), persistent=False)
        self.delta = nn.Parameter(torch.zeros(len(index), dtype=weight.dtype, device=weight.device))

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight.flatten().index_add(0, self.index, self.delta.to(weight.dtype)).view_as(weight)


def draw(total: int, budget: int, seed: int) -> torch.Tensor:
    """`budget` distinct positions of range(total), sorted; the same for the same (total, budget, seed).

    A permutation costs memory in proportion to `total` (billions of entries on a large backbone); when the
    budget is under half of it, the first `budget` distinct values of a stream of uniform draws are a uniform
    subset too, at a cost in proportion to the budget.
    """
    generator = torch.Generator().manual_seed(seed)
    if 2 * budget >= total:
        return torch.randperm(total, generator=generator)[:budget].sort().values
    chosen = torch.empty(0, dtype=torch.long)
    while len(chosen) < budget:
        stream = torch.cat([chosen, torch.randint(total, (budget,), generator=generator)])
        values, inverse = torch.unique(stream, return_inverse=True)
        first = torch.full((len(values),), len(stream)).scatter_reduce(0, inverse, torch.arange(len(stream)), "amin")
        chosen = values[first.argsort()]  # in order of first appearance
    return chosen[:budget].sort().values


def _weights(model: nn.Module, settings: dict) -> dict[str, int]:
    """name -> entries of each target weight, in module order."""
    found = match_linear(model, targets(settings, APET_TARGETS, model.config.model_type), "regex")
    return {name: out * inp for name, (out, inp) in found.items()}


def budget(model: nn.Module, settings: dict, kind: str) -> int:
    """The number of entries: `budget`, or the count of the DET whose settings the validator filled in."""
    if settings.get("budget") is not None:
        return settings["budget"]
    like = settings.get("budget_like_settings")
    if not like:
        raise DETError(f"dets.{settings['method']}.budget: null, and no DET to take the count from (the config "
                       "validator fills budget_like_settings from budget_like or the config's lora DET); "
                       "set a number of weight entries")
    from . import expected_count

    return expected_count(model, like, kind)


def entries(model: nn.Module, settings: dict, kind: str) -> dict[str, torch.Tensor]:
    """name -> the drawn flat positions in that module's weight (modules without any left out)."""
    sizes = _weights(model, settings)
    total, wanted = sum(sizes.values()), budget(model, settings, kind)
    if wanted > total:
        raise DETError(f"dets.{settings['method']}.budget: {wanted} entries, but the {len(sizes)} target weights "
                       f"hold only {total}")
    chosen = draw(total, wanted, settings["seed"])
    out, start = {}, 0
    for name, size in sizes.items():
        lo, hi = torch.searchsorted(chosen, torch.tensor([start, start + size]))
        if hi > lo:
            out[name] = chosen[lo:hi] - start
        start += size
    return out


def attach(model: nn.Module, settings: dict, kind: str) -> nn.Module:
    modules = dict(model.named_modules())
    for name, index in entries(model, settings, kind).items():
        target = modules[name]
        parametrize.register_parametrization(target, "weight", SparseDelta(index, target.weight))
    return model


def expected_count(model: nn.Module, settings: dict, kind: str) -> int:
    return budget(model, settings, kind)
