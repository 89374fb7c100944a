"""Bootstrap intervals over test examples, paired across runs.

Every run of one task is scored on the same test examples, so one resampling of those examples is applied to
every run at once: a difference between two runs (found vs random subspace, original vs zero-shot) keeps the
pairing, and its interval is far narrower than the two accuracies' intervals would suggest. A run's
`correct` is a (rows, examples) boolean array: one row per seed (several seeds of one setting are averaged),
its accuracy the mean over rows and examples.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DRAWS = 2000  # bootstrap resamples
LEVEL = 0.95


def resamples(examples: int, draws: int = DRAWS, seed: int = 0) -> np.ndarray:
    """Indices (draws, examples) of the bootstrap resamples of a test split, seeded: the same report twice
    gives the same intervals."""
    if examples < 1:
        raise ValueError("no test examples to resample")
    return np.random.default_rng(seed).integers(0, examples, size=(draws, examples))


def _rows(correct) -> np.ndarray:
    array = np.asarray(correct, dtype=np.float64)
    return array[None] if array.ndim == 1 else array


def accuracy(correct, index: np.ndarray) -> tuple[float, np.ndarray]:
    """A run's accuracy and its value on every resample (draws,)."""
    rows = _rows(correct)
    per_example = rows.mean(0)  # averaged over seeds first: the resample picks examples, not seeds
    return float(per_example.mean()), per_example[index].mean(1)


def bounds(samples: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """The percentile interval of bootstrap samples (NaN where none is finite)."""
    finite = samples[np.isfinite(samples)]
    if finite.size == 0:
        return float("nan"), float("nan")
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(finite, [tail, 100 - tail])
    return float(low), float(high)


@dataclass(frozen=True)
class Estimate:
    value: float
    low: float
    high: float

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


def difference(a, b, index: np.ndarray, level: float = LEVEL) -> Estimate:
    """Accuracy of run a minus that of run b, with its paired interval."""
    va, sa = accuracy(a, index)
    vb, sb = accuracy(b, index)
    return Estimate(va - vb, *bounds(sa - sb, level))


@dataclass(frozen=True)
class Gap:
    """The share of the gap between zero-shot and the original-space run that a run closes,
    g = (acc - acc_zero_shot) / (acc_original - acc_zero_shot). Not measurable (g NaN) where the original
    run does not beat zero-shot by more than its interval: the gap's interval reaches 0."""

    g: Estimate
    gap: Estimate  # acc_original - acc_zero_shot
    measurable: bool


def gap_closed(run, zero_shot, original, index: np.ndarray, level: float = LEVEL) -> Gap:
    v_zero, s_zero = accuracy(zero_shot, index)
    v_orig, s_orig = accuracy(original, index)
    gap = Estimate(v_orig - v_zero, *bounds(s_orig - s_zero, level))
    if not gap.low > 0:
        nan = float("nan")
        return Gap(Estimate(nan, nan, nan), gap, False)
    v_run, s_run = accuracy(run, index)
    with np.errstate(divide="ignore", invalid="ignore"):
        samples = (s_run - s_zero) / (s_orig - s_zero)
    return Gap(Estimate((v_run - v_zero) / gap.value, *bounds(samples, level)), gap, True)
