"""The joint decomposition on planted structure, and classifiers whose DET tensors are decoded from a code."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml

from deltaspace import subspace as subspace_module
from deltaspace.decoded import Decoded, predict_codes
from deltaspace.delta import Layout
from deltaspace.heads import build_classifier
from deltaspace.subspace import SubspaceError, decompose
from deltaspace.train import Split, predict

from conftest import TINY, llama_backbone

SIZES = {"lora": 600, "adapter": 450, "prefix": 80}


def planted(rows=12, dim=3, noise=1e-4, seed=0, scales=None):
    """Stacks b + A W^T + noise from one shared code matrix A (rows x dim); per DET its own W and scale."""
    g = torch.Generator().manual_seed(seed)
    codes = torch.randn(rows, dim, generator=g, dtype=torch.float64)
    stacks, bases = {}, {}
    for det, size in SIZES.items():
        scale = (scales or {}).get(det, 1.0)
        bases[det] = torch.randn(size, dim, generator=g, dtype=torch.float64)
        mean = torch.randn(size, generator=g, dtype=torch.float64)
        clean = mean + codes @ bases[det].T
        stacks[det] = (scale * (clean + noise * torch.randn(rows, size, generator=g, dtype=torch.float64))).float()
    return stacks, codes, bases


def principal_cosines(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    qa, _ = torch.linalg.qr(a.double())
    qb, _ = torch.linalg.qr(b.double())
    return torch.linalg.svdvals(qa.T @ qb)


# The tests below up to test_bad_stacks_are_named decompose as `offset: mean` (centred): the planted stacks
# have a mean; the paper's `offset: init` has tests of its own after them.
def test_svd_recovers_a_planted_subspace_and_its_codes():
    stacks, codes, bases = planted()
    space = decompose(stacks, 3, offset="mean")
    assert space.dets == list(SIZES) and space.codes.shape == (12, 3)
    for det, basis in bases.items():
        assert space.projections[det].shape == (SIZES[det], 3) and space.offsets[det].shape == (SIZES[det],)
        # principal angles between the recovered and the planted column spaces are all near zero
        assert principal_cosines(space.projections[det], basis).min() > 0.9999, det
    # the codes equal the planted ones (centred) up to an invertible linear map
    centred = codes - codes.mean(0)
    fit = torch.linalg.lstsq(centred, space.codes.double()).solution
    assert torch.allclose(centred @ fit, space.codes.double(), atol=1e-3)
    assert torch.linalg.cond(fit) < 1e3
    # whitened codes: mean 0, unit variance, uncorrelated
    assert torch.allclose(space.codes.mean(0), torch.zeros(3), atol=1e-5)
    assert torch.allclose(space.codes.T @ space.codes / 12, torch.eye(3), atol=1e-4)
    assert space.explained.sum() > 0.999 and torch.all(space.singular_values[:-1] >= space.singular_values[1:])


def test_decoding_codes_rebuilds_the_solutions():
    stacks, _, _ = planted(noise=1e-4)
    space = decompose(stacks, 3, offset="mean")
    for det, stack in stacks.items():
        rebuilt = space.decode(det, space.codes)
        assert (rebuilt - stack).norm() / stack.norm() < 1e-3
        # decode(encode(x)) reconstructs one training delta
        one = stack[5]
        assert (space.decode(det, space.encode(det, one)) - one).norm() / one.norm() < 1e-3
        assert torch.allclose(space.encode(det, stack), space.codes, atol=1e-2)


def test_every_det_weighs_the_same_whatever_its_scale():
    stacks, _, _ = planted(noise=0.05)
    scaled, _, _ = planted(noise=0.05, scales={"lora": 1000.0, "prefix": 1e-3})
    a, b = decompose(stacks, 2, offset="mean"), decompose(scaled, 2, offset="mean")
    assert torch.allclose(a.codes, b.codes, atol=1e-3)
    assert torch.allclose(b.projections["lora"], 1000.0 * a.projections["lora"], rtol=1e-3, atol=1e-3)


def test_chunked_reading_gives_the_same_subspace(monkeypatch):
    stacks, _, _ = planted(noise=0.1)
    whole = decompose(stacks, 2, offset="mean")
    monkeypatch.setattr(subspace_module, "_CHUNK", 7)
    chunked = decompose(stacks, 2, offset="mean")
    assert torch.allclose(whole.codes, chunked.codes, atol=1e-5)
    for det in stacks:
        assert torch.allclose(whole.projections[det], chunked.projections[det], atol=1e-5)


def test_truncation_keeps_the_strongest_directions():
    stacks, _, bases = planted(noise=1e-6)
    # make direction 0 dominate in every DET: a 1-d subspace must find it
    g = torch.Generator().manual_seed(1)
    strong = torch.randn(12, 1, generator=g, dtype=torch.float64) * 100
    stacks = {det: (s.double() + strong @ bases[det][:, :1].T).float() for det, s in stacks.items()}
    space = decompose(stacks, 1, offset="mean")
    for det, basis in bases.items():
        assert principal_cosines(space.projections[det], basis[:, :1]).min() > 0.999


@pytest.mark.parametrize(
    ("stacks", "dim", "message"),
    [
        ({"a": torch.randn(4, 5), "b": torch.randn(4, 3)}, 4, "span at most 3 directions"),
        ({"a": torch.randn(4, 5), "b": torch.randn(5, 3)}, 2, "same rows"),
        ({"a": torch.randn(4, 5), "b": torch.ones(4, 3)}, 2, "b: its 4 solutions are all equal"),
        ({"a": torch.randn(4)}, 1, "rows x entries"),
        ({}, 1, "no stacks"),
        ({"a": torch.randn(4, 5)}, 0, "use 1 <= dim <= 3"),
    ],
)
def test_bad_stacks_are_named(stacks, dim, message):
    with pytest.raises(SubspaceError, match=message):
        decompose(stacks, dim, offset="mean")


def planted_through_init(rows=6, dim=3, seed=0):
    """Stacks A W^T (no mean: every solution a combination of dim directions from the initial values)."""
    g = torch.Generator().manual_seed(seed)
    codes = torch.randn(rows, dim, generator=g, dtype=torch.float64) + 2.0  # far from 0, like trained solutions
    bases = {det: torch.randn(size, dim, generator=g, dtype=torch.float64) for det, size in SIZES.items()}
    return {det: (codes @ b.T).float() for det, b in bases.items()}, bases


def test_offset_init_decodes_zero_to_the_initial_values_and_spans_every_solution():
    stacks, bases = planted_through_init()
    space = decompose(stacks, 3)  # the default offset: init
    assert space.offset == "init" and space.name == "svd-d3"
    for det, stack in stacks.items():
        assert torch.equal(space.offsets[det], torch.zeros(SIZES[det]))
        assert torch.equal(space.decode(det, torch.zeros(3)), torch.zeros(SIZES[det]))  # z = 0: no delta at all
        assert principal_cosines(space.projections[det], bases[det]).min() > 0.9999, det
        assert (space.decode(det, space.codes) - stack).norm() / stack.norm() < 1e-4
    # uncentred: the solutions' own mean direction is in the subspace, so the codes do not average to zero
    assert space.codes.mean(0).abs().max() > 0.5
    assert torch.allclose(space.codes.T @ space.codes / 6, torch.eye(3), atol=1e-4)


def test_offset_init_allows_as_many_directions_as_solutions_and_mean_one_fewer():
    stacks = {"a": torch.randn(4, 9, generator=torch.Generator().manual_seed(0))}
    assert decompose(stacks, 4).dim == 4
    with pytest.raises(SubspaceError, match="span at most 3 directions around their mean"):
        decompose(stacks, 4, offset="mean")
    with pytest.raises(SubspaceError, match="span at most 4 directions; use 1 <= dim <= 4"):
        decompose(stacks, 5)
    with pytest.raises(SubspaceError, match="unknown offset 'middle'"):
        decompose(stacks, 2, offset="middle")


@pytest.mark.parametrize("offset", ["init", "mean"])
def test_the_random_control_has_the_found_ones_size_scale_and_offset_but_other_directions(offset):
    from deltaspace.subspace import random_like

    stacks, bases = planted_through_init(rows=8)
    found = decompose(stacks, 3, offset=offset)
    control = random_like(found, stacks, seed=0)
    assert control.name == ("random-d3" if offset == "init" else "random-mean-d3")
    for det in stacks:
        p, q = found.projections[det], control.projections[det]
        assert q.shape == p.shape and torch.equal(control.offsets[det], found.offsets[det])
        assert torch.allclose(q.norm(dim=0), p.norm(dim=0), rtol=1e-5)  # column by column, the found one's scale
        unit = q / q.norm(dim=0)
        assert torch.allclose(unit.T @ unit, torch.eye(3), atol=1e-5)  # orthogonal directions
        assert principal_cosines(q, bases[det]).max() < 0.5  # not the solutions' directions
    # seeded: the same seed draws the same control, another seed another one
    again, other = random_like(found, stacks, seed=0), random_like(found, stacks, seed=1)
    assert all(torch.equal(again.projections[d], control.projections[d]) for d in stacks)
    assert not torch.allclose(other.projections["lora"], control.projections["lora"])
    # its codes are the solutions' least-squares codes there, averaged over the DETs
    expected = torch.stack([control.encode(det, stacks[det]) for det in stacks]).mean(0)
    assert torch.allclose(control.codes, expected)


def test_unknown_method_and_bad_codes_are_named():
    stacks, _, _ = planted()
    with pytest.raises(SubspaceError, match="unknown decomposition method 'pca'"):
        decompose(stacks, 2, method="pca")
    space = decompose(stacks, 2)
    with pytest.raises(SubspaceError, match="2 entries"):
        space.decode("lora", torch.zeros(3))
    with pytest.raises(SubspaceError, match="no DET 'bitfit'"):
        space.decode("bitfit", torch.zeros(2))
    with pytest.raises(SubspaceError, match="lora: a delta has 600 entries"):
        space.encode("lora", torch.zeros(5))


# -- decoded classifiers on tiny random backbones -----------------------------------------------------------
def decoded_model(tiny, det: str, dim: int = 3, seed: int = 0, backbone: dict | None = None
                  ) -> tuple[Decoded, torch.nn.Module, Layout]:
    classifier, _ = build_classifier(backbone or tiny["backbone"], tiny["dets"][det], ["negative", "positive"], seed)
    layout = Layout.of_trainable(classifier)
    init = layout.flatten({n: p for n, p in classifier.named_parameters() if p.requires_grad})
    g = torch.Generator().manual_seed(seed)
    projection = torch.randn(layout.size, dim, generator=g) * 0.05
    offset = torch.randn(layout.size, generator=g) * 0.01
    z = torch.randn(dim, generator=g)
    return Decoded(classifier, layout, projection, offset, init, z), classifier, layout


def batch(model):
    enc = model.collate(model.encode(["a fine film", "dull and far too long", "it works"]))
    return enc["input_ids"], enc["attention_mask"]


DETS = list(yaml.safe_load(TINY.read_text())["dets"])  # configs/tiny.yaml's DETs (ia3, apet: tests/test_ia3_apet.py)


@pytest.mark.parametrize("det", DETS)
def test_gradients_reach_the_code_through_the_frozen_model(tiny, det):
    model, classifier, _ = decoded_model(tiny, det)
    before = {n: p.detach().clone() for n, p in classifier.named_parameters()}
    assert [n for n, p in model.named_parameters() if p.requires_grad] == ["z"]
    logits = model(*batch(model))
    F.cross_entropy(logits, torch.tensor([1, 0, 1])).backward()
    assert model.z.grad is not None and model.z.grad.abs().sum() > 0
    assert all(p.grad is None for p in classifier.parameters())
    torch.optim.SGD([model.z], lr=1.0).step()
    # nothing of the model itself changed: the decoded tensors were only handed to it
    assert all(torch.equal(p, before[n]) for n, p in classifier.named_parameters())


@pytest.mark.parametrize("det", DETS)
def test_decoded_tensors_have_the_det_shapes_and_act_like_loaded_ones(tiny, det):
    model, classifier, layout = decoded_model(tiny, det)
    tensors = model.tensors()
    params = dict(classifier.named_parameters())
    assert list(tensors) == list(layout.names)
    assert all(tuple(t.shape) == tuple(params[n].shape) for n, t in tensors.items())
    model.eval()
    with torch.no_grad():
        functional = model(*batch(model))
        labels = model.label_embeddings()
        for name, t in tensors.items():  # the same values loaded into the model the ordinary way
            params[name].copy_(t)
        assert torch.allclose(functional, classifier(*batch(model)), atol=1e-5)
        assert torch.allclose(labels, classifier.label_embeddings(), atol=1e-5)


@pytest.mark.parametrize(("kind", "det"), [("encoder", d) for d in DETS] + [("causal", "lora"), ("causal", "prefix")])
def test_many_codes_in_one_pass_predict_what_one_code_at_a_time_does(tiny, det, kind):
    # the landscape's batched sweep (vmap over codes) against writing each code into the model in turn
    backbone = tiny["backbone"] if kind == "encoder" else llama_backbone(tiny)
    model, _, _ = decoded_model(tiny, det, backbone=backbone)
    model.eval()
    texts = ["a fine film", "dull and far too long", "it works", "no", "the best two hours of the year, maybe"]
    split = Split(model.encode(texts), np.array([1, 0, 1, 0, 1]))
    codes = torch.randn(7, 3, generator=torch.Generator().manual_seed(1)) * 4
    cpu, enc = torch.device("cpu"), model.collate(split.ids)
    expected, logits = [], []
    for z in codes:
        model.set_code(z)
        expected.append(predict(model, split, 2, cpu))
        with torch.no_grad():
            logits.append(model(**enc))
    assert not torch.allclose(logits[0], logits[1], atol=1e-3)  # the codes do lead to different models
    assert torch.allclose(model.logits_at(codes, **enc), torch.stack(logits), atol=1e-4)
    for points in (1, 3, 7):
        assert np.array_equal(predict_codes(model, split, codes, 2, cpu, points=points), np.stack(expected))


def test_a_projection_that_does_not_fit_the_det_is_refused(tiny):
    classifier, _ = build_classifier(tiny["backbone"], tiny["dets"]["lora"], ["a", "b"], 0)
    layout = Layout.of_trainable(classifier)
    with pytest.raises(SubspaceError, match="do not fit"):
        Decoded(classifier, layout, torch.zeros(layout.size + 1, 2), torch.zeros(layout.size), torch.zeros(layout.size))
