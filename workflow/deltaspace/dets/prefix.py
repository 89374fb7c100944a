"""Prefix tuning: learned keys and values in front of every self-attention layer's own.
Our own implementation (peft's prefix tuning does not work for BERT under transformers 5). The trainable
tensors live in one submodule, `model.deltaspace_prefix` (a :class:`PrefixEncoder`), reparametrised as in
Li & Liang (2021), all bias-free:

    E (num_tokens x H)  --down (H -> hidden)-->  tanh  --up (hidden -> 2 * layers * kv_width)-->  keys, values

How the prefix reaches the attention:

* An attention function is registered in transformers' ``AttentionInterface`` under :data:`IMPL` and the
  model is switched to it with ``set_attn_implementation``. transformers' mask builders treat a name they do
  not know as "needs no mask" and silently drop the padding mask, so the stock ``sdpa_mask`` builder is
  registered under the same name in ``AttentionMaskInterface``: the model builds exactly the masks it would
  build for "sdpa" (boolean (b, 1, q, kv), or None when nothing is masked).
* At attach time every self-attention module (the ones carrying an integer ``layer_idx``, as BERT, Llama and
  GPT-2 all do in transformers 5) gets a plain, unregistered reference to the model's own PrefixEncoder.
  Nothing is global: two models with prefixes never see each other's tensors.
* On each call the attention function computes that layer's prefix keys/values from the encoder's
  parameters *as they are at that moment* (so ``torch.func.functional_call`` with replacement tensors works
  and gradients reach the replacements), expands them over the batch, concatenates them in front of the
  layer's keys/values, pads the mask so that every query sees every prefix position, and hands over to
  transformers' ``sdpa_attention_forward``.

On a text-to-text backbone (kind seq2seq, T5) the prefix sits in front of the keys/values of every encoder
self-attention, decoder self-attention and decoder cross-attention layer: 3 * L "slots" in the up projection
(encoder layers, then decoder self, then decoder cross, each in layer order; a module's slot is kept in a
plain attribute beside its link, since encoder and decoder modules share layer indices). T5 adds a relative
position bias to the attention scores; a prefix position has no place in the text, so its bias is zero: the
bias handed to the attention function gets zero columns in front, as the mask gets visible ones.

The per-layer recomputation of ``tanh(down(E))`` costs num_tokens * H * hidden multiply-adds per layer, which
is negligible, and keeps the mechanism stateless: no cache filled by a hook that could go stale when an inner
module is called directly, during generation, or under activation checkpointing.
"""
from __future__ import annotations

import dataclasses
import re

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

from ..models import Shape, backbone_shape
from .base import DETError

IMPL = "deltaspace_prefix"  # the attention implementation name, and the submodule's name on the model
_LINK = "_deltaspace_prefix"  # attribute on each attention module pointing at its model's PrefixEncoder
_SLOT = "_deltaspace_prefix_slot"  # seq2seq: the module's block of the up projection (else its layer_idx)


