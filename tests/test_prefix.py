"""Tests for deltaspace.dets.prefix on tiny random BERT, Llama (with GQA) and GPT-2 models: no downloads."""
from __future__ import annotations

import copy

import pytest
import torch
from transformers import AutoModel, AutoModelForCausalLM, BertConfig, DynamicCache, GPT2Config, LlamaConfig

from deltaspace.dets import prefix
from deltaspace.models import Shape

SETTINGS = {"method": "prefix", "lr": 1e-3, "num_tokens": 3, "hidden": 5}
VOCAB = 100


def build(arch: str, seed: int = 0):
    """A frozen tiny backbone, as load_backbone hands it over."""
    if arch == "bert":
        config, cls = (
            BertConfig(
                vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64
            ),
            AutoModel,
        )
    elif arch == "llama":
        config = LlamaConfig(
            vocab_size=VOCAB,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            intermediate_size=64,
        )
        cls = AutoModelForCausalLM
    else:
        config, cls = GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=64), AutoModelForCausalLM
    torch.manual_seed(seed)
    model = cls.from_config(config, attn_implementation="sdpa")
    model.requires_grad_(False)
    model.eval()
    return model


def attached(arch: str, seed: int = 0, settings: dict = SETTINGS):
    model = build(arch, seed)
    torch.manual_seed(seed + 1)
    return prefix.attach(model, settings, "encoder" if arch == "bert" else "causal")


def out(model, **inputs) -> torch.Tensor:
    result = model(**inputs)
    return result.logits if hasattr(result, "logits") else result.last_hidden_state


def ids(batch=2, length=6, seed=0):
    return torch.randint(0, VOCAB, (batch, length), generator=torch.Generator().manual_seed(seed))


def test_count_on_minilm_shape():
    shape = Shape(model_type="bert", layers=6, hidden=384, heads=12, kv_heads=12, head_dim=32)
    assert prefix.expected_count(shape, {"num_tokens": 10, "hidden": 14}, "encoder") == 73_728


@pytest.mark.parametrize("arch", ["bert", "llama", "gpt2"])
def test_count_matches_trainable(arch):
    bare = build(arch)
    expected = prefix.expected_count(bare, SETTINGS, "encoder")  # a bare model works too, not only a Shape
    model = prefix.attach(bare, SETTINGS, "encoder" if arch == "bert" else "causal")
    assert model is bare
    trainable = {n: p.numel() for n, p in model.named_parameters() if p.requires_grad}
    assert all(n.startswith("deltaspace_prefix.") for n in trainable)
    assert sum(trainable.values()) == expected


@pytest.mark.parametrize("arch", ["bert", "llama"])
def test_matches_prefix_given_as_past_key_values(arch):
    """Independent reference: transformers' own cache route with the prefix k/v as the cached past."""
    model = attached(arch)
    reference = build(arch)
    mask = torch.ones(2, 6, dtype=torch.long)
    mask[1, 4:] = 0
    cache = DynamicCache(config=reference.config)
    with torch.no_grad():
        for layer in range(2):
            k, v = model.deltaspace_prefix.layer_kv(layer)
            cache.update(k.expand(2, -1, -1, -1).clone(), v.expand(2, -1, -1, -1).clone(), layer)
        got = out(model, input_ids=ids(), attention_mask=mask)
        want = out(
            reference,
            input_ids=ids(),
            attention_mask=torch.cat([torch.ones(2, 3, dtype=torch.long), mask], dim=1),
            past_key_values=cache,
            position_ids=torch.arange(6).expand(2, -1),
        )
    assert torch.allclose(got[mask.bool()], want[mask.bool()], atol=1e-5)


@pytest.mark.parametrize("arch", ["bert", "llama"])
def test_trains_only_the_prefix(arch):
    model = attached(arch)
    backbone = {n: p.clone() for n, p in model.named_parameters() if not n.startswith("deltaspace_prefix.")}
    start = {n: p.detach().clone() for n, p in model.deltaspace_prefix.named_parameters()}
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    out(model, input_ids=ids()).pow(2).mean().backward()
    for n, p in model.named_parameters():
        if n.startswith("deltaspace_prefix."):
            assert p.grad is not None and p.grad.abs().sum() > 0, n
        else:
            assert p.grad is None, n
    optimizer.step()
    for n, p in model.named_parameters():
        if n in backbone:
            assert torch.equal(p, backbone[n]), n
    for n, p in model.deltaspace_prefix.named_parameters():
        assert not torch.equal(p, start[n]), n


@pytest.mark.parametrize("arch", ["bert", "llama"])
def test_prefix_changes_output(arch):
    bare = build(arch)
    with torch.no_grad():
        before = out(bare, input_ids=ids())
        model = prefix.attach(bare, SETTINGS, "x")
        after = out(model, input_ids=ids())
        model.set_attn_implementation("sdpa")  # the prefix is bypassed again
        bypassed = out(model, input_ids=ids())
    assert not torch.allclose(before, after, atol=1e-3)
    assert torch.equal(before, bypassed)


@pytest.mark.parametrize("arch", ["bert", "llama"])
def test_right_padding_leaves_real_positions_alone(arch):
    model = attached(arch)
    batch = ids(2, 7)
    mask = torch.ones(2, 7, dtype=torch.long)
    mask[1, 4:] = 0
    with torch.no_grad():
        padded = out(model, input_ids=batch, attention_mask=mask)
        single = out(model, input_ids=batch[1:, :4])
        full = out(model, input_ids=batch[:1])
    assert torch.allclose(padded[1, :4], single[0], atol=1e-5)
    assert torch.allclose(padded[0], full[0], atol=1e-5)


