"""BitFit: every bias term of the backbone becomes trainable; nothing is added."""
from __future__ import annotations

from torch import nn

from .base import DETError


def _biases(model: nn.Module):
    return [(n, p) for n, p in model.named_parameters() if n.endswith("bias")]


def attach(model: nn.Module, settings: dict, kind: str) -> nn.Module:
    biases = _biases(model)
    if not biases:
        raise DETError(f"DET bitfit: backbone {model.config.model_type!r} has no bias terms to tune")
    for _, p in biases:
        p.requires_grad_(True)
    return model


def expected_count(model: nn.Module, settings: dict, kind: str) -> int:
    return sum(p.numel() for _, p in _biases(model))
