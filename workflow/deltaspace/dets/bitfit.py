"""BitFit: every bias term of the backbone becomes trainable; nothing is added.

Except on a text-to-text backbone without any bias term (T5): there every Linear of the encoder and decoder
(not the output head, whose bias would be a per-word prior) gets a zero-initialised bias vector, and those are
trained. The model starts exactly at the backbone, and BitFit keeps its meaning: one shift per output unit
of every projection.
"""
from __future__ import annotations

import torch
from torch import nn

from .base import DETError


def _biases(model: nn.Module):
    return [(n, p) for n, p in model.named_parameters() if n.endswith("bias")]


def _biasless(model: nn.Module) -> list[nn.Linear]:
    """seq2seq without biases: the Linear modules that get one (all but the output head)."""
    head = model.get_output_embeddings()
    return [m for m in model.modules() if isinstance(m, nn.Linear) and m.bias is None and m is not head]


def attach(model: nn.Module, settings: dict, kind: str) -> nn.Module:
    if kind == "seq2seq" and not _biases(model):
        for linear in _biasless(model):
            weight = linear.weight
            linear.bias = nn.Parameter(torch.zeros(linear.out_features, device=weight.device, dtype=weight.dtype))
    biases = _biases(model)
    if not biases:
        raise DETError(f"DET bitfit: backbone {model.config.model_type!r} has no bias terms to tune")
    for _, p in biases:
        p.requires_grad_(True)
    return model


def expected_count(model: nn.Module, settings: dict, kind: str) -> int:
    if kind == "seq2seq" and not _biases(model):
        return sum(linear.out_features for linear in _biasless(model))
    return sum(p.numel() for _, p in _biases(model))
