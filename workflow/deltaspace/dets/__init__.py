"""Delta-tuning methods (DETs). A DET is a named set of trainable tensors on a frozen backbone.

Each method is one small module with two functions:

    attach(model, settings, kind) -> nn.Module
        Add or unfreeze the method's tensors on the frozen `model` and return the module to call
        (the model itself, or a wrapper such as a peft model). Afterwards exactly the DET's tensors
        have requires_grad=True.
    expected_count(model, settings, kind) -> int
        The number of trainable entries the settings give on this (still bare) backbone.

`settings` is the DET's validated config entry; `kind` is "encoder", "causal" or "seq2seq".

METHODS is the registry: the one list of method names (the config schema's enum is tested against it).
This module imports no torch at the top, so that the config validator can read the registry cheaply.
"""
from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING

from .base import DETError

if TYPE_CHECKING:
    from torch import nn

METHODS: tuple[str, ...] = ("lora", "adapter", "prefix", "prompt", "bitfit", "finetune", "ia3", "apet")

__all__ = ["METHODS", "DETError", "attach", "expected_count", "method"]


def method(name: str) -> ModuleType:
    """The module of a method, imported on first use (peft alone takes seconds; a job needs one method)."""
    if name not in METHODS:
        raise DETError(f"unknown DET method {name!r} (known: {', '.join(METHODS)})")
    return importlib.import_module(f"{__name__}.{name}")


def attach(model: nn.Module, settings: dict, kind: str, seed: int) -> nn.Module:
    """Attach the DET with its initial values drawn from `seed` (the same for every task)."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return method(settings["method"]).attach(model, settings, kind)


def expected_count(model: nn.Module, settings: dict, kind: str) -> int:
    return method(settings["method"]).expected_count(model, settings, kind)
