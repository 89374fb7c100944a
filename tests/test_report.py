"""The report's tables: each number traced to the stage row it comes from, seed spread, methods compared on the
same solutions, and the paper's numbers beside ours."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from deltaspace.paper import SINGLE_TASK_ROWS, SINGLE_TASK_TRANSFER
from deltaspace.tables import (
    landscape_table,
    methods_markdown,
    methods_table,
    original_table,
    paper_markdown,
    paper_table,
    seed_spread,
    subspace_table,
    transfer_table,
    within_spread,
)

DETS, TASKS, SEEDS = ("adapter", "lora", "prefix"), ("mr", "sst2"), (0, 1)
SPACES = ("svd-d1", "svd-d3", "random-d1", "random-d3")


def stage_tables(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """What train_det, optimize_subspace and transfer write (long tables), every value distinct, so that a
    number taken from the wrong DET, task, seed or space cannot pass for the right one."""
    values = iter(np.random.default_rng(seed).permutation(1000) / 1000 + 1e-4)
    original = pd.DataFrame([{"det": d, "task": t, "seed": s, "split": "test", "metric": m, "value": next(values)}
                             for d, t, s in itertools.product(DETS, TASKS, SEEDS)
                             for m in ("accuracy", "accuracy_at_init", "majority_accuracy")])
    optimized = pd.DataFrame([{"space": sp, "det": d, "task": t, "seed": s, "split": split, "metric": m,
                               "value": next(values)}
                              for sp, d, t, s in itertools.product(SPACES, DETS, TASKS, SEEDS)
                              for split, m in (("test", "accuracy"), ("test", "accuracy_at_init"),
                                               ("validation", "accuracy"))])
    transfer = pd.DataFrame([{"space": sp, "task": t, "seed": s, "source": a, "target": b, "split": "test", "metric": m,
                              "value": next(values)}
                             for sp, t, s, a, b in itertools.product(SPACES, TASKS, SEEDS, DETS, DETS)
                             for m in ("accuracy", "majority_accuracy")])
    return original, optimized, transfer


def value(frame: pd.DataFrame, metric: str, **keys) -> float:
    rows = frame[(frame.metric == metric) & (frame.split == "test")]
    for key, wanted in keys.items():
        rows = rows[rows[key] == wanted]
    assert len(rows) == 1, (metric, keys)
    return float(rows.value.iloc[0])


def test_every_subspace_table_number_is_its_stage_rows_value():
    original, optimized, _ = stage_tables()
    table = subspace_table(original, optimized, held_out=["mr"])
    assert len(table) == len(SPACES) * len(DETS) * len(TASKS) * len(SEEDS)  # no row lost, none made up
    assert not table.isna().any().any()
    for r in table.itertuples():
        run = {"det": r.det, "task": r.task, "seed": r.seed}
        assert r.subspace == value(optimized, "accuracy", space=r.space, **run)
        assert r.start == value(optimized, "accuracy_at_init", space=r.space, **run)
        assert r.original == value(original, "accuracy", **run)
        assert r.zero_shot == value(original, "accuracy_at_init", **run)
        assert r.majority == value(original, "majority_accuracy", **run)
        assert r.relative == value(optimized, "accuracy", space=r.space, **run) / value(original, "accuracy", **run)
        assert r.seen == (r.task != "mr")


def test_every_transfer_table_number_is_its_stage_rows_value():
    original, optimized, transfer = stage_tables(1)
    table = transfer_table(original, transfer, subspace_table(original, optimized, held_out=["mr"]))
    assert len(table) == len(SPACES) * len(TASKS) * len(SEEDS) * len(DETS) ** 2
    assert not table.isna().any().any()
    for r in table.itertuples():
        pair = {"space": r.space, "task": r.task, "seed": r.seed, "source": r.source, "target": r.target}
        assert r.accuracy == value(transfer, "accuracy", **pair)
        assert r.majority == value(transfer, "majority_accuracy", **pair)
        assert r.target_original == value(original, "accuracy", det=r.target, task=r.task, seed=r.seed)
        assert r.relative == r.accuracy / value(original, "accuracy", det=r.target, task=r.task, seed=r.seed)
        assert r.target_zero_shot == value(original, "accuracy_at_init", det=r.target, task=r.task, seed=r.seed)
        control = r.space.replace("svd", "random")  # beside each pair: the target's own code in the control
        assert r.target_random == value(optimized, "accuracy", space=control, det=r.target, task=r.task, seed=r.seed)


def test_a_missing_original_run_is_a_gap_the_tables_show():
    original, optimized, transfer = stage_tables(2)
    gone = (original.det == "lora") & (original.seed == 1)
    sub = subspace_table(original[~gone], optimized, held_out=[])
    assert sub[(sub.det == "lora") & (sub.seed == 1)].original.isna().all()  # shown as missing, not dropped
    assert sub[sub.det != "lora"].original.notna().all()


def test_landscape_table_counts_the_grid_where_every_det_holds_up():
    grid = pd.DataFrame([{"space": "svd-d2", "task": "mr", "seed": 0, "a": a, "b": b, "det": det, "metric": "accuracy",
                          "value": value}
                         for (a, b), values in {(0, 0): (0.9, 0.8), (0, 1): (0.5, 0.8), (1, 0): (0.85, 0.4),
                                                (1, 1): (0.88, 0.79)}.items()
                         for det, value in zip(("lora", "prefix"), values)])
    solutions = pd.DataFrame([{"space": "svd-d2", "task": "mr", "seed": 0, "det": d, "a": 0.0, "b": 0.0}
                              for d in ("lora", "prefix")])
    original = pd.DataFrame([{"det": d, "task": "mr", "seed": 0, "split": "test", "metric": m, "value": v}
                             for d, values in (("lora", (1.0, 0.5)), ("prefix", (0.8, 0.6)))
                             for m, v in zip(("accuracy", "accuracy_at_init"), values)])
    row = landscape_table(grid, solutions, original, threshold=0.9).iloc[0]
    # gap closed: lora 0.5 + 0.9 x 0.5 = 0.95, prefix 0.6 + 0.9 x 0.2 = 0.78: no point holds for lora
    assert row.share_of_gap == 0.0 and row.points == 4
    row = landscape_table(grid, solutions, original, threshold=0.7).iloc[0]
    # 0.85 and 0.74: (0, 0) and (1, 1) hold for both; (1, 0) fails prefix, (0, 1) fails lora
    assert row.share_of_gap == 0.5
    row = landscape_table(grid, solutions, original, threshold=0.9).iloc[0]
    # original: lora 1.0, prefix 0.8 -> thresholds 0.9 / 0.72: only (0,0)
    assert row.share_of_original == 0.25
    assert (row.best_lora, row.best_prefix, row.plane) == (0.9, 0.8, "lora prefix")
    assert (row.zero_shot_lora, row.original_prefix) == (0.5, 0.8)


def test_seed_spread_averages_within_each_seed_first():
    frame = pd.DataFrame({"seed": [0, 0, 1, 1], "task": ["a", "b", "a", "b"], "relative": [0.8, 1.0, 0.6, 1.0]})
    mean, std, n = seed_spread(frame, "relative")
    # per seed: 0.9 and 0.8 -> mean 0.85, sample std 0.0707
    assert n == 2 and mean == pytest.approx(0.85) and std == pytest.approx(math.sqrt(0.005))
    mean, std, n = seed_spread(frame[frame.seed == 0], "relative")
    assert n == 1 and mean == pytest.approx(0.9) and math.isnan(std)


@pytest.mark.parametrize(("difference", "stds", "word"), [
    (0.01, (0.02, 0.005), "within"), (-0.03, (0.02, 0.01), "outside"), (0.5, (float("nan"),), "one seed"),
    (0.02, (float("nan"), 0.02), "within"),
])
def test_within_spread(difference, stds, word):
    assert within_spread(difference, *stds) == word


def sub_frame():
    rows = []
    for space, shift in [("svd-d4", 0.0), ("learned-d4", 0.05)]:
        for det, base in [("lora", 0.80), ("adapter", 0.90)]:
            for seed, noise in [(0, -0.01), (1, 0.01)]:
                rows.append({"space": space, "det": det, "task": "mr", "seed": seed, "seen": False,
                             "relative": base + shift + noise, "subspace": 0.7, "original": 0.8, "zero_shot": 0.4})
    for det in ("lora", "adapter"):  # the control of both: relative 0.75 / 0.8
        rows += [{"space": "random-d4", "det": det, "task": "mr", "seed": seed, "seen": False, "relative": 0.9375,
                  "subspace": 0.75, "original": 0.8, "zero_shot": 0.4} for seed in (0, 1)]
    return pd.DataFrame(rows)


def trans_frame():
    rows = []
    for space in ("svd-d4", "learned-d4"):
        for source in ("lora", "adapter"):
            for target in ("lora", "adapter"):
                for seed in (0, 1):
                    rows.append({"space": space, "task": "mr", "seed": seed, "source": source, "target": target,
                                 "relative": 0.7 + 0.1 * (source == "lora") + 0.01 * seed, "accuracy": 0.6,
                                 "target_original": 0.8, "target_zero_shot": 0.4, "target_random": 0.6})
    return pd.DataFrame(rows)


def test_methods_are_compared_at_the_same_dim_with_their_spread():
    table = methods_table(sub_frame(), trans_frame())
    assert set(table.space) == {"learned-d4", "random-d4"} and set(table.reference) == {"svd-d4"}
    opt = table[(table.what == "optimisation") & (table.space == "learned-d4")].set_index("det")
    assert opt.loc["lora", "difference"] == pytest.approx(0.05)
    assert opt.loc["lora", "spread"] == "outside"  # 5 points apart, seeds spread by 1.4
    transfer = table[(table.what == "transfer") & (table.space == "learned-d4")]
    assert len(transfer) == 1 and transfer.difference.iloc[0] == pytest.approx(0.0)
    assert transfer.spread.iloc[0] == "within"
    text = methods_markdown(table)
    assert "learned-d4 against svd-d4" in text and "+5.0" in text


def test_paper_numbers_sit_beside_ours_by_det_method():
    sub = sub_frame().replace({"det": {"lora": "my_lora"}})
    trans = trans_frame().replace({"source": {"lora": "my_lora"}, "target": {"lora": "my_lora"}})
    methods = {"my_lora": "lora", "adapter": "adapter"}
    table = paper_table(sub, trans, "single_task", {"mr": "SST-2 -> Rotten Tomatoes"}, methods)
    row = table[(table.space == "svd-d4") & (table.what == "optimisation") & (table.task == "mr")
                & (table.det == "my_lora")].iloc[0]
    assert row.paper == SINGLE_TASK_ROWS["SST-2 -> Rotten Tomatoes"]["lora"] and row.ours == pytest.approx(80.0)
    assert row.spread == "outside"
    pair = table[(table.space == "svd-d4") & (table.det == "my_lora -> adapter")].iloc[0]
    assert pair.paper == SINGLE_TASK_TRANSFER[("lora", "adapter")] and pair.seeds == 2
    text = paper_markdown(table, "single_task")
    assert "mr (SST-2 -> Rotten Tomatoes)" in text and "/ 100.1 (outside)" in text and "Table 2" in text
    # the baselines beside ours: the control's relative performance (0.75 / 0.8) and zero-shot's (0.4 / 0.8)
    assert (row.random, row.zero_shot) == (pytest.approx(93.75), pytest.approx(50.0))
    assert (pair.random, pair.zero_shot) == (pytest.approx(75.0), pytest.approx(50.0))
    assert "random 93.8, zero-shot 50.0" in text and "random-d4" not in set(table.space)


def test_original_table_has_mean_std_and_seed_count():
    frame = pd.DataFrame({"det": ["lora"] * 2, "task": ["mr"] * 2, "seed": [0, 1], "split": ["test"] * 2,
                          "metric": ["accuracy"] * 2, "value": [0.7, 0.8]})
    row = original_table(frame).iloc[0]
    assert row["mean"] == pytest.approx(0.75) and row["std"] == pytest.approx(0.0707, abs=1e-4) and row.seeds == 2


def test_learned_says_how_far_it_moved_from_its_start():
    from deltaspace.tables import learned_markdown, learned_table

    history = pd.DataFrame([{"space": "learned-d4", "det": det, "step": step, "task_loss": loss, "distance": dist,
                             "up_moved": up, "down_moved": down}
                            for det, scale in (("lora", 1.0), ("prefix", 2.0))
                            for step, loss, dist, up, down in ((50, 0.9, 3.0, 0.001, 0.01), (100, 0.5, 2.0, 0.004, 0.02))
                            for loss, dist, up, down in [(loss * scale, dist, up * scale, down)]])
    table = learned_table(history.sample(frac=1.0, random_state=0))  # rows in any order
    row = table.set_index("det").loc["prefix"]
    assert (row.steps, row.task_loss_first, row.task_loss_last, row.up_moved) == (100, 1.8, 1.0, 0.008)
    text = learned_markdown(table)
    assert "learned-d4, prefix: in 100 steps the up-projection moved 0.80% of its norm" in text
    assert "task loss 0.900 -> 0.500" in text


def _headline(tasks: tuple[str, ...]) -> pd.DataFrame:
    row = dict(space="svd-d3", det="lora", seen=False, seeds=1, original=0.8, zero_shot=0.5, majority=0.5,
               measurable=True, found=0.7, random=0.6, merge=0.6, difference=0.1, difference_low=0.02,
               difference_high=0.18, **{f"{w}_g{s}": v for w, v in (("found", 0.67), ("random", 0.33), ("merge", 0.33))
                                          for s in ("", "_low", "_high")})
    return pd.DataFrame([{**row, "task": t} for t in tasks])


@pytest.mark.parametrize("tasks", [("mr",), ("mr", "cr")])
def test_the_page_leads_with_the_pooled_table_only_when_many_tasks_are_unseen(tasks, tmp_path):
    from deltaspace.stages.report import TITLES, _index, many_unseen

    headline = _headline(tasks)
    sections = {"headline": (headline, "EVERY-SUBSPACE"), "pooled": (headline, "POOLED-TABLE"),
                "original": (headline, "ORIGINAL-TABLE")}
    _index(tmp_path, sections, ["an answer"], [], headline, list(tasks), 0.9, None, many_unseen(headline))
    page = (tmp_path / "index.md").read_text()
    first_heading = page.split("## The answer", 1)[1].split("\n## ", 1)[1].splitlines()[0]
    per_task = page.index("| lora ")  # the per-task headline table's first row
    if len(tasks) > 1:
        assert first_heading == TITLES["pooled"]
        assert page.index("POOLED-TABLE") < per_task and page.count("POOLED-TABLE") == 1
        assert page.rindex("<details>", 0, per_task) > page.index("POOLED-TABLE")  # the per-task table is folded
    else:
        assert first_heading == TITLES["headline"]
        assert per_task < page.index("POOLED-TABLE") and "<details><summary>" + TITLES["pooled"] in page
    assert "ORIGINAL-TABLE" in page and (tmp_path / "index.html").exists()
