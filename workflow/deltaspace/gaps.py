"""The share of the gap closed, against its baselines: the report's answer to the run's question.

Per subspace, DET and optimised task: the accuracy of the kept codes, the paper's relative performance
(accuracy / the original-space run's) and the share of the gap closed between zero-shot and the original-space
run, g = (acc - acc_zero_shot) / (acc_original - acc_zero_shot), each with a 95% bootstrap interval over the
test examples (deltaspace.stats) and the spread over seeds. The same for the baselines that need no search:
the merge of the source solutions and zero-shot. The headline sets each found subspace beside its random
control on the unseen tasks, and says in words what that shows.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .names import SpaceName
from .stats import Estimate, accuracy, bounds, difference, gap_closed, resamples

NOT_MEASURABLE = "not measurable"


class Runs:
    """Every run's test predictions of one task as boolean correctness rows, checked to be on one test split."""

    def __init__(self, task: str, original: pd.DataFrame, optimized: pd.DataFrame, merged: pd.DataFrame):
        self.task = task
        labels = None
        for name, frame in (("original", original), ("optimized", optimized), ("merge", merged)):
            for _, run in frame.groupby([c for c in ("space", "det", "seed", "point") if c in frame], sort=False):
                run = run.sort_values("example")
                if labels is None:
                    labels = run.label.to_numpy()
                elif len(run) != len(labels) or not np.array_equal(run.label.to_numpy(), labels):
                    raise ValueError(f"{task}: the {name} predictions are not on the same test examples as the others "
                                     "(another data config?): rerun the jobs that wrote them")
        self.labels = labels
        self.index = resamples(len(labels))
        self._frames = {"original": original, "optimized": optimized, "merge": merged}

    @property
    def optimized(self) -> pd.DataFrame:
        return self._frames["optimized"]

    def seeds(self, det: str, space: str | None = None) -> list[int]:
        """The seeds this DET (in this space) was optimised from."""
        frame = self.optimized[self.optimized.det == det]
        return sorted(frame[frame.space == space].seed.unique().tolist() if space else frame.seed.unique().tolist())

    def correct(self, kind: str, point: str = "best", **keys) -> np.ndarray:
        """Rows (one per seed) of per-example correctness of the runs of `kind` that match `keys`."""
        frame = self._frames[kind]
        frame = frame[frame.point == point]
        for key, value in keys.items():
            frame = frame[frame[key].isin(value if isinstance(value, list) else [value])]
        if frame.empty:
            return np.empty((0, len(self.labels)), dtype=bool)
        wide = frame.pivot_table(index=[c for c in ("space", "seed") if c in frame], columns="example",
                                 values="prediction", aggfunc="first")
        return wide.to_numpy() == self.labels


def task_runs(original: pd.DataFrame, optimized: pd.DataFrame, merged: pd.DataFrame) -> dict[str, Runs]:
    """Runs per optimised task: the predictions of the original-space runs, the optimised codes and the merges."""
    return {task: Runs(task, original[original.task == task], frame, merged[merged.task == task])
            for task, frame in optimized.groupby("task", sort=True)}


def gap_table(runs: dict[str, Runs], held_out: list[str]) -> pd.DataFrame:
    """One row per (space, det, task) of the optimised runs, plus the baselines `merge` and `zero-shot` per
    (det, task): accuracy, relative performance and g with their intervals and seed spreads."""
    rows = []
    for task, one in runs.items():
        for det, per_det in one.optimized.groupby("det", sort=True):
            seeds = one.seeds(det)
            zero = one.correct("original", "init", det=det, seed=seeds)
            orig = one.correct("original", "best", det=det, seed=seeds)
            candidates = [(space, one.correct("optimized", det=det, space=space, seed=seeds))
                          for space in sorted(per_det.space.unique())]
            candidates += [("merge", one.correct("merge", det=det)), ("zero-shot", zero)]
            for space, run in candidates:
                rows.append(_row(space, det, task, task not in held_out, seeds, run, zero, orig, one.index))
    return pd.DataFrame(rows)


