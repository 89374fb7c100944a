"""Houlsby adapters: h + up(act(down(h))) on the output of each target projection, weights only.

The adapter is a child module of the projection it follows and runs in a forward hook, so the
backbone's code is untouched and `torch.func.functional_call` sees its tensors like any other.
`down` starts as nn.Linear's usual init and `up` at zero, so the model starts exactly at the backbone.
"""
from __future__ import annotations

import torch
from torch import nn

from ._targets import ADAPTER_TARGETS, match_linear, targets

ACTIVATIONS = {"silu": nn.SiLU, "relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh}


class Adapter(nn.Module):
    def __init__(self, width: int, bottleneck: int, activation: str):
        super().__init__()
        self.down = nn.Linear(width, bottleneck, bias=False)
        self.act = ACTIVATIONS[activation]()
        self.up = nn.Linear(bottleneck, width, bias=False)
        nn.init.zeros_(self.up.weight)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.up(self.act(self.down(h)))


def _run_adapter(module: nn.Module, args, output: torch.Tensor) -> torch.Tensor:
    return module.adapter(output)


def attach(model: nn.Module, settings: dict, kind: str) -> nn.Module:
    patterns = targets(settings, ADAPTER_TARGETS, model.config.model_type)
    modules = dict(model.named_modules())
    for name, (out, _) in match_linear(model, patterns, "regex").items():
        target = modules[name]
        param = next(target.parameters())
        target.add_module("adapter", Adapter(out, settings["bottleneck"], settings["activation"]).to(param.device))
        target.register_forward_hook(_run_adapter)
    return model


def expected_count(model: nn.Module, settings: dict, kind: str) -> int:
    patterns = targets(settings, ADAPTER_TARGETS, model.config.model_type)
    return sum(2 * out * settings["bottleneck"] for out, _ in match_linear(model, patterns, "regex").values())
