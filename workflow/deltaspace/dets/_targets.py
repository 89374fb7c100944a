"""Which Linear modules of a backbone a DET attaches to."""
from __future__ import annotations

import re

from torch import nn

from .base import DETError

# The usual places per model type, when a DET's `target_modules` is left out (null).
# LoRA: peft-style names (a module whose name is, or ends in, the entry).
LORA_TARGETS = {
    "bert": ["query", "value"],
    "roberta": ["query", "value"],
    "llama": ["q_proj", "v_proj"],
    "mistral": ["q_proj", "v_proj"],
    "qwen2": ["q_proj", "v_proj"],
    "gpt2": ["c_attn"],
    "t5": ["q", "v"],  # in encoder self-attention and in the decoder's self- and cross-attention
}
# Houlsby adapters: after the attention output projection and after the feed-forward block
# (regular expressions searched in the module name).
ADAPTER_TARGETS = {
    "bert": [r"attention\.output\.dense$", r"layer\.\d+\.output\.dense$"],
    "roberta": [r"attention\.output\.dense$", r"layer\.\d+\.output\.dense$"],
    "llama": [r"self_attn\.o_proj$", r"mlp\.down_proj$"],
    "mistral": [r"self_attn\.o_proj$", r"mlp\.down_proj$"],
    "qwen2": [r"self_attn\.o_proj$", r"mlp\.down_proj$"],
    # encoder blocks: 2 adapters, decoder blocks: 3 (self-attention, cross-attention, feed-forward), as the paper
    "t5": [r"SelfAttention\.o$", r"EncDecAttention\.o$", r"DenseReluDense\.wo$"],
}
# IA3: rescaled keys and values, and the feed-forward block's inner activation (the input of its output
# projection: the "feed-forward modules", scaled on their input). Regular expressions, as for adapters.
# GPT-2 keeps query, key and value in one c_attn: its queries are rescaled too.
IA3_FEEDFORWARD = {
    "bert": [r"layer\.\d+\.output\.dense$"],
    "roberta": [r"layer\.\d+\.output\.dense$"],
    "llama": [r"mlp\.down_proj$"],
    "mistral": [r"mlp\.down_proj$"],
    "qwen2": [r"mlp\.down_proj$"],
    "gpt2": [r"mlp\.c_proj$"],
    "t5": [r"DenseReluDense\.wo$"],
}
_IA3_ATTENTION = {
    "bert": [r"attention\.self\.(key|value)$"],
    "roberta": [r"attention\.self\.(key|value)$"],
    "llama": [r"self_attn\.(k|v)_proj$"],
    "mistral": [r"self_attn\.(k|v)_proj$"],
    "qwen2": [r"self_attn\.(k|v)_proj$"],
    "gpt2": [r"attn\.c_attn$"],
    "t5": [r"(SelfAttention|EncDecAttention)\.(k|v)$"],
}
IA3_TARGETS = {model_type: _IA3_ATTENTION[model_type] + IA3_FEEDFORWARD[model_type] for model_type in _IA3_ATTENTION}
# APET: the weight matrices its entries are drawn from: every projection of attention and feed-forward blocks
# (no embeddings, norms, biases or output head).
APET_TARGETS = {
    "bert": [r"attention\.self\.(query|key|value)$", r"attention\.output\.dense$", r"intermediate\.dense$",
             r"layer\.\d+\.output\.dense$"],
    "roberta": [r"attention\.self\.(query|key|value)$", r"attention\.output\.dense$", r"intermediate\.dense$",
                r"layer\.\d+\.output\.dense$"],
    "llama": [r"self_attn\.(q|k|v|o)_proj$", r"mlp\.(gate|up|down)_proj$"],
    "mistral": [r"self_attn\.(q|k|v|o)_proj$", r"mlp\.(gate|up|down)_proj$"],
    "qwen2": [r"self_attn\.(q|k|v|o)_proj$", r"mlp\.(gate|up|down)_proj$"],
    "gpt2": [r"attn\.c_(attn|proj)$", r"mlp\.c_(fc|proj)$"],
    "t5": [r"(SelfAttention|EncDecAttention)\.(q|k|v|o)$", r"DenseReluDense\.(wi|wi_0|wi_1|wo)$"],
}


def targets(settings: dict, defaults: dict[str, list[str]], model_type: str) -> list[str]:
    chosen = settings.get("target_modules") or defaults.get(model_type)
    if not chosen:
        raise DETError(
            f"dets.{settings['method']}.target_modules: no default for model type {model_type!r}; "
            f"list the module names to attach to (known defaults: {', '.join(sorted(defaults))})"
        )
    return list(chosen)


def _out_in(module: nn.Module) -> tuple[int, int] | None:
    if isinstance(module, nn.Linear):
        return module.out_features, module.in_features
    weight = getattr(module, "weight", None)  # transformers' Conv1D (GPT-2) stores (in, out)
    if type(module).__name__ == "Conv1D" and weight is not None:
        return weight.shape[1], weight.shape[0]
    return None


def match_linear(model: nn.Module, patterns: list[str], how: str) -> dict[str, tuple[int, int]]:
    """name -> (out_features, in_features) of the Linear modules matched.

    how="suffix": a name equal to an entry or ending in "." + entry (peft's rule); how="regex": re.search.
    """
    found = {}
    for name, module in model.named_modules():
        dims = _out_in(module)
        if dims is None:
            continue
        if how == "suffix":
            hit = any(name == p or name.endswith("." + p) for p in patterns)
        else:
            hit = any(re.search(p, name) for p in patterns)
        if hit:
            found[name] = dims
    if not found:
        raise DETError(f"target_modules {patterns} match no linear module of the backbone")
    return found
