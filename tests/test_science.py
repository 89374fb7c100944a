"""The claims the workflow exists for, checked on a task the tiny random backbone can learn in seconds.

The task: a text of one or two common words says "present" when the word "zebra" occurs in it, else
"absent". The stages run as the workflow runs them (the library's stage functions, without Snakemake's
start-up per job): LoRA and adapter trained from three seeds (one shared init), stacked, decomposed into a
subspace of 2 dimensions (which holds each of the three seen solutions exactly), codes optimised on two
seeds, transferred, reported. Each test then recomputes a number independently and holds the stages to it.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from deltaspace.config.plan import train_params
from deltaspace.delta import TRAINED, Layout
from deltaspace.heads import build_classifier
from deltaspace.io import PROVENANCE, load_table, load_tensors, save_table, save_tensors
from deltaspace.spacefile import load_space
from deltaspace.stages.decompose import decompose_stacks
from deltaspace.stages.merge import merge
from deltaspace.stages.optimize_subspace import optimize_subspace
from deltaspace.stages.report import build_report
from deltaspace.stages.stack_deltas import read_delta, stack_deltas
from deltaspace.stages.train_det import train_det
from deltaspace.stages.transfer import transfer
from deltaspace.tasks import load_task
from deltaspace.train import Split, predict, train

from conftest import ROOT

DETS = {"lora": 0.1, "adapter": 0.05}  # learning rates (the adapter of 2 dimensions learns little here)
SEEDS = (0, 1, 2)  # training seeds: three solutions per DET, a 3-dimensional subspace through the init holds them all
OPTIMISED = (0, 1)  # seeds optimised in the subspace
DIM = 3
SPACE = f"svd-d{DIM}"
CONTROL = f"random-d{DIM}"  # its random control: same dimension, offset and scale
WORDS = "the a of and to in is was it for on with as by at from this that be are or an not but all".split()


def marker_frame(rows: int, seed: int) -> pd.DataFrame:
    """`rows` texts of the marker task."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(rows):
        words = list(rng.choice(WORDS, size=int(rng.integers(1, 3))))
        present = bool(rng.integers(2))
        if present:
            words.insert(int(rng.integers(len(words) + 1)), "zebra")
        out.append({"text": " ".join(words), "label": "present" if present else "absent"})
    return pd.DataFrame(out)


