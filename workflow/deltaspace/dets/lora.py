"""LoRA through peft: W x + (alpha / r) B A x on the target projections; A random, B zero."""
from __future__ import annotations

from peft import LoraConfig, get_peft_model
from torch import nn

from ._targets import LORA_TARGETS, match_linear, targets


def attach(model: nn.Module, settings: dict, kind: str) -> nn.Module:
    names = targets(settings, LORA_TARGETS, model.config.model_type)
    match_linear(model, names, "suffix")  # a clear error before peft's own
    config = LoraConfig(
        r=settings["r"],
        lora_alpha=settings["alpha"],
        lora_dropout=settings["dropout"],
        target_modules=names,
        bias="none",
        fan_in_fan_out=model.config.model_type == "gpt2",
    )
    return get_peft_model(model, config)


def expected_count(model: nn.Module, settings: dict, kind: str) -> int:
    names = targets(settings, LORA_TARGETS, model.config.model_type)
    return sum(settings["r"] * (out + inp) for out, inp in match_linear(model, names, "suffix").values())
