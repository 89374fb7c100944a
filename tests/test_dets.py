"""Each DET: its tensors flatten and come back exactly, only they train, their count follows the config."""
from __future__ import annotations

import copy

import pytest
import torch

from deltaspace import dets
from deltaspace.config import load_config, validate_config
from deltaspace.delta import Layout, LayoutError
from deltaspace.heads import Classifier, build_classifier

from conftest import ROOT, TINY, llama_backbone

METHODS = list(dets.METHODS)
LABELS = ["negative", "positive"]
TEXTS = ["a gripping, funny film", "dull and far too long", "not bad at all", "I want my money back"]


@pytest.fixture(scope="module")
def every_det_config() -> dict:
    """configs/tiny.yaml with every method: those it leaves out (ia3, apet: the workflow tests' time) at their
    defaults."""
    cfg = load_config(TINY)
    cfg["dets"] |= {method: {} for method in METHODS if method not in cfg["dets"]}
    return validate_config(cfg, ROOT)


@pytest.fixture
def tiny(every_det_config) -> dict:  # in place of conftest's: here every method has its settings
    return copy.deepcopy(every_det_config)


def classifier_for(tiny: dict, method: str, kind: str = "encoder", seed: int = 0) -> Classifier:
    backbone = tiny["backbone"] if kind == "encoder" else llama_backbone(tiny)
    return build_classifier(backbone, tiny["dets"][method], LABELS, seed)[0]


def batch(classifier: Classifier) -> dict[str, torch.Tensor]:
    return classifier.collate(classifier.encode(TEXTS))


def causal_methods():
    return [m for m in METHODS if m != "bitfit"]  # llama has no biases


@pytest.mark.parametrize("method", METHODS)
def test_flatten_unflatten_round_trip(tiny, method):
    classifier = classifier_for(tiny, method)
    params = {n: p for n, p in classifier.named_parameters() if p.requires_grad}
    layout = Layout.of(params)
    vector = layout.flatten(params)
    assert vector.dtype == torch.float32 and vector.numel() == layout.size
    back = layout.unflatten(vector)
    assert list(back) == list(params)
    for name, tensor in back.items():
        assert torch.equal(tensor, params[name].detach())
    assert Layout.from_json(layout.to_json()) == layout
    # a vector of the right length is a solution of the DET; a wrong one is refused by name
    assert torch.equal(layout.flatten(layout.unflatten(vector * 2)), vector * 2)
    with pytest.raises(LayoutError, match="expected"):
        layout.unflatten(vector[:-1])