class Run:
    """Where the stages of one run wrote their outputs, and the settings they ran with."""

    def __init__(self, root: Path, cfg: dict):
        self.root, self.cfg = root, cfg
        self.task = {"name": "marker", "source": "file", "path": "marker"}
        self.data = cfg["data"] | {"root": str(root / "tasks")}
        self.backbone = cfg["backbone"]
        self.dets = {det: cfg["dets"][det] | {"lr": lr} for det, lr in DETS.items()}

    def det(self, det: str, seed: int) -> Path:
        return self.root / "dets" / det / f"seed{seed}"

    def optimized(self, det: str, seed: int, space: str = SPACE) -> Path:
        return self.root / "optimized" / space / det / f"seed{seed}"

    @property
    def space(self) -> Path:
        return self.root / "subspace" / SPACE

    @property
    def control(self) -> Path:
        return self.root / "subspace" / CONTROL

    def task_data(self):
        return load_task(self.task, self.data, ROOT)


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_config) -> Run:
    root = tmp_path_factory.mktemp("science")
    (root / "tasks" / "marker").mkdir(parents=True)
    for split, rows, seed in [("train", 256, 1), ("validation", 64, 2), ("test", 128, 3)]:
        marker_frame(rows, seed).to_parquet(root / "tasks" / "marker" / f"{split}.parquet")
    r = Run(root, tiny_config)
    settings = train_params(tiny_config) | {"epochs": 4, "evals_per_epoch": 2}
    common = {"backbone": r.backbone, "data": r.data, "base_dir": ROOT, "device": "cpu", "threads": 1}
    for det, det_cfg in r.dets.items():
        for seed in SEEDS:
            out = r.det(det, seed)
            train_det(**common, task=r.task, train_cfg=settings, det_name=det, det_cfg=det_cfg, seed=seed,
                      delta_path=out / "delta.safetensors", metrics_path=out / "metrics.parquet",
                      predictions_path=out / "predictions.parquet")
        stack_deltas(det_name=det, deltas=[r.det(det, s) / "delta.safetensors" for s in SEEDS],
                     metrics=[r.det(det, s) / "metrics.parquet" for s in SEEDS],
                     stacked_path=root / "stacked" / f"{det}.safetensors", index_path=root / "stacked" / f"{det}.parquet")
        merge(**common, stacked=root / "stacked" / f"{det}.safetensors", index=root / "stacked" / f"{det}.parquet",
              det_name=det, det_cfg=det_cfg, task=r.task, held_out=[], scales=[0.5, 1.0], eval_batch_size=32,
              table_path=root / "merge" / f"{det}.parquet", predictions_path=root / "merge" / f"{det}.predictions.parquet")
    stacks = {"stacked": {d: root / "stacked" / f"{d}.safetensors" for d in DETS},
              "indexes": {d: root / "stacked" / f"{d}.parquet" for d in DETS}}
    for method, folder in (("svd", r.space), ("random", r.control)):
        decompose_stacks(method=method, dim=DIM, held_out=[], **stacks, projections_path=folder / "projections.safetensors",
                         codes_path=folder / "codes.parquet", reconstruction_path=folder / "reconstruction.parquet")
    # 64 steps of 16 examples (4 epochs of the 256), an evaluation every 8
    optimize = tiny_config["subspace"]["optimize"] | {"lr": 0.5, "steps": 64, "eval_every": 8, "patience": None,
                                                      "batch_size": 16}
    for seed in OPTIMISED:
        for det, det_cfg in r.dets.items():
            for space, folder in ((SPACE, r.space), (CONTROL, r.control)):
                out = r.optimized(det, seed, space)
                optimize_subspace(**common, space_path=folder / "projections.safetensors", det_name=det,
                                  det_cfg=det_cfg, task=r.task, optimize_cfg=optimize, seed=seed,
                                  z_path=out / "z.safetensors", metrics_path=out / "metrics.parquet",
                                  history_path=out / "history.parquet", predictions_path=out / "predictions.parquet")
        transfer(**common, space_path=r.space / "projections.safetensors",
                 z_paths={d: r.optimized(d, seed) / "z.safetensors" for d in DETS},
                 metrics_paths={d: r.optimized(d, seed) / "metrics.parquet" for d in DETS}, det_configs=r.dets,
                 task=r.task, eval_batch_size=32, seed=seed, table_path=root / "transfer" / f"seed{seed}.parquet")
    runs = [(d, s, space) for d in DETS for s in OPTIMISED for space in (SPACE, CONTROL)]
    build_report(original=[r.det(d, s) / "metrics.parquet" for d in DETS for s in SEEDS],
                 original_predictions=[r.det(d, s) / "predictions.parquet" for d in DETS for s in SEEDS],
                 optimized=[r.optimized(d, s, space) / "metrics.parquet" for d, s, space in runs],
                 predictions=[r.optimized(d, s, space) / "predictions.parquet" for d, s, space in runs],
                 histories=[r.optimized(d, s, space) / "history.parquet" for d, s, space in runs],
                 merge=[root / "merge" / f"{d}.parquet" for d in DETS],
                 merge_predictions=[root / "merge" / f"{d}.predictions.parquet" for d in DETS],
                 codes=[r.space / "codes.parquet", r.control / "codes.parquet"],
                 transfer=[root / "transfer" / f"seed{s}.parquet" for s in OPTIMISED], landscape=[], solutions=[],
                 reconstruction=[r.space / "reconstruction.parquet"], held_out=[], threshold=0.9,
                 out_dir=root / "report")
    return r


def metric(path: Path, name: str, split: str = "test") -> float:
    table = load_table(path)
    rows = table[(table.metric == name) & (table.split == split)].value
    assert len(rows) == 1, f"{path}: {len(rows)} rows of {split} {name}"
    return float(rows.iloc[0])


def test_training_beats_the_majority_class_and_its_own_start(run):
    for seed in SEEDS:
        metrics = run.det("lora", seed) / "metrics.parquet"
        trained = metric(metrics, "accuracy")
        assert trained >= metric(metrics, "majority_accuracy") + 0.2, seed
        assert trained >= metric(metrics, "accuracy_at_init") + 0.15, seed


def test_optimising_in_a_subspace_that_holds_the_solution_recovers_it(run):
    for seed in OPTIMISED:
        original = metric(run.det("lora", seed) / "metrics.parquet", "accuracy")
        found = metric(run.optimized("lora", seed) / "metrics.parquet", "accuracy")
        assert found >= 0.9 * original, (seed, found, original)


