"""The share of the gap closed and its intervals (deltaspace.stats, deltaspace.gaps) on planted predictions."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from deltaspace.gaps import NOT_MEASURABLE, answer, gap_table, headline_markdown, headline_table, task_runs
from deltaspace.stats import accuracy, difference, gap_closed, resamples

N = 400  # test examples


def correct_at(share: float, seed: int) -> np.ndarray:
    """A correctness row with exactly `share` of N examples right, at random places."""
    row = np.zeros(N, dtype=bool)
    row[np.random.default_rng(seed).permutation(N)[: round(share * N)]] = True
    return row


def test_paired_intervals_are_narrow_for_runs_that_differ_on_few_examples():
    index = resamples(N)
    a = correct_at(0.7, 0)
    b = a.copy()
    b[np.flatnonzero(a)[:20]] = False  # b loses 20 of a's right answers: 5 points, on the same examples
    d = difference(a, b, index)
    assert d.value == pytest.approx(0.05) and 0.02 < d.low < d.value < d.high < 0.08
    unpaired = difference(a, correct_at(0.65, 1), index)  # the same 5 points between unrelated runs
    assert unpaired.high - unpaired.low > 2 * (d.high - d.low)


def test_several_seeds_are_averaged_before_resampling():
    rows = np.stack([correct_at(0.6, 0), correct_at(0.8, 1)])
    value, samples = accuracy(rows, resamples(N))
    assert value == pytest.approx(0.7) and samples.shape == (2000,) and abs(samples.mean() - 0.7) < 0.01


def test_g_is_the_share_of_the_gap_and_not_measurable_without_a_gap():
    index = resamples(N)
    zero, original = correct_at(0.5, 0), correct_at(0.9, 1)
    half = correct_at(0.7, 2)
    gap = gap_closed(half, zero, original, index)
    assert gap.measurable and gap.g.value == pytest.approx(0.5) and gap.g.low < 0.5 < gap.g.high
    assert gap.gap.value == pytest.approx(0.4) and gap.gap.low > 0.3
    # an original run no better than zero-shot beyond its interval: g is not a number to report
    flat = gap_closed(half, zero, correct_at(0.52, 3), index)
    assert not flat.measurable and math.isnan(flat.g.value) and flat.gap.low <= 0


def predictions(rows: dict[tuple, np.ndarray], keys: tuple[str, ...], labels: np.ndarray) -> pd.DataFrame:
    """Prediction tables as the stages write them: a right answer predicts the label, a wrong one the other."""
    frames = []
    for values, right in rows.items():
        prediction = np.where(right, labels, 1 - labels)
        frame = pd.DataFrame({"example": np.arange(N), "label": labels, "prediction": prediction})
        frames.append(frame.assign(**dict(zip(keys, values))))
    return pd.concat(frames, ignore_index=True)


def report_frames(original_acc: float, found_acc: float, random_acc: float, task: str = "ood"):
    labels = np.random.default_rng(9).integers(0, 2, N)
    original = predictions({("lora", task, 0, "best"): correct_at(original_acc, 1),
                            ("lora", task, 0, "init"): correct_at(0.5, 2)}, ("det", "task", "seed", "point"), labels)
    optimized = predictions({("svd-d4", "lora", task, 0, "best"): correct_at(found_acc, 3),
                             ("random-d4", "lora", task, 0, "best"): correct_at(random_acc, 4)},
                            ("space", "det", "task", "seed", "point"), labels)
    merged = predictions({("lora", task, "best"): correct_at(0.55, 5)}, ("det", "task", "point"), labels)
    return original, optimized, merged


def headline_of(original_acc, found_acc, random_acc):
    runs = task_runs(*report_frames(original_acc, found_acc, random_acc))
    gaps = gap_table(runs, held_out=["ood"])
    return gaps, headline_table(runs, gaps, {("lora", "ood"): 0.5})


def test_the_headline_sets_found_random_merge_and_zero_shot_side_by_side():
    gaps, table = headline_of(0.9, 0.8, 0.55)
    assert set(gaps.space) == {"svd-d4", "random-d4", "merge", "zero-shot"}
    row = table.iloc[0]
    assert (row.space, row.control, row.task) == ("svd-d4", "random-d4", "ood") and not row.seen
    assert (row.found, row.random, row.merge, row.zero_shot, row.original) == pytest.approx((0.8, 0.55, 0.55, 0.5, 0.9))
    assert row.found_g == pytest.approx(0.75) and row.random_g == pytest.approx(0.125)
    assert row.difference == pytest.approx(0.25) and row.difference_low > 0.15
    assert row.verdict.startswith("found beats random by 25.0 points (95% CI +")
    text = headline_markdown(table)
    assert "0.75 [" in text and "+25.0 [" in text
    assert answer(table)[0].startswith("**lora**: on ood in svd-d4 the found subspace closes g = 0.75 [")


def test_an_unseen_task_whose_original_run_does_not_beat_zero_shot_says_not_measurable():
    """The task an out-of-domain check adds: the original run at 0.52 against zero-shot 0.50 on 400 examples."""
    _, table = headline_of(0.52, 0.51, 0.50)
    row = table.iloc[0]
    assert not row.measurable and math.isnan(row.found_g)
    assert NOT_MEASURABLE in row.verdict and "does not beat zero-shot" in row.verdict
    text = headline_markdown(table)
    assert text.count(NOT_MEASURABLE) == 3  # g of found, random and merge
    assert not any("nan" in cell.lower() for cell in text.split("|"))
    assert "reaches 0.510 (random 0.500, zero-shot 0.500)" in answer(table)[0]


def test_random_beating_found_and_a_tie_are_said_so():
    _, worse = headline_of(0.9, 0.6, 0.8)
    assert worse.iloc[0].verdict.startswith("random beats found by 20.0 points")
    _, tie = headline_of(0.9, 0.7, 0.7)
    assert tie.iloc[0].verdict.startswith("no clear difference: +0.0 points")


def test_predictions_on_other_test_examples_are_refused():
    original, optimized, merged = report_frames(0.9, 0.8, 0.55)
    optimized.loc[optimized.example == 0, "label"] = 1 - optimized.loc[optimized.example == 0, "label"]
    with pytest.raises(ValueError, match="not on the same test examples"):
        task_runs(original, optimized, merged)
