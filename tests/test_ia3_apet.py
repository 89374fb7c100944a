"""IA3 and APET: what their settings mean, that APET's entries depend on its seed alone, that both decode from a
flat vector like every other DET, and one run of the whole workflow with only these two."""
from __future__ import annotations

import pandas as pd
import pytest
import torch

from deltaspace import dets
from deltaspace.config import ConfigError, load_config, validate_config
from deltaspace.decoded import Decoded, predict_codes
from deltaspace.delta import Layout
from deltaspace.dets.apet import draw
from deltaspace.heads import build_classifier
from deltaspace.io import load_table, load_tensors
from deltaspace.train import Split, predict

from conftest import ROOT, TINY, llama_backbone, snakemake, tiny_with

LABELS = ["negative", "positive"]
TEXTS = ["a gripping, funny film", "dull and far too long", "not bad at all", "I want my money back"]


def validated(dets_cfg: dict) -> dict:
    cfg = load_config(TINY)
    cfg["dets"] = dets_cfg
    return validate_config(cfg, ROOT)


@pytest.fixture(scope="module")
def cfg() -> dict:
    return validated({"lora": {"r": 2, "alpha": 4}, "adapter": {"bottleneck": 2}, "ia3": {}, "apet": {}})


def classifier(cfg: dict, det: str, labels=LABELS, init_seed: int = 0, kind: str = "encoder", **change):
    backbone = {"encoder": cfg["backbone"], "causal": llama_backbone(cfg),
                "seq2seq": load_config(ROOT / "configs" / "tiny_seq2seq.yaml")["backbone"]}[kind]
    return build_classifier(validate_config(dict(cfg, backbone=backbone), ROOT)["backbone"],
                            dict(cfg["dets"][det], **change), labels, init_seed)


def entries(model) -> dict[str, torch.Tensor]:
    return {n: b for n, b in model.named_buffers() if n.endswith("parametrizations.weight.0.index")}


def test_draw_gives_distinct_sorted_positions_from_the_seed_alone():
    for total, budget in [(10, 10), (10, 7), (1000, 30), (10**12, 50)]:  # a permutation, then a stream of draws
        chosen = draw(total, budget, seed=5)
        assert len(chosen) == budget == len(set(chosen.tolist()))
        assert torch.equal(chosen, chosen.sort().values) and 0 <= chosen.min() and chosen.max() < total
        assert torch.equal(chosen, draw(total, budget, seed=5))
    assert not torch.equal(draw(1000, 30, seed=5), draw(1000, 30, seed=6))
    # the stream is uniform: every position of a small range is drawn about equally often over many seeds
    counts = torch.bincount(torch.cat([draw(20, 5, seed=s) for s in range(2000)]), minlength=20).float()
    assert counts.min() > 0.8 * counts.mean() and counts.max() < 1.2 * counts.mean()


def test_apet_entries_are_the_same_for_every_task_and_init_seed(cfg):
    first, _ = classifier(cfg, "apet")
    other, _ = classifier(cfg, "apet", labels=["no", "yes", "maybe"], init_seed=3)  # another task and init seed
    a, b = entries(first), entries(other)
    assert a and list(a) == list(b) and all(torch.equal(a[n], b[n]) for n in a)
    moved = entries(classifier(cfg, "apet", seed=1)[0])  # the DET's own seed draws them

    def positions(found):
        return {(name, i) for name, index in found.items() for i in index.tolist()}

    assert len(positions(moved)) == len(positions(a)) and positions(moved) != positions(a)


def test_apet_budget_follows_the_config(cfg):
    lora = Layout.of_trainable(classifier(cfg, "lora")[0]).size
    apet, expected = classifier(cfg, "apet")
    assert Layout.of_trainable(apet).size == expected == lora == sum(len(i) for i in entries(apet).values())
    like_adapter = validated({"adapter": {"bottleneck": 2}, "apet": {"budget_like": "adapter"}})
    model, expected = build_classifier(like_adapter["backbone"], like_adapter["dets"]["apet"], LABELS, 0)
    assert Layout.of_trainable(model).size == expected == Layout.of_trainable(classifier(cfg, "adapter")[0]).size
    assert Layout.of_trainable(classifier(cfg, "apet", budget=37)[0]).size == 37
    # the settings that decide the count travel with the entry (so a change to lora's r reruns apet), lr does not
    assert cfg["dets"]["apet"]["budget_like_settings"] == {k: v for k, v in cfg["dets"]["lora"].items() if k != "lr"}


@pytest.mark.parametrize("dets_cfg,key,words", [
    ({"apet": {}}, "dets.apet.budget", "the config's lora DET"),
    ({"adapter": {}, "apet": {"budget_like": "nope"}}, "dets.apet.budget_like", "'nope' is not a DET"),
    ({"lora": {}, "apet": {"budget": 10, "budget_like": "lora"}}, "dets.apet.budget_like", "set one of them"),
    ({"lora": {}, "apet": {"budget": 0}}, "dets.apet.budget", "minimum"),
    ({"lora": {}, "ia3": {"feedforward": ["x"]}}, "dets.ia3", "feedforward"),
])
def test_bad_settings_are_refused_naming_the_key(dets_cfg, key, words):
    with pytest.raises(ConfigError) as info:
        validated(dets_cfg)
    lines = str(info.value).splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"config: {key}") and words in lines[0], lines