def _row(space, det, task, seen, seeds, run, zero, orig, index) -> dict:
    acc, samples = accuracy(run, index)
    acc_low, acc_high = bounds(samples)
    orig_acc, zero_acc = float(np.mean(orig)), float(np.mean(zero))  # the point values; gap_closed resamples them
    gap = gap_closed(run, zero, orig, index)
    per_seed_g = [(r.mean() - z.mean()) / (o.mean() - z.mean()) if gap.measurable else math.nan
                  for r, z, o in zip(run, zero, orig)] if len(run) == len(zero) == len(orig) else []
    relative = [r.mean() / o.mean() for r, o in zip(run, orig)] if len(run) == len(orig) else [acc / orig_acc]
    return {"space": space, "det": det, "task": task, "seen": seen, "seeds": len(seeds), "accuracy": acc,
            "accuracy_low": acc_low, "accuracy_high": acc_high, "original": orig_acc, "zero_shot": zero_acc,
            "relative": float(np.mean(relative)), "relative_std": _std(relative),
            "measurable": gap.measurable, "g": gap.g.value, "g_low": gap.g.low, "g_high": gap.g.high,
            "g_std": _std(per_seed_g), "gap": gap.gap.value, "gap_low": gap.gap.low, "gap_high": gap.gap.high}


def _std(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.std(finite, ddof=1)) if len(finite) > 1 else float("nan")


def headline_table(runs: dict[str, Runs], gaps: pd.DataFrame, majority: dict) -> pd.DataFrame:
    """Per found subspace, DET and unseen task: found, random, merge, zero-shot and original side by side (g
    with intervals) and the paired difference found - random in accuracy, with the verdict in words."""
    rows = []
    unseen = gaps[~gaps.seen] if (~gaps.seen).any() else gaps  # a run without unseen tasks: its seen ones
    for (space, det, task), found in unseen.groupby(["space", "det", "task"], sort=True):
        name = _space_name(space)
        if name is None or name.is_control:
            continue
        control = str(name.control())
        by_space = unseen[(unseen.det == det) & (unseen.task == task)].set_index("space")
        f = found.iloc[0]
        seeds = runs[task].seeds(det, space)
        a = runs[task].correct("optimized", det=det, space=space, seed=seeds)
        b = runs[task].correct("optimized", det=det, space=control, seed=seeds)
        diff = difference(a, b, runs[task].index) if len(b) else Estimate(math.nan, math.nan, math.nan)
        row = {"space": space, "det": det, "task": task, "seen": bool(f.seen), "seeds": int(f.seeds),
               "original": f.original, "zero_shot": f.zero_shot, "majority": float(majority.get((det, task), math.nan)),
               "measurable": bool(f.measurable), "found": f.accuracy, "found_g": f.g, "found_g_low": f.g_low,
               "found_g_high": f.g_high, "control": control if control in by_space.index else "",
               "difference": diff.value, "difference_low": diff.low, "difference_high": diff.high}
        for label, key in (("random", control), ("merge", "merge")):
            other = by_space.loc[key] if key in by_space.index else None
            row |= {label: other.accuracy if other is not None else math.nan,
                    f"{label}_g": other.g if other is not None else math.nan,
                    f"{label}_g_low": other.g_low if other is not None else math.nan,
                    f"{label}_g_high": other.g_high if other is not None else math.nan}
        row["verdict"] = verdict(row)
        rows.append(row)
    return pd.DataFrame(rows)


def _space_name(space: str) -> SpaceName | None:
    try:
        return SpaceName.parse(space)
    except ValueError:
        return None


def verdict(row: dict) -> str:
    """The found subspace against the random one in words (accuracy points, 95% interval), and whether the
    gap is measurable at all."""
    if not row["control"]:
        return "no random control in this run (subspace.control: false)"
    d, low, high = (100 * row[k] for k in ("difference", "difference_low", "difference_high"))
    interval = f"95% CI {low:+.1f} to {high:+.1f}"
    if low > 0:
        said = f"found beats random by {d:.1f} points ({interval})"
    elif high < 0:
        said = f"random beats found by {-d:.1f} points ({interval})"
    else:
        said = f"no clear difference: {d:+.1f} points ({interval})"
    if not row["measurable"]:
        said += (f"; g {NOT_MEASURABLE}: the original-space run ({row['original']:.3f}) does not beat zero-shot "
                 f"({row['zero_shot']:.3f}) beyond its interval")
    return said


