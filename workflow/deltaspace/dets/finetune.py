"""Full fine-tuning as one more DET: every weight of the backbone is trainable, nothing is added.

Its delta is the whole backbone (22.6M entries on MiniLM): stack_deltas and the `svd` decomposition handle
that size through the rows x rows Gram matrix, so fine-tuning solutions can be decoded from the shared
subspace and transferred to and from the other DETs like any other DET.
"""
from __future__ import annotations

from torch import nn


def attach(model: nn.Module, settings: dict, kind: str) -> nn.Module:
    model.requires_grad_(True)
    return model


def expected_count(model: nn.Module, settings: dict, kind: str) -> int:
    return sum(p.numel() for p in model.parameters())
