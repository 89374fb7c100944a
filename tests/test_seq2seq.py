"""Text-to-text backbones (backbone.kind: seq2seq) on a tiny random T5 (configs/tiny_seq2seq.yaml): the head
scores each label by the decoder's log-likelihood of its words, and every DET attaches to encoder and decoder."""
from __future__ import annotations

import pytest
import torch
import yaml
from transformers import T5Config, T5ForConditionalGeneration

from deltaspace.config import load_config, validate_config
from deltaspace.decoded import Decoded
from deltaspace.delta import Layout
from deltaspace.dets import prefix
from deltaspace.heads import Classifier, build_classifier
from deltaspace.io import load_table

from conftest import ROOT, snakemake

SEQ2SEQ = ROOT / "configs" / "tiny_seq2seq.yaml"
METHODS = ["lora", "adapter", "prefix", "prompt", "bitfit", "finetune"]
LABELS = ["negative", "positive", "rather mixed"]  # one label of several tokens: padded label sequences
TEXTS = ["a gripping, funny film", "dull and far too long", "not bad at all", "I want my money back"]


@pytest.fixture(scope="module")
def config() -> dict:
    return validate_config(load_config(SEQ2SEQ), ROOT)


def classifier_for(config: dict, method: str, seed: int = 0, labels=LABELS) -> tuple[Classifier, int]:
    return build_classifier(config["backbone"], config["dets"][method], labels, seed)


def batch(classifier: Classifier) -> dict[str, torch.Tensor]:
    return classifier.collate(classifier.encode(TEXTS))


def manual_scores(classifier: Classifier) -> torch.Tensor:
    """Each example alone (no padding) and each label alone, through the model's own full forward."""
    tok, model = classifier.tokenizer, classifier.model
    start = model.config.decoder_start_token_id
    end = [] if tok.eos_token_id is None else [tok.eos_token_id]
    rows = []
    for ids in classifier.encode(TEXTS):
        row = []
        for name in LABELS:
            target = tok(name, add_special_tokens=False)["input_ids"] + end
            logits = model(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                           decoder_input_ids=torch.tensor([[start, *target[:-1]]]), use_cache=False).logits
            logp = torch.log_softmax(logits[0].double(), dim=-1)
            row.append(sum(logp[i, t] for i, t in enumerate(target)))
        rows.append(torch.stack(row))
    return torch.stack(rows).float()


@pytest.mark.parametrize("method", ["finetune", "prompt", "prefix"])
def test_head_scores_are_label_log_likelihoods(config, method):
    classifier = classifier_for(config, method)[0].eval()
    assert len({int(m.sum()) for m in classifier.label_target_mask}) > 1  # labels of different lengths
    with torch.no_grad():
        got = classifier(**batch(classifier))
        want = manual_scores(classifier)
    assert got.shape == (len(TEXTS), len(LABELS)) and torch.all(got < 0)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_labels_must_differ(config):
    with pytest.raises(ValueError, match="not distinct"):
        classifier_for(config, "lora", labels=["good", "good"])


def test_known_counts(config):
    """Hand-computed counts on the tiny T5 (d_model 32, 2 + 2 layers, d_ff 64, gated feed-forward)."""
    d, ff, layers = 32, 64, 2
    want = {
        "lora": (layers * 2 + layers * 4) * 2 * (d + d),  # r=2 on q and v: encoder self, decoder self and cross
        "adapter": (layers * 2 + layers * 3) * 2 * d * 2,  # 2 adapters per encoder block, 3 per decoder block
        "prefix": 4 * d + d * 4 + 4 * 2 * (3 * layers) * d,  # embedding, down, up over 3 * L slots of 4 heads x 8
        "prompt": 4 * d,
        # new zero biases: q, k, v, o per attention, wi_0, wi_1, wo per feed-forward; not the output head
        "bitfit": layers * (4 * d + 2 * ff + d) + layers * (8 * d + 2 * ff + d),
    }
    for method, count in want.items():
        classifier, expected = classifier_for(config, method)
        assert Layout.of_trainable(classifier).size == expected == count, method
    classifier, expected = classifier_for(config, "finetune")
    assert Layout.of_trainable(classifier).size == expected == sum(p.numel() for p in classifier.model.parameters())