def _g(value: float, low: float, high: float, measurable: bool = True) -> str:
    if not measurable:
        return NOT_MEASURABLE
    if math.isnan(value):
        return "-"
    return f"{value:.2f} [{low:.2f}, {high:.2f}]"


def headline_markdown(table: pd.DataFrame) -> str:
    if table.empty:
        return "No task was optimised in a found subspace: nothing to answer."
    lines = []
    for r in table.itertuples():
        lines.append({
            "DET": r.det, "task": f"{r.task} (seen)" if r.seen else r.task, "subspace": r.space,
            "original": f"{r.original:.3f}", "found": f"{r.found:.3f}", "random": _acc(r.random),
            "merge": _acc(r.merge), "zero-shot": f"{r.zero_shot:.3f}", "majority": _acc(r.majority),
            "g found": _g(r.found_g, r.found_g_low, r.found_g_high, r.measurable),
            "g random": _g(r.random_g, r.random_g_low, r.random_g_high, r.measurable),
            "g merge": _g(r.merge_g, r.merge_g_low, r.merge_g_high, r.measurable),
            "found - random": "-" if math.isnan(r.difference) else
            f"{100 * r.difference:+.1f} [{100 * r.difference_low:+.1f}, {100 * r.difference_high:+.1f}]",
        })
    where = "the seen tasks (no task is held out)" if table.seen.any() else "the unseen tasks"
    return (f"Test accuracy on {where}; g = (accuracy - zero-shot) / (original - zero-shot), the share of "
            "the gap closed, with its 95% bootstrap interval over test examples; found - random in accuracy points "
            "(paired interval). Random: a random subspace of the same dimension and scale, searched with the same "
            "budget from the same start; merge: the initial values plus a scaled mean of the source solutions.\n\n"
            + pd.DataFrame(lines).to_markdown(index=False, disable_numparse=True))


def gaps_markdown(table: pd.DataFrame) -> str:
    """Every subspace and baseline per task and DET: accuracy [95% CI], relative %, g [95% CI] (± over seeds)."""
    if table.empty:
        return "No code was optimised."
    lines = []
    for r in table.itertuples():
        g = _g(r.g, r.g_low, r.g_high, r.measurable)
        if r.measurable and not math.isnan(r.g_std):
            g += f" ± {r.g_std:.2f}"
        lines.append({"task": f"{r.task} ({'seen' if r.seen else 'unseen'})", "DET": r.det, "run": r.space,
                      "seeds": str(r.seeds),
                      "accuracy": f"{r.accuracy:.3f} [{r.accuracy_low:.3f}, {r.accuracy_high:.3f}]",
                      "relative %": f"{100 * r.relative:.1f}" + ("" if math.isnan(r.relative_std)
                                                                 else f" ± {100 * r.relative_std:.1f}"),
                      "g": g, "original": f"{r.original:.3f}", "zero-shot": f"{r.zero_shot:.3f}",
                      "gap (original - zero-shot)": f"{r.gap:+.3f} [{r.gap_low:+.3f}, {r.gap_high:+.3f}]"})
    return ("Accuracy with its 95% bootstrap interval over test examples; relative = accuracy / original (the paper's "
            "metric); g = the share of the gap between zero-shot and the original-space run closed, 95% interval, ± "
            f"the spread over seeds; '{NOT_MEASURABLE}' where the original run does not beat zero-shot beyond the "
            "interval of their difference.\n\n" + pd.DataFrame(lines).to_markdown(index=False, disable_numparse=True))


def _acc(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.3f}"


def answer(table: pd.DataFrame) -> list[str]:
    """One sentence per DET: on its unseen tasks, does the found subspace beat the random one."""
    out = []
    for det, rows in table.groupby("det", sort=True):
        parts = []
        for r in rows.itertuples():
            closes = (f"closes g = {_g(r.found_g, r.found_g_low, r.found_g_high)} of the gap (random "
                      f"{_g(r.random_g, r.random_g_low, r.random_g_high)})" if r.measurable
                      else f"reaches {r.found:.3f} (random {_acc(r.random)}, zero-shot {r.zero_shot:.3f})")
            task = f"{r.task} (seen)" if r.seen else r.task
            parts.append(f"on {task} in {r.space} the found subspace {closes}: {r.verdict}")
        out.append(f"**{det}**: " + "; ".join(parts) + ".")
    return out