class PrefixEncoder(nn.Module):
    """The trainable prefix: an embedding and a bias-free tanh bottleneck MLP producing all layers' k/v.

    Init: the embedding ~ N(0, 1) (nn.Embedding's default) and both projections with nn.Linear's default
    (uniform, +-1/sqrt(fan_in)), as in the reference implementations of Li & Liang. Then the tanh input has
    std ~0.58 (its non-linear but unsaturated range) and the prefix keys/values std ~0.3: the same order as,
    but smaller than, a trained backbone's keys/values, so the frozen model starts off only mildly perturbed,
    and all three tensors get gradients of useful size from the first step (a tiny embedding, e.g. std 0.02,
    would leave the projections with near-zero gradients at the start).
    """

    def __init__(self, num_tokens: int, hidden_size: int, bottleneck: int, layers: int, kv_heads: int, head_dim: int):
        super().__init__()
        self.num_tokens, self.layers, self.kv_heads, self.head_dim = num_tokens, layers, kv_heads, head_dim
        self.embedding = nn.Parameter(torch.randn(num_tokens, hidden_size))
        self.down = nn.Linear(hidden_size, bottleneck, bias=False)
        self.up = nn.Linear(bottleneck, 2 * layers * kv_heads * head_dim, bias=False)

    def layer_kv(self, layer_idx: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values of one layer, each (kv_heads, num_tokens, head_dim).

        The up projection's output is laid out as (layers, key/value, kv_heads, head_dim); only the rows of
        this layer are multiplied.
        """
        width = 2 * self.kv_heads * self.head_dim
        h = torch.tanh(self.down(self.embedding))
        kv = F.linear(h, self.up.weight[layer_idx * width : (layer_idx + 1) * width])
        kv = kv.view(self.num_tokens, 2, self.kv_heads, self.head_dim).permute(1, 2, 0, 3)
        return kv[0], kv[1]

    def forward(self) -> torch.Tensor:
        """All layers' keys and values: (layers, 2, kv_heads, num_tokens, head_dim)."""
        return torch.stack([torch.stack(self.layer_kv(i)) for i in range(self.layers)])


def _pad_mask(
    mask: torch.Tensor | None, num_tokens: int, q_len: int, kv_len: int, causal: bool, device
) -> torch.Tensor | None:
    """The attention mask for [prefix; keys]: prefix columns visible to every query.

    Boolean masks (True = attend) get True columns, additive float masks 0 columns; the leading dimensions
    may be broadcast ones. Without a mask a causal layer needs an explicit one (sdpa's is_causal would align
    the triangle to the top-left corner and hide the real keys behind the prefix); queries are aligned to the
    last keys, as with a cache. A non-causal layer without a mask needs none.
    """
    if mask is None:
        if not causal or q_len == 1:
            return None
        rows = torch.arange(q_len, device=device)[:, None] + (kv_len - q_len)
        mask = (torch.arange(kv_len, device=device)[None, :] <= rows)[None, None]
    if mask.shape[-1] != kv_len:
        mask = mask.expand(*mask.shape[:-1], kv_len)
    fill = torch.ones if mask.dtype == torch.bool else torch.zeros
    return torch.cat([fill(*mask.shape[:-1], num_tokens, dtype=mask.dtype, device=mask.device), mask], dim=-1)


def prefix_attention(module, query, key, value, attention_mask, **kwargs):
    """Attention function registered as IMPL: sdpa over [prefix; keys] and [prefix; values].

    Modules without a prefix link (e.g. cross-attention) get plain sdpa.
    """
    prefix: PrefixEncoder | None = module.__dict__.get(_LINK)
    if prefix is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    is_causal = kwargs.pop("is_causal", None)
    causal = getattr(module, "is_causal", True) if is_causal is None else is_causal
    batch, kv_heads, kv_len, _ = key.shape
    if kv_heads != prefix.kv_heads:
        raise RuntimeError(
            f"prefix: layer {module.layer_idx} has {kv_heads} key/value heads, the prefix {prefix.kv_heads}"
        )
    pk, pv = prefix.layer_kv(module.__dict__.get(_SLOT, module.layer_idx))
    pk = pk.to(key.dtype).unsqueeze(0).expand(batch, -1, -1, -1)
    pv = pv.to(value.dtype).unsqueeze(0).expand(batch, -1, -1, -1)
    mask = _pad_mask(attention_mask, prefix.num_tokens, query.shape[2], kv_len, causal, query.device)
    bias = kwargs.get("position_bias")
    if bias is not None:  # T5's relative position bias (1 or batch, heads, q, kv): zero for the prefix positions
        kwargs["position_bias"] = torch.cat([bias.new_zeros(*bias.shape[:-1], prefix.num_tokens), bias], dim=-1)
    return sdpa_attention_forward(
        module, query, torch.cat([pk, key], dim=2), torch.cat([pv, value], dim=2), mask, is_causal=False, **kwargs
    )


def _attention_modules(model: nn.Module) -> list[nn.Module]:
    """The self-attention modules: those with an integer layer_idx, cross-attention left out."""
    return [
        m
        for m in model.modules()
        if isinstance(getattr(m, "layer_idx", None), int)
        and not getattr(m, "is_cross_attention", False)
        and "Cross" not in type(m).__name__
    ]


def _seq2seq_slots(model: nn.Module) -> list[nn.Module]:
    """The attention modules of an encoder-decoder in slot order: encoder self-attention, decoder
    self-attention, decoder cross-attention, each by layer."""
    config = model.config
    groups: dict[tuple[str, bool], list[nn.Module]] = {("encoder", False): [], ("decoder", False): [],
                                                       ("decoder", True): []}
    for name, m in model.named_modules():
        if not isinstance(getattr(m, "layer_idx", None), int):
            continue
        stack = "decoder" if re.search(r"(^|\.)decoder\.", name) else "encoder"
        cross = bool(getattr(m, "is_cross_attention", False)) or bool(re.search(r"EncDec|encoder_attn|cross", name, re.IGNORECASE))
        groups.setdefault((stack, cross), []).append(m)
    sizes = {"encoder": config.num_layers, "decoder": config.num_decoder_layers}
    for (stack, cross), found in groups.items():
        if sorted(m.layer_idx for m in found) != list(range(sizes.get(stack, -1))):
            raise DETError(
                f"prefix: expected one {stack} {'cross' if cross else 'self'}-attention module per layer "
                f"(0..{sizes.get(stack, 0) - 1}) on {type(model).__name__}, found {sorted(m.layer_idx for m in found)}"
            )
    return [m for key in groups for m in sorted(groups[key], key=lambda m: m.layer_idx)]


def _seq2seq_shape(config) -> Shape:
    """The backbone's shape with one "layer" per prefix slot (see _seq2seq_slots)."""
    return dataclasses.replace(backbone_shape(config), layers=config.num_layers + 2 * config.num_decoder_layers)


def attach(model: nn.Module, settings: dict, kind: str) -> nn.Module:
    """Add `model.deltaspace_prefix` (the only trainable tensors) and route attention through it; returns `model`."""
    if hasattr(model, IMPL):
        raise DETError("prefix: this model already has a prefix attached")
    if kind == "seq2seq":
        return _attach(model, settings, _seq2seq_shape(model.config), _seq2seq_slots(model), slotted=True)
    shape = backbone_shape(model.config)
    attention = _attention_modules(model)
    if sorted(m.layer_idx for m in attention) != list(range(shape.layers)):
        raise DETError(
            f"prefix: expected one self-attention module with layer_idx per layer (0..{shape.layers - 1}) "
            f"on {type(model).__name__}, found {sorted(m.layer_idx for m in attention)}"
        )
    return _attach(model, settings, shape, attention, slotted=False)


def _attach(model: nn.Module, settings: dict, shape: Shape, attention: list[nn.Module], slotted: bool) -> nn.Module:
    AttentionInterface.register(IMPL, prefix_attention)
    AttentionMaskInterface.register(IMPL, sdpa_mask)  # else the mask builders return None: padding ignored

    # Built on the CPU so that the initial values depend on the seed only, then moved next to the backbone.
    encoder = PrefixEncoder(
        settings["num_tokens"], shape.hidden, settings["hidden"], shape.layers, shape.kv_heads, shape.head_dim
    )
    param = next(model.parameters())
    model.add_module(IMPL, encoder.to(device=param.device, dtype=param.dtype if param.is_floating_point() else None))
    for slot, m in enumerate(attention):
        m.__dict__[_LINK] = encoder  # plain attribute: not a submodule, so not in parameters() or state_dict()
        if slotted:
            m.__dict__[_SLOT] = slot
    model.set_attn_implementation(IMPL)
    if model.config._attn_implementation != IMPL:
        raise DETError(f"prefix: {type(model).__name__} does not accept a custom attention implementation")
    return model


def expected_count(shape: Shape | nn.Module, settings: dict, kind: str) -> int:
    """n * H + H * k + k * 2 * L * kv_width, for n = num_tokens and k = hidden. Accepts a Shape or a bare model."""
    if not isinstance(shape, Shape):
        shape = _seq2seq_shape(shape.config) if kind == "seq2seq" else backbone_shape(shape.config)
    n, k = settings["num_tokens"], settings["hidden"]
    return n * shape.hidden + shape.hidden * k + k * 2 * shape.layers * shape.kv_width