@pytest.mark.parametrize("method", METHODS)
def test_only_the_det_trains_and_a_step_changes_logits(config, method):
    classifier = classifier_for(config, method)[0]
    frozen = {n: p.detach().clone() for n, p in classifier.named_parameters() if not p.requires_grad}
    tuned = {n: p.detach().clone() for n, p in classifier.named_parameters() if p.requires_grad}
    assert tuned and (not frozen if method == "finetune" else frozen)
    optimizer = torch.optim.AdamW([p for p in classifier.parameters() if p.requires_grad], lr=1e-2)
    enc, labels = batch(classifier), torch.tensor([1, 0, 1, 0])
    before = classifier.eval()(**enc).detach()
    for step in range(3):  # LoRA and adapters start with a zero matrix: the first step moves only that one
        loss = torch.nn.functional.cross_entropy(classifier(**enc), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step == 0:
            assert not torch.allclose(classifier(**enc).detach(), before), "one step left the logits unchanged"
    for name, p in classifier.named_parameters():
        if p.requires_grad:
            assert not torch.equal(p.detach(), tuned[name]), f"{name} did not train"
        else:
            assert torch.equal(p.detach(), frozen[name]), f"backbone tensor {name} changed"
    trained = {n for n, p in classifier.named_parameters() if p.requires_grad}
    assert any(".decoder." in n or n.startswith("model.deltaspace_prefix") for n in trained) or method == "prompt"


@pytest.mark.parametrize("method", ["lora", "adapter", "bitfit"])
def test_zero_initialised_dets_start_at_the_backbone(config, method):
    bare = classifier_for(config, "finetune")[0].eval()  # finetune adds nothing: the backbone itself
    classifier = classifier_for(config, method)[0].eval()
    with torch.no_grad():
        torch.testing.assert_close(classifier(**batch(classifier)), bare(**batch(bare)), atol=1e-5, rtol=1e-5)


def test_bitfit_adds_zero_biases_not_to_the_output_head(config):
    classifier = classifier_for(config, "bitfit")[0]
    biases = {n: p for n, p in classifier.named_parameters() if p.requires_grad}
    assert all(n.endswith(".bias") and not torch.any(p) for n, p in biases.items())
    assert any(".EncDecAttention." in n for n in biases) and not any("lm_head" in n for n in biases)


@pytest.mark.parametrize("method", ["prefix", "prompt"])
def test_decoded_codes_score_as_their_tensors(config, method):
    """The subspace stages' path: a code decoded into the DET's tensors through functional_call, and many codes
    at once through vmap (Decoded.logits_at, the landscape's batched sweep on a GPU), give the logits of the
    classifier holding those tensors."""
    classifier = classifier_for(config, method)[0].eval()
    layout = Layout.of_trainable(classifier)
    init = layout.flatten({n: p for n, p in classifier.named_parameters() if p.requires_grad})
    projection = torch.randn(layout.size, 2, generator=torch.Generator().manual_seed(0)) * 0.1
    decoded = Decoded(classifier, layout, projection, torch.zeros(layout.size), init)
    codes = torch.tensor([[0.0, 0.0], [1.0, -2.0]])
    enc = batch(classifier)
    with torch.no_grad():
        together = decoded.logits_at(codes, **enc)
        for z, got in zip(codes, together):
            decoded.set_code(z)
            torch.testing.assert_close(got, decoded(**enc), atol=1e-4, rtol=1e-4)
        assert not torch.allclose(together[0], together[1])


def tiny_t5() -> T5ForConditionalGeneration:
    config = T5Config(vocab_size=50, d_model=32, num_layers=2, num_heads=4, d_kv=8, d_ff=64,
                      feed_forward_proj="gated-gelu", decoder_start_token_id=0, pad_token_id=0)
    torch.manual_seed(0)
    model = T5ForConditionalGeneration(config)
    return model.requires_grad_(False).eval()


def test_prefix_slots_cover_encoder_decoder_and_cross_attention():
    model = prefix.attach(tiny_t5(), {"num_tokens": 3, "hidden": 5}, "seq2seq")
    slots = {name: m.__dict__[prefix._SLOT] for name, m in model.named_modules() if prefix._SLOT in m.__dict__}
    assert sorted(slots.values()) == list(range(6)) and model.deltaspace_prefix.layers == 6
    assert slots["encoder.block.1.layer.0.SelfAttention"] == 1
    assert slots["decoder.block.0.layer.0.SelfAttention"] == 2
    assert slots["decoder.block.1.layer.1.EncDecAttention"] == 5


@pytest.mark.parametrize("causal", [False, True])
def test_prefix_positions_get_zero_position_bias(causal):
    """One attention call against a hand-written reference: softmax(q [pk; k]^T + [0; bias] + mask) [pv; v]
    (T5 does not scale its scores). With zero prefix tensors the real positions keep their scores and only
    share the softmax with the prefix: exp(0) each."""
    model = prefix.attach(tiny_t5(), {"num_tokens": 3, "hidden": 5}, "seq2seq")
    name = "decoder.block.0.layer.0.SelfAttention" if causal else "encoder.block.1.layer.0.SelfAttention"
    module = dict(model.named_modules())[name]
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 4, 5, 8, generator=g) for _ in range(3))
    bias = torch.randn(1, 4, 5, 5, generator=g)
    mask = torch.ones(2, 1, 5, 5, dtype=torch.bool)
    mask[1, ..., 3:] = False  # padding in the second example
    if causal:
        mask &= torch.ones(5, 5, dtype=torch.bool).tril()
    with torch.no_grad():
        model.deltaspace_prefix.up.weight.zero_()  # zero prefix keys and values
    got, _ = prefix.prefix_attention(module, q, k, v, mask, scaling=1.0, dropout=0.0, position_bias=bias)
    scores = torch.cat([torch.zeros(2, 4, 5, 3), q @ k.transpose(-1, -2) + bias.masked_fill(~mask, float("-inf"))], -1)
    want = scores.softmax(-1) @ torch.cat([torch.zeros(2, 4, 3, 8), v], dim=2)
    torch.testing.assert_close(got, want.transpose(1, 2), atol=1e-5, rtol=1e-5)


