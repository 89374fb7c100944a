"""Prompt tuning through peft: num_tokens soft embeddings prepended to the input embeddings.

init "vocab" starts each soft token at the embedding of a randomly drawn vocabulary token; "random" at
peft's random init.
"""
from __future__ import annotations

from peft import PromptTuningConfig, PromptTuningInit, TaskType, get_peft_model
from torch import nn


def attach(model: nn.Module, settings: dict, kind: str) -> nn.Module:
    config = PromptTuningConfig(
        task_type=TaskType.CAUSAL_LM if kind == "causal" else TaskType.FEATURE_EXTRACTION,
        num_virtual_tokens=settings["num_tokens"],
        prompt_tuning_init=PromptTuningInit.SAMPLE_VOCAB if settings["init"] == "vocab" else PromptTuningInit.RANDOM,
    )
    return get_peft_model(model, config)


def expected_count(model: nn.Module, settings: dict, kind: str) -> int:
    return settings["num_tokens"] * model.get_input_embeddings().embedding_dim