@pytest.mark.parametrize("float_mask", [False, True])
def test_prepared_4d_masks(float_mask):
    """A ready 4D mask (boolean, or additive float) reaches the attention as is and gets padded too."""
    model = attached("bert")
    mask = torch.ones(2, 6, dtype=torch.long)
    mask[1, 3:] = 0
    mask4 = mask.bool()[:, None, None, :]
    if float_mask:
        mask4 = torch.zeros(mask4.shape).masked_fill(~mask4, torch.finfo(torch.float32).min)
    with torch.no_grad():
        assert torch.allclose(
            out(model, input_ids=ids(), attention_mask=mask4)[1, :3],
            out(model, input_ids=ids(), attention_mask=mask)[1, :3],
            atol=1e-5,
        )


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
@pytest.mark.parametrize("with_mask", [False, True])
def test_causal_with_prefix(arch, with_mask):
    model = attached(arch)
    a, b = ids(1, 8, seed=1), ids(1, 8, seed=2)
    changed = torch.cat([a[:, :5], b[:, 5:]], dim=1)
    extra = {"attention_mask": torch.ones(1, 8, dtype=torch.long)} if with_mask else {}
    with torch.no_grad():
        first, second = out(model, input_ids=a, **extra), out(model, input_ids=changed, **extra)
    assert torch.allclose(first[:, :5], second[:, :5], atol=1e-6)
    assert not torch.allclose(first[:, 5:], second[:, 5:], atol=1e-4)


@pytest.mark.parametrize("arch", ["bert", "llama"])
def test_functional_call_with_replacement_prefix(arch):
    model = attached(arch)
    names = [f"deltaspace_prefix.{n}" for n, _ in model.deltaspace_prefix.named_parameters()]
    own = dict(model.named_parameters())
    replacement = {n: (own[n].detach() * 2).requires_grad_() for n in names}
    with torch.no_grad():
        plain = out(model, input_ids=ids())
    result = torch.func.functional_call(model, replacement, args=(), kwargs={"input_ids": ids()})
    swapped = result.logits if hasattr(result, "logits") else result.last_hidden_state
    assert not torch.allclose(plain, swapped, atol=1e-3)
    swapped.pow(2).mean().backward()
    for n in names:
        assert replacement[n].grad is not None and replacement[n].grad.abs().sum() > 0, n
        assert own[n].grad is None, n
    with torch.no_grad():  # and the model's own tensors are back in place
        assert torch.equal(out(model, input_ids=ids()), plain)


def test_two_models_do_not_interfere():
    first = attached("bert", seed=0)
    with torch.no_grad():
        alone = out(first, input_ids=ids())
        second = attached("bert", seed=0, settings={**SETTINGS, "num_tokens": 4})
        llama = attached("llama", seed=3)
        out(second, input_ids=ids())
        out(llama, input_ids=ids())
        second.deltaspace_prefix.embedding.mul_(3)
        assert torch.equal(out(first, input_ids=ids()), alone)
        assert not torch.allclose(out(second, input_ids=ids()), alone, atol=1e-3)
        # a deep copy brings its own prefix along
        clone = copy.deepcopy(first)
        clone.deltaspace_prefix.embedding.zero_()
        assert torch.equal(out(first, input_ids=ids()), alone)
        assert not torch.allclose(out(clone, input_ids=ids()), alone, atol=1e-4)


def test_attach_twice_is_refused():
    from deltaspace.dets import DETError

    model = attached("bert")
    with pytest.raises(DETError):
        prefix.attach(model, SETTINGS, "encoder")


def test_llama_cache_continuation():
    """Generation-style use: the prefix is added on each call, not stored in the cache; a second chunk of
    several tokens after a cached first one gives the same logits as one pass over the whole sequence."""
    model = attached("llama")
    tokens = ids(1, 8)
    with torch.no_grad():
        whole = out(model, input_ids=tokens)
        first = model(input_ids=tokens[:, :5], use_cache=True)
        rest = model(input_ids=tokens[:, 5:], past_key_values=first.past_key_values, use_cache=True)
    assert torch.allclose(torch.cat([first.logits, rest.logits], dim=1), whole, atol=1e-5)


def test_pad_mask_formats():
    # no mask, causal: prefix visible, the triangle aligned to the last keys (as with a cache)
    made = prefix._pad_mask(None, 1, 2, 4, True, "cpu")
    assert made.tolist() == [[[[True, True, True, True, False], [True, True, True, True, True]]]]
    assert prefix._pad_mask(None, 1, 3, 3, False, "cpu") is None
    additive = torch.tensor([0.0, -1e9]).view(1, 1, 1, 2)
    assert prefix._pad_mask(additive, 2, 3, 2, True, "cpu").tolist() == [[[[0.0, 0.0, 0.0, -1e9]]]]


@pytest.mark.parametrize("arch", ["bert", "llama"])
def test_autocast_bfloat16(arch):
    model = attached(arch)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        result = out(model, input_ids=ids())
    assert torch.isfinite(result).all()
    result.float().pow(2).mean().backward()
    assert model.deltaspace_prefix.embedding.grad.abs().sum() > 0
