"""The training loop: reproducible on the CPU, best checkpoint kept, metrics complete."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from deltaspace.config.plan import task_config
from deltaspace.heads import build_classifier
from deltaspace.tasks import load_task
from deltaspace.train import Split, batches, scores, train

from conftest import ROOT


def run(tiny: dict, method: str, seed: int):
    task = load_task(task_config(tiny, "sst2"), tiny["data"], ROOT)
    classifier, _ = build_classifier(tiny["backbone"], tiny["dets"][method], task.labels, seed)
    splits = {name: Split.of(classifier, frame) for name, frame in task.splits.items()}
    return train(classifier, splits, tiny["train"], lr=1e-2, seed=seed, device=torch.device("cpu"))


@pytest.mark.parametrize("method", ["lora", "prefix"])
def test_same_seed_same_delta(tiny, method):
    first, second, other = run(tiny, method, 0), run(tiny, method, 0), run(tiny, method, 1)
    assert first.best.keys() == second.best.keys()
    for name in first.best:
        assert torch.equal(first.best[name], second.best[name]), name
    assert any(not torch.equal(first.best[n] - first.init[n], other.best[n] - other.init[n]) for n in first.best)


def test_metrics_and_history(tiny):
    result = run(tiny, "adapter", 0)
    got = {(m["split"], m["metric"]): m["value"] for m in result.metrics}
    for split in ("validation", "test"):
        for metric in ("accuracy", "macro_f1", "majority_accuracy"):
            assert 0.0 <= got[split, metric] <= 1.0
    assert got["train", "examples"] == tiny["train"]["epochs"] * tiny["data"]["max_train"]
    assert got["train", "examples_per_s"] > 0 and got["train", "trainable_params"] > 0
    assert len(result.history) == tiny["train"]["evals_per_epoch"] * tiny["train"]["epochs"]
    # the kept checkpoint is the best validation one, and the final validation accuracy is its accuracy
    best = max(h["validation_accuracy"] for h in result.history)
    assert got["validation", "accuracy"] == pytest.approx(best)


def test_batches_cover_every_example_once():
    split = Split(ids=[[1] * (i % 7 + 1) for i in range(103)], labels=np.zeros(103, dtype=np.int64))
    for gen in (torch.Generator().manual_seed(0), None):
        index = np.concatenate(batches(split, 8, gen))
        assert sorted(index.tolist()) == list(range(103))


def test_scores():
    got = scores(np.array([0, 1, 1, 1]), np.array([0, 1, 0, 1]), 2, majority=1)
    assert got["accuracy"] == 0.75 and got["majority_accuracy"] == 0.5
    assert got["macro_f1"] == pytest.approx((2 / 3 + 0.8) / 2)


def budget_run(tiny: dict, **budget):
    """The adapter on sst2 with a step budget (tiny: 64 examples, 4 batches of 16 an epoch) at a rate too small
    to change any prediction."""
    task = load_task(task_config(tiny, "sst2"), tiny["data"], ROOT)
    classifier, _ = build_classifier(tiny["backbone"], tiny["dets"]["adapter"], task.labels, 0)
    splits = {name: Split.of(classifier, frame) for name, frame in task.splits.items()}
    cfg = {key: value for key, value in tiny["train"].items() if key not in ("epochs", "evals_per_epoch")} | budget
    return train(classifier, splits, cfg, lr=1e-12, seed=0, device=torch.device("cpu"))


def test_a_step_budget_runs_on_across_epochs_and_evaluates_every_n_steps(tiny):
    result = budget_run(tiny, steps=10, eval_every=3, patience=None)
    got = {(m["split"], m["metric"]): m["value"] for m in result.metrics}
    assert [h["step"] for h in result.history] == [3, 6, 9, 10]  # and at the last step
    assert got["train", "steps"] == 10 and got["train", "examples"] == 160  # 2.5 epochs of 4 full batches
    assert result.history[-1]["epoch"] == pytest.approx(2.5)


def test_early_stopping_ends_a_run_after_patience_evaluations_without_a_better_one(tiny):
    result = budget_run(tiny, steps=40, eval_every=2, patience=3)
    # nothing changes at lr 1e-12: step 2 is the best, steps 4, 6 and 8 do not beat it, the run stops at 8
    assert [h["step"] for h in result.history] == [2, 4, 6, 8]
    got = {(m["split"], m["metric"]): m["value"] for m in result.metrics}
    assert got["train", "steps"] == 8 and got["train", "best_step"] == 2
    assert set(result.predictions) == {"test_init", "test"}
    assert (result.predictions["test"] == result.predictions["test_init"]).all()