def test_the_kept_code_is_never_worse_than_where_it_began(run):
    """Start at a seen solution's code and train with a learning rate that wrecks it: the start stays the best,
    and the code kept is the start itself (not the last one trained)."""
    space = load_space(run.space / "projections.safetensors")
    start = space.subspace.codes[0]
    task = run.task_data()
    classifier, _ = build_classifier(run.backbone, run.dets["lora"], task.labels, 0)
    model = space.decoded(classifier, "lora", start)
    splits = {name: Split.of(model, frame) for name, frame in task.splits.items()}
    settings = run.cfg["subspace"]["optimize"] | {"lr": 200.0, "steps": 16, "eval_every": 8, "patience": None,
                                                  "batch_size": 16, "warmup_ratio": 0.0}
    result = train(model, splits, settings, settings["lr"], 0, torch.device("cpu"), start_is_candidate=True)
    history = [h["validation_accuracy"] for h in result.history]
    assert history[0] > max(history[1:]), f"training did not make the code worse: {history}"  # the test has teeth
    assert torch.equal(result.best["z"], start)
    model.set_code(result.best["z"])
    again = float(np.mean(predict(model, splits["validation"], 32, torch.device("cpu")) == splits["validation"].labels))
    assert again == history[0] == next(m["value"] for m in result.metrics
                                       if m["split"] == "validation" and m["metric"] == "accuracy")


def decoded_predictions(run: Run, space, target: str, z: torch.Tensor, task) -> np.ndarray:
    """Test predictions of `target`'s model with its tensors decoded from z, built here from scratch."""
    classifier, _ = build_classifier(run.backbone, run.dets[target], task.labels, 0)
    layout = Layout.of_trainable(classifier)
    flat = space.inits[target] + space.subspace.decode(target, z)
    with torch.no_grad():
        for name, tensor in layout.unflatten(flat).items():
            dict(classifier.named_parameters())[name].copy_(tensor)
    return predict(classifier, Split.of(classifier, task.splits["test"]), 32, torch.device("cpu"))


def test_transfer_matches_an_independent_decode_of_each_pair(run):
    space = load_space(run.space / "projections.safetensors")
    task = run.task_data()
    labels = task.splits["test"]["label"].to_numpy()
    checked = 0
    for seed in OPTIMISED:
        table = load_table(run.root / "transfer" / f"seed{seed}.parquet")
        for source in DETS:
            z, _ = load_tensors(run.optimized(source, seed) / "z.safetensors")
            for target in DETS:
                if source == target:
                    continue
                row = table[(table.source == source) & (table.target == target) & (table.metric == "accuracy")]
                expected = float(np.mean(decoded_predictions(run, space, target, z["z"], task) == labels))
                assert float(row.value.iloc[0]) == pytest.approx(expected, abs=1e-9), (seed, source, target)
                checked += 1
    assert checked == len(OPTIMISED) * len(DETS) * (len(DETS) - 1)


def test_a_seen_rows_code_decodes_to_its_trained_tensors_and_predictions(run):
    space = load_space(run.space / "projections.safetensors")
    codes = load_table(run.space / "codes.parquet")
    task = run.task_data()
    for det in DETS:
        for seed in SEEDS:
            _, trained, init, _ = read_delta(run.det(det, seed) / "delta.safetensors")
            z = torch.tensor(codes[codes.seed == seed][[f"z{i}" for i in range(DIM)]].to_numpy()[0], dtype=torch.float32)
            decoded = space.inits[det] + space.subspace.decode(det, z)
            assert torch.allclose(decoded, trained, atol=1e-5, rtol=1e-4), (det, seed)
            assert torch.equal(space.inits[det], init)  # the DET's own init, not another DET's
            classifier, _ = build_classifier(run.backbone, run.dets[det], task.labels, 0)
            tensors, _ = load_tensors(run.det(det, seed) / "delta.safetensors")
            with torch.no_grad():
                for name, p in classifier.named_parameters():
                    if p.requires_grad:
                        p.copy_(tensors[TRAINED + name])
            test = Split.of(classifier, task.splits["test"])
            own = predict(classifier, test, 32, torch.device("cpu"))
            assert (decoded_predictions(run, space, det, z, task) == own).all(), (det, seed)
            # the stages' route: the model with its DET tensors decoded from z (functional_call)
            fresh, _ = build_classifier(run.backbone, run.dets[det], task.labels, 0)
            stages = predict(space.decoded(fresh, det, z), test, 32, torch.device("cpu"))
            assert (stages == own).all(), (det, seed)


