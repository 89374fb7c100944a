"""The report's tables: seed spread, methods compared on the same solutions, and the paper's numbers beside ours."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from deltaspace.paper import SINGLE_TASK_ROWS, SINGLE_TASK_TRANSFER
from deltaspace.tables import (
    methods_markdown,
    methods_table,
    original_table,
    paper_markdown,
    paper_table,
    seed_spread,
    within_spread,
)


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
                             "relative": base + shift + noise, "subspace": 0.7, "original": 0.8})
    return pd.DataFrame(rows)


def trans_frame():
    rows = []
    for space in ("svd-d4", "learned-d4"):
        for source in ("lora", "adapter"):
            for target in ("lora", "adapter"):
                for seed in (0, 1):
                    rows.append({"space": space, "task": "mr", "seed": seed, "source": source, "target": target,
                                 "relative": 0.7 + 0.1 * (source == "lora") + 0.01 * seed, "accuracy": 0.6})
    return pd.DataFrame(rows)


def test_methods_are_compared_at_the_same_dim_with_their_spread():
    table = methods_table(sub_frame(), trans_frame())
    opt = table[table.what == "optimisation"].set_index("det")
    assert set(opt.space) == {"learned-d4"} and set(opt.reference) == {"svd-d4"}
    assert opt.loc["lora", "difference"] == pytest.approx(0.05)
    assert opt.loc["lora", "spread"] == "outside"  # 5 points apart, seeds spread by 1.4
    transfer = table[table.what == "transfer"]
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


def test_original_table_has_mean_std_and_seed_count():
    frame = pd.DataFrame({"det": ["lora"] * 2, "task": ["mr"] * 2, "seed": [0, 1], "split": ["test"] * 2,
                          "metric": ["accuracy"] * 2, "value": [0.7, 0.8]})
    row = original_table(frame).iloc[0]
    assert row["mean"] == pytest.approx(0.75) and row["std"] == pytest.approx(0.0707, abs=1e-4) and row.seeds == 2
