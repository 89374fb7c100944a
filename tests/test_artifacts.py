"""Artifacts: atomic writes, clear errors for damaged files, and stacking deltas by their layout."""
from __future__ import annotations

import pandas as pd
import pytest
import torch

from deltaspace.delta import INIT, TRAINED, Layout
from deltaspace.io import ArtifactError, atomic_path, load_table, load_tensors, save_table, save_tensors
from deltaspace.stages.stack_deltas import stack_deltas


def test_failed_write_leaves_nothing(tmp_path):
    target = tmp_path / "out" / "delta.safetensors"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half a file")
        raise RuntimeError("killed")
    assert not target.exists() and list(target.parent.iterdir()) == []


def test_failed_rewrite_keeps_the_old_file(tmp_path):
    target = tmp_path / "t.parquet"
    save_table(target, pd.DataFrame({"a": [1]}))
    with pytest.raises(RuntimeError), atomic_path(target):
        raise RuntimeError("killed")
    assert load_table(target).a.tolist() == [1]


def test_damaged_files_are_named(tmp_path):
    bad = tmp_path / "delta.safetensors"
    bad.write_bytes(b"\x00" * 12)
    with pytest.raises(ArtifactError, match="delta.safetensors: not a readable safetensors"):
        load_tensors(bad)
    with pytest.raises(ArtifactError, match="missing"):
        load_table(tmp_path / "nope.parquet")


def fake_run(tmp_path, task: str, seed: int, shapes: dict, acc: float, det_config=None):
    """A delta.safetensors and metrics.parquet as train_det writes them."""
    gen = torch.Generator().manual_seed(seed + len(task))
    init = {n: torch.randn(s, generator=gen) for n, s in shapes.items()}
    trained = {n: t + torch.randn(t.shape, generator=gen) for n, t in init.items()}
    layout = Layout.of(trained)
    folder = tmp_path / task / f"seed{seed}"
    meta = {"backbone": {"id": "b"}, "det_config": det_config or {"method": "lora", "r": 1}, "task": task,
            "seed": seed, "layout": layout.to_json()}
    save_tensors(folder / "delta.safetensors",
                 {TRAINED + n: t for n, t in trained.items()} | {INIT + n: t for n, t in init.items()}, meta)
    save_table(folder / "metrics.parquet", pd.DataFrame(
        [{"det": "lora", "task": task, "seed": seed, "split": "validation", "metric": "accuracy", "value": acc}]))
    return folder / "delta.safetensors", folder / "metrics.parquet", trained, init


def test_stack_rows_follow_the_layout(tmp_path):
    shapes = {"b.weight": (3, 2), "a.weight": (4,)}
    runs = [fake_run(tmp_path, "t1", 0, shapes, 0.5), fake_run(tmp_path, "t2", 1, shapes, 0.75)]
    stack_deltas(det_name="lora", deltas=[r[0] for r in runs], metrics=[r[1] for r in runs],
                 stacked_path=tmp_path / "s.safetensors", index_path=tmp_path / "s.parquet")
    tensors, meta = load_tensors(tmp_path / "s.safetensors")
    layout = Layout.from_json(meta["layout"])
    assert tensors["delta"].shape == (2, 10) and layout.names == ("b.weight", "a.weight")
    for row, (_, _, trained, init) in enumerate(runs):
        for name, delta in layout.unflatten(tensors["delta"][row]).items():
            assert torch.equal(delta, trained[name] - init[name])
    index = load_table(tmp_path / "s.parquet")
    assert index.to_dict("list") == {"row": [0, 1], "task": ["t1", "t2"], "seed": [0, 1],
                                     "validation_accuracy": [0.5, 0.75]}


def test_stack_refuses_mixed_runs(tmp_path):
    first = fake_run(tmp_path, "t1", 0, {"a": (2,)}, 0.5)
    other = fake_run(tmp_path, "t2", 0, {"a": (3,)}, 0.5)
    with pytest.raises(ArtifactError, match="t2/seed0/delta.safetensors: its layout"):
        stack_deltas(det_name="lora", deltas=[first[0], other[0]], metrics=[first[1], other[1]],
                     stacked_path=tmp_path / "s.safetensors", index_path=tmp_path / "s.parquet")
    assert not (tmp_path / "s.safetensors").exists() and not (tmp_path / "s.parquet").exists()
