"""Prompt tuning through peft: num_tokens soft embeddings prepended to the input embeddings.

init "vocab" starts each soft token at the embedding of a randomly drawn vocabulary token; "random" at
peft's random init.

On a text-to-text backbone (kind seq2seq) the soft tokens are prepended to the encoder's input by our own
forward pre-hook on the encoder, and live in `encoder.deltaspace_prompt`: peft prepends them in its wrapper's
forward of the whole model, which the seq2seq head does not call (it runs the encoder once and then the
decoder on every label). The inits are the same as peft's.
"""
from __future__ import annotations

import torch
from peft import PromptTuningConfig, PromptTuningInit, TaskType, get_peft_model
from torch import nn

IMPL = "deltaspace_prompt"  # the submodule of the encoder that holds the soft tokens


class EncoderPrompt(nn.Module):
    def __init__(self, embedding: torch.Tensor):
        super().__init__()
        self.embedding = nn.Parameter(embedding)


def _prepend(encoder: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """Forward pre-hook of the encoder: input ids -> embeddings with the soft tokens in front, mask widened."""
    if len(args) > 2:
        raise TypeError("prompt: the encoder takes input_ids and attention_mask positionally, nothing more")
    kwargs = dict(zip(("input_ids", "attention_mask"), args)) | kwargs
    embeds = kwargs.get("inputs_embeds")
    if embeds is None:
        embeds = encoder.get_input_embeddings()(kwargs["input_ids"])
    prompt = getattr(encoder, IMPL).embedding
    batch, n = embeds.shape[0], prompt.shape[0]
    kwargs["input_ids"] = None
    kwargs["inputs_embeds"] = torch.cat([prompt.to(embeds.dtype).unsqueeze(0).expand(batch, -1, -1), embeds], dim=1)
    if kwargs.get("attention_mask") is not None:
        mask = kwargs["attention_mask"]
        kwargs["attention_mask"] = torch.cat([mask.new_ones(batch, n), mask], dim=1)
    return (), kwargs


def _attach_encoder_prompt(model: nn.Module, settings: dict) -> nn.Module:
    words = model.get_input_embeddings().weight
    n = settings["num_tokens"]
    if settings["init"] == "vocab":
        embedding = words[torch.randint(0, words.shape[0], (n,))].detach().clone()
    else:
        embedding = torch.randn(n, words.shape[1]).to(words.device, words.dtype)  # nn.Embedding's init, as peft's
    encoder = model.get_encoder()
    encoder.add_module(IMPL, EncoderPrompt(embedding))
    encoder.register_forward_pre_hook(_prepend, with_kwargs=True)
    return model


def attach(model: nn.Module, settings: dict, kind: str) -> nn.Module:
    if kind == "seq2seq":
        return _attach_encoder_prompt(model, settings)
    config = PromptTuningConfig(
        task_type=TaskType.CAUSAL_LM if kind == "causal" else TaskType.FEATURE_EXTRACTION,
        num_virtual_tokens=settings["num_tokens"],
        prompt_tuning_init=PromptTuningInit.SAMPLE_VOCAB if settings["init"] == "vocab" else PromptTuningInit.RANDOM,
    )
    return get_peft_model(model, config)


def expected_count(model: nn.Module, settings: dict, kind: str) -> int:
    return settings["num_tokens"] * model.get_input_embeddings().embedding_dim