@pytest.mark.parametrize("kind,method", [("encoder", m) for m in METHODS] + [("causal", m) for m in causal_methods()])
def test_only_the_det_trains(tiny, kind, method):
    classifier = classifier_for(tiny, method, kind)
    frozen = {n: p.detach().clone() for n, p in classifier.named_parameters() if not p.requires_grad}
    tuned = {n: p.detach().clone() for n, p in classifier.named_parameters() if p.requires_grad}
    assert tuned and (not frozen if method == "finetune" else frozen)  # fine-tuning: every weight is the DET
    optimizer = torch.optim.AdamW([p for p in classifier.parameters() if p.requires_grad], lr=1e-2)
    enc = batch(classifier)
    for _ in range(3):  # LoRA and adapters start with a zero matrix: the first step moves only that one
        loss = torch.nn.functional.cross_entropy(classifier(**enc), torch.tensor([1, 0, 1, 0]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    for name, p in classifier.named_parameters():
        if p.requires_grad:
            assert not torch.equal(p.detach(), tuned[name]), f"{name} did not train"
        else:
            assert torch.equal(p.detach(), frozen[name]), f"backbone tensor {name} changed"


@pytest.mark.parametrize("kind,method", [("encoder", m) for m in METHODS] + [("causal", m) for m in causal_methods()])
def test_count_matches_config(tiny, kind, method):
    backbone = tiny["backbone"] if kind == "encoder" else llama_backbone(tiny)
    settings = tiny["dets"][method]
    classifier, expected = build_classifier(backbone, settings, LABELS, 0)
    assert Layout.of_trainable(classifier).size == expected
    # and the count moves with the size setting, as the formula says
    if method not in ("bitfit", "finetune", "ia3"):
        size_key = {"lora": "r", "adapter": "bottleneck", "prefix": "hidden", "prompt": "num_tokens",
                    "apet": "budget"}[method]
        bigger = dict(settings, **{size_key: (settings[size_key] or expected) + 1})  # apet's null: LoRA's count
        assert Layout.of_trainable(build_classifier(backbone, bigger, LABELS, 0)[0]).size > expected


def test_known_counts(tiny):
    """Hand-computed counts on the tiny BERT (hidden 32, 2 layers, 4 heads)."""
    h, layers = 32, 2
    want = {
        "lora": layers * 2 * 2 * (h + h),  # r=2 on query and value
        "adapter": layers * 2 * 2 * h * 2,  # two adapters per layer, down and up, bottleneck 2
        "prefix": 4 * h + h * 4 + 4 * 2 * layers * h,  # embedding, down, up (n=4, hidden=4)
        "prompt": 4 * h,
        "ia3": layers * (h + h + 64),  # key and value outputs, the feed-forward output projection's input (64)
        "apet": layers * 2 * 2 * (h + h),  # budget null: as many entries as the config's lora DET
    }
    for method, count in want.items():
        assert Layout.of_trainable(classifier_for(tiny, method)).size == count, method
    vocab, positions = 30522, 128  # the MiniLM tokenizer's vocabulary; max_position_embeddings
    embeddings = (vocab + positions + 2) * h + 2 * h  # word, position, token type; LayerNorm
    layer = 4 * (h * h + h) + 2 * h + (h * 64 + 64) + (64 * h + h) + 2 * h  # attention, LN, FFN (64), LN
    finetune = embeddings + layers * layer  # the backbone is built without a pooler
    assert Layout.of_trainable(classifier_for(tiny, "finetune")).size == finetune


def test_bitfit_needs_biases(tiny):
    with pytest.raises(dets.DETError, match="no bias"):
        classifier_for(tiny, "bitfit", "causal")


def test_unknown_targets_are_named(tiny):
    settings = dict(tiny["dets"]["lora"], target_modules=["nonexistent"])
    with pytest.raises(dets.DETError, match="nonexistent"):
        build_classifier(tiny["backbone"], settings, LABELS, 0)


@pytest.mark.parametrize("method", METHODS)
def test_seed_fixes_the_init(tiny, method):
    a = Layout.of_trainable(classifier_for(tiny, method, seed=3))
    first = {n: p.detach() for n, p in classifier_for(tiny, method, seed=3).named_parameters() if p.requires_grad}
    second = {n: p.detach() for n, p in classifier_for(tiny, method, seed=3).named_parameters() if p.requires_grad}
    assert torch.equal(a.flatten(first), a.flatten(second))
    if method not in ("bitfit", "finetune", "ia3", "apet"):  # they start at the backbone (IA3 at one, APET at 0)
        other = {n: p.detach() for n, p in classifier_for(tiny, method, seed=4).named_parameters() if p.requires_grad}
        assert not torch.equal(a.flatten(first), a.flatten(other))


def test_causal_head_scores_label_words(tiny):
    classifier = classifier_for(tiny, "lora", "causal")
    logits = classifier(**batch(classifier))
    assert logits.shape == (4, 2) and torch.all(logits <= 0)  # log-probabilities


def test_encoder_head_is_bounded_cosine(tiny):
    classifier = classifier_for(tiny, "lora")
    logits = classifier(**batch(classifier))
    assert logits.shape == (4, 2)
    assert torch.all(logits.abs() <= 1 / tiny["backbone"]["temperature"] + 1e-4)


def test_padding_does_not_change_scores(tiny):
    for method in ("prompt", "prefix", "adapter"):
        classifier = classifier_for(tiny, method).eval()
        together = classifier(**batch(classifier))
        alone = torch.cat([classifier(**classifier.collate(classifier.encode([t]))) for t in TEXTS])
        torch.testing.assert_close(together, alone, atol=1e-4, rtol=1e-4)


def test_empty_pair_is_no_pair(tiny):
    classifier = classifier_for(tiny, "lora")
    assert classifier.encode(["a film"], [""]) == classifier.encode(["a film"]) == classifier.encode(["a film"], [None])
    assert len(classifier.encode(["a film"], ["a plot"])[0]) > len(classifier.encode(["a film"])[0])


@pytest.mark.parametrize("kind", ["encoder", "causal"])
def test_batch_encoding_gives_each_example_its_own_ids(tiny, kind):
    # one tokenizer call per kind of example; mixed singles and pairs, some past max_length, in their order
    classifier = classifier_for(tiny, "lora", kind)
    long = " ".join(["word"] * 200)
    texts = ["a film", long, "two sentences", "a plot", long]
    pairs = [None, None, "and a second one", "", long]
    assert classifier.encode(texts, pairs) == [classifier.encode_one(t, p or None) for t, p in zip(texts, pairs)]
    assert max(len(ids) for ids in classifier.encode(texts, pairs)) == classifier.max_length