def test_a_budget_beyond_the_backbone_and_unknown_modules_are_named(cfg):
    # 2 layers x (4 attention projections 32 x 32, and the feed-forward 32 x 64 and 64 x 32)
    with pytest.raises(dets.DETError, match=r"^dets\.apet\.budget: 10000000 entries, but the 12 target weights "
                                            r"hold only 16384$"):
        classifier(cfg, "apet", budget=10**7)
    with pytest.raises(dets.DETError, match=r"dets\.ia3\.feedforward_modules: \['nothing'\] match none"):
        classifier(cfg, "ia3", feedforward_modules=["nothing"])
    with pytest.raises(dets.DETError, match=r"target_modules \['nothing'\] match no linear module"):
        classifier(cfg, "apet", target_modules=["nothing"])


def test_ia3_rescales_outputs_and_feedforward_inputs(cfg):
    model, expected = classifier(cfg, "ia3", target_modules=[r"attention\.self\.key$"])
    assert Layout.of_trainable(model).size == expected == 2 * 32  # output scaling of each layer's key
    model, expected = classifier(cfg, "ia3", feedforward_modules=[r"attention\.self\.key$"])
    assert expected == 2 * (32 + 32 + 32)  # the key now scales its input (32), the FFN output its output (32)
    assert Layout.of_trainable(model).size == expected


@pytest.mark.parametrize("kind", ["encoder", "causal", "seq2seq"])
@pytest.mark.parametrize("det", ["ia3", "apet"])
def test_a_training_step_changes_the_output_and_only_the_det(cfg, det, kind):
    model, expected = classifier(cfg, det, kind=kind)
    assert Layout.of_trainable(model).size == expected
    enc = model.collate(model.encode(TEXTS))
    before = model(**enc).detach()
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.05)
    loss = torch.nn.functional.cross_entropy(model(**enc), torch.tensor([1, 0, 1, 0]))
    loss.backward()
    optimizer.step()
    assert not torch.allclose(model(**enc), before)
    assert all(torch.equal(p, frozen[n]) for n, p in model.named_parameters() if n in frozen)


def test_apet_weights_are_the_backbone_plus_the_flat_vector_at_the_entries(cfg):
    model, _ = classifier(cfg, "apet")
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    layout = Layout.of(params)
    vector = torch.randn(layout.size)
    with torch.no_grad():  # how the landscape writes a decoded vector into a DET's tensors
        for name, tensor in layout.unflatten(vector).items():
            params[name].copy_(tensor)
    assert torch.equal(layout.flatten(params), vector)
    modules = dict(model.named_modules())
    for name, tensor in layout.unflatten(vector).items():
        module = modules[name.removesuffix(".parametrizations.weight.0.delta")]
        original = module.parametrizations.weight.original
        index = module.parametrizations.weight[0].index
        change = (module.weight - original).flatten()
        torch.testing.assert_close(change[index], tensor)  # (w + d) - w: d up to rounding
        assert int((change != 0).sum()) <= len(index)


@pytest.mark.parametrize("det", ["ia3", "apet"])
def test_decoded_codes_give_what_the_written_tensors_give(cfg, det):
    """The subspace stages' two ways to use a code: functional_call (over many codes at once, with vmap) and
    the decoded tensors written into the DET's own parameters."""
    model, _ = classifier(cfg, det)
    layout = Layout.of_trainable(model)
    init = layout.flatten({n: p for n, p in model.named_parameters() if p.requires_grad})
    generator = torch.Generator().manual_seed(0)
    projection = torch.randn(layout.size, 2, generator=generator) * 0.5
    decoded = Decoded(model, layout, projection, torch.zeros(layout.size), init)
    split = Split(model.encode(TEXTS), torch.tensor([1, 0, 1, 0]).numpy())
    codes = torch.randn(3, 2, generator=generator)
    together = predict_codes(decoded, split, codes, 4, torch.device("cpu"), points=3)
    one_by_one = predict_codes(decoded, split, codes, 4, torch.device("cpu"), points=1)
    assert (together == one_by_one).all()
    z = codes[0].clone().requires_grad_(True)
    decoded.set_code(z.detach())
    decoded(**model.collate(model.encode(TEXTS))).sum().backward()
    assert decoded.z.grad is not None and decoded.z.grad.abs().sum() > 0
    assert (predict(model, split, 4, torch.device("cpu")) == one_by_one[-1]).all()  # last code written in


def test_the_workflow_runs_ia3_and_apet_end_to_end(tmp_path):
    """Every stage through the report on the tiny config restricted to the two (apet's budget: IA3's count), cut to
    fewer jobs: two seen tasks and the unseen mr, optimised on mr only."""
    def only_the_two(c: dict) -> None:
        c["dets"] = {"ia3": {}, "apet": {"budget_like": "ia3"}}
        c["tasks"] = [t for t in c["tasks"] if t["name"] != "rte"]
        c["subspace"] |= {"dims": [2], "tasks": ["mr"]}

    config = tiny_with(tmp_path, "ia3_apet.yaml", only_the_two)
    work = tmp_path / "run"
    result = snakemake(work, config)
    assert result.returncode == 0, result.stderr[-4000:]
    results = work / "results"
    stacked = {det: load_tensors(results / "stacked" / f"{det}.safetensors") for det in ("ia3", "apet")}
    assert stacked["ia3"][0]["delta"].shape == stacked["apet"][0]["delta"].shape == (3, 2 * (32 + 32 + 64))
    _, meta = load_tensors(results / "subspace" / "svd-d2" / "projections.safetensors")
    assert set(meta["det_configs"]) == {"ia3", "apet"}
    transfer = pd.concat(load_table(path) for path in (results / "transfer").rglob("*.parquet"))
    assert {"ia3", "apet"} <= set(transfer.to_numpy().ravel().tolist())
    assert list((results / "landscape").rglob("*.parquet"))
    page = (results / "report" / "index.md").read_text()
    assert "ia3" in page and "apet" in page