def test_tiny_seq2seq_workflow_through_the_report(tmp_path):
    """configs/tiny_seq2seq.yaml cut down to 18 jobs (LoRA and prefix; sst2 and cr build a 2-dimensional
    subspace, the least a landscape plane needs; mr is optimised in it; no random-subspace control) through
    every stage to the report."""
    cfg = yaml.safe_load(SEQ2SEQ.read_text())
    cfg["tasks"] = [t for t in cfg["tasks"] if t["name"] != "rte"]
    cfg["dets"] = {name: cfg["dets"][name] for name in ("lora", "prefix")}
    cfg["subspace"] |= {"dims": [2], "tasks": ["mr"], "control": False,
                        "optimize": cfg["subspace"]["optimize"] | {"steps": 4, "eval_every": 2}}
    cfg["landscape"] |= {"grid": 2, "max_examples": 8}
    path = tmp_path / "seq2seq.yaml"
    path.write_text(yaml.safe_dump(cfg))
    result = snakemake(tmp_path, path)
    assert result.returncode == 0, result.stderr[-4000:]
    results = tmp_path / "results"
    for det in cfg["dets"]:
        metrics = load_table(results / "dets" / det / "sst2" / "seed0" / "metrics.parquet")
        assert metrics["value"].notna().all()
    assert list(results.glob("transfer/*/mr/seed0.parquet")) and list(results.glob("landscape/*/mr.parquet"))
    assert (results / "report" / "index.html").is_file()