def shuffled_stack(run: Run, det: str, order: list[int], folder: Path) -> tuple[Path, Path]:
    """A copy of a DET's stack with its rows (and their index) in another order."""
    tensors, meta = load_tensors(run.root / "stacked" / f"{det}.safetensors")
    index = load_table(run.root / "stacked" / f"{det}.parquet").iloc[order].reset_index(drop=True)
    meta.pop(PROVENANCE, None)
    stacked, table = folder / f"{det}.safetensors", folder / f"{det}.parquet"
    save_tensors(stacked, {k: v[order] for k, v in tensors.items()}, meta)
    save_table(table, index.assign(row=range(len(index))))
    return stacked, table


def test_stacks_in_other_row_orders_give_the_same_subspace(run, tmp_path):
    orders = {"lora": [2, 0, 1], "adapter": [1, 2, 0]}  # each DET's rows in its own order
    files = {det: shuffled_stack(run, det, order, tmp_path) for det, order in orders.items()}
    out = tmp_path / "space"
    decompose_stacks(method="svd", dim=DIM, held_out=[], stacked={d: f[0] for d, f in files.items()},
                     indexes={d: f[1] for d, f in files.items()}, projections_path=out / "p.safetensors",
                     codes_path=out / "c.parquet", reconstruction_path=out / "r.parquet")
    before, after = load_space(run.space / "projections.safetensors"), load_space(out / "p.safetensors")
    signs = torch.sign((before.subspace.codes * after.subspace.codes).sum(0))  # a direction may flip
    assert torch.allclose(after.subspace.codes * signs, before.subspace.codes, atol=1e-5)
    for det in DETS:
        assert torch.allclose(after.subspace.projections[det] * signs, before.subspace.projections[det], atol=1e-6)
        assert torch.equal(after.inits[det], before.inits[det])


def test_every_number_in_the_report_comes_from_the_stage_that_measured_it(run):
    report = run.root / "report"
    sub = load_table(report / "subspace.parquet")
    assert len(sub) == 2 * len(DETS) * len(OPTIMISED)  # the found subspace and its control
    for row in sub.itertuples():
        own = run.optimized(row.det, row.seed, row.space) / "metrics.parquet"
        original = run.det(row.det, row.seed) / "metrics.parquet"
        assert row.space in (SPACE, CONTROL) and row.task == "marker"
        assert row.subspace == metric(own, "accuracy")
        assert row.start == metric(own, "accuracy_at_init")
        assert row.original == metric(original, "accuracy")
        assert row.zero_shot == metric(original, "accuracy_at_init")
        assert row.majority == metric(original, "majority_accuracy")
        assert row.relative == pytest.approx(metric(own, "accuracy") / metric(original, "accuracy"), rel=1e-12)
    sub = sub[sub.space == SPACE]
    trans = load_table(report / "transfer.parquet")
    assert len(trans) == len(OPTIMISED) * len(DETS) ** 2
    for row in trans.itertuples():
        source = load_table(run.root / "transfer" / f"seed{row.seed}.parquet")
        measured = source[(source.source == row.source) & (source.target == row.target) & (source.metric == "accuracy")]
        assert row.accuracy == float(measured.value.iloc[0])
        assert row.target_original == metric(run.det(row.target, row.seed) / "metrics.parquet", "accuracy")
        assert row.target_random == metric(run.optimized(row.target, row.seed, CONTROL) / "metrics.parquet", "accuracy")
        assert row.relative == pytest.approx(row.accuracy / row.target_original, rel=1e-12)
    for table in report.glob("*.parquet"):
        frame = load_table(table)
        numbers = frame.select_dtypes("number")
        # a spread over one run (the merge) is NaN, and the merge's test accuracy stands in its kept row only
        numbers = numbers[[c for c in numbers if not c.endswith("std") and c != "test_accuracy"]]
        if "measurable" in frame:  # g is NaN exactly where it is not measurable (the adapter learns nothing here)
            g = [c for c in numbers if "g" in c.split("_") and "gap" not in c]
            assert g and numbers[g].isna().any(axis=1).equals(~frame.measurable.astype(bool)), table.name
            numbers = numbers.drop(columns=g)
        assert not numbers.isna().any().any(), f"{table.name} holds NaN"
    markdown = (report / "subspace.md").read_text()  # the same numbers as the Parquet table, as a reader sees them
    for det, rows in sub.groupby("det"):
        relative = rows.relative * 100
        cell = f"{relative.mean():.1f} ± {relative.std():.1f} ({rows.subspace.mean():.3f} / {rows.original.mean():.3f})"
        assert cell in markdown, (det, cell)


def correct(path: Path, point: str = "best") -> np.ndarray:
    frame = load_table(path)
    frame = frame[frame.point == point].sort_values("example")
    return (frame.prediction == frame.label).to_numpy()


def test_the_found_subspace_beats_a_random_one_of_its_size_from_the_same_start(run):
    """The control: the same budget and start in random directions of the same scale recovers far less than the
    subspace that holds the solutions; the report says so per DET."""
    for seed in OPTIMISED:
        found = metric(run.optimized("lora", seed) / "metrics.parquet", "accuracy")
        random = metric(run.optimized("lora", seed, CONTROL) / "metrics.parquet", "accuracy")
        assert found >= random + 0.05, (seed, found, random)
    headline = load_table(run.root / "report" / "headline.parquet").set_index("det")
    lora = headline.loc["lora"]
    assert lora.space == SPACE and lora.control == CONTROL and bool(lora.measurable)
    assert lora.difference_low > 0 and lora.verdict.startswith("found beats random by")
    assert lora.found_g_low > lora.random_g_high  # g's intervals apart
    answer = (run.root / "report" / "index.md").read_text()
    assert answer.index("## The answer") < answer.index("|")  # the answer before any table
    assert f"**lora**: on marker (seen) in {SPACE} the found subspace closes g = " in answer


def test_g_and_its_interval_are_computed_from_the_runs_predictions(run):
    """g = (acc - zero-shot) / (original - zero-shot) over both optimised seeds, each seed's code against its
    own original run and zero-shot, from the predictions each stage wrote."""
    gaps = load_table(run.root / "report" / "gaps.parquet")
    row = gaps[(gaps.space == SPACE) & (gaps.det == "lora")].iloc[0]
    found = np.mean([correct(run.optimized("lora", s) / "predictions.parquet").mean() for s in OPTIMISED])
    original = np.mean([correct(run.det("lora", s) / "predictions.parquet").mean() for s in OPTIMISED])
    zero = np.mean([correct(run.det("lora", s) / "predictions.parquet", "init").mean() for s in OPTIMISED])
    assert row.accuracy == pytest.approx(found) and row.original == pytest.approx(original)
    assert row.zero_shot == pytest.approx(zero)
    assert row.g == pytest.approx((found - zero) / (original - zero))
    assert row.g_low < row.g < row.g_high and row.accuracy_low < row.accuracy < row.accuracy_high
    # the predictions agree with the metrics the stages wrote
    assert correct(run.optimized("lora", 0) / "predictions.parquet").mean() == metric(
        run.optimized("lora", 0) / "metrics.parquet", "accuracy")


def test_the_search_travels_from_zero_shot_to_the_source_codes_scale(run):
    """Through the initial values (offset init) a code starts at N(0, 0.02), which decodes to nearly zero-shot,
    and has to travel about as far as the source solutions' codes lie."""
    norms = load_table(run.root / "report" / "norms.parquet")
    row = norms[(norms.space == SPACE) & (norms.det == "lora") & (norms.seed == 0)].iloc[0]
    assert row.z_norm_start < 0.1
    assert row.z_norm_end > 0.3 * row.source_min, row
    own = run.optimized("lora", 0) / "metrics.parquet"
    assert metric(own, "accuracy_at_init") == pytest.approx(metric(run.det("lora", 0) / "metrics.parquet",
                                                                   "accuracy_at_init"), abs=0.05)
    history = load_table(run.optimized("lora", 0) / "history.parquet")
    assert history.step.max() == 64 and list(history.step[:2]) == [0, 8]  # the start, then every 8 steps


def test_the_merge_keeps_the_scale_best_on_validation_and_scores_it_on_test(run):
    for det in DETS:
        table = load_table(run.root / "merge" / f"{det}.parquet")
        assert list(table.scale) == [0.5, 1.0] and table.kept.sum() == 1 and set(table.sources) == {len(SEEDS)}
        kept = table[table.kept].iloc[0]
        assert kept.validation_accuracy == table.validation_accuracy.max()
        assert kept.test_accuracy == correct(run.root / "merge" / f"{det}.predictions.parquet").mean()
    # the merge of LoRA's three marker solutions at scale 1 is their mean: it solves the task like each does
    lora = load_table(run.root / "merge" / "lora.parquet").set_index("scale")
    assert lora.loc[1.0].validation_accuracy >= metric(run.det("lora", 0) / "metrics.parquet", "accuracy",
                                                       "validation") - 0.1
