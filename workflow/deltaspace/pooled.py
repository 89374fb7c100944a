"""The answer pooled over unseen tasks: per DET and dimension, the mean share of the gap closed by the found
subspace against the random one, the dimension at which the found one closes half the gap, and transfer.

A task counts when it was unseen and its gap is measurable (its original-space run beats zero-shot beyond
the interval of their difference, deltaspace.gaps); the others are shown and left out of the means. The
intervals resample both what varies: the tasks (with replacement, the unit of the question "on tasks it
never saw") and, within each drawn task, its test examples (the paired resamples of deltaspace.stats).
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .gaps import NOT_MEASURABLE, Runs
from .names import SpaceName
from .stats import DRAWS, LEVEL, accuracy, bounds

HALF = 0.5  # "closes half the gap"
COLUMNS = ["space", "dim", "det", "control", "tasks", "left_out",
           *(f"{key}{end}" for key in ("found", "random", "difference") for end in ("", "_low", "_high")),
           "merge", "beats_random"]  # pooled_table's, also when no unseen task was optimised


def _samples(one: Runs, det: str, space: str) -> dict[str, np.ndarray] | None:
    """This run's g samples (found or random) and its accuracy samples, on the task's resamples."""
    seeds = one.seeds(det, space)
    run = one.correct("optimized", det=det, space=space, seed=seeds)
    if not len(run):
        return None
    _, s_zero = accuracy(one.correct("original", "init", det=det, seed=seeds), one.index)
    _, s_orig = accuracy(one.correct("original", "best", det=det, seed=seeds), one.index)
    _, s_run = accuracy(run, one.index)
    with np.errstate(divide="ignore", invalid="ignore"):
        return {"g": (s_run - s_zero) / (s_orig - s_zero), "accuracy": s_run}


def _pool(points: list[float], samples: list[np.ndarray], seed: int = 0) -> tuple[float, float, float]:
    """Mean over tasks with its interval: every draw resamples the tasks and takes each drawn task's value on
    that same draw of its examples."""
    if not points:
        return math.nan, math.nan, math.nan
    matrix = np.stack(samples)  # (tasks, draws)
    draws = matrix.shape[1]
    chosen = np.random.default_rng(seed).integers(0, len(points), size=(draws, len(points)))
    pooled = matrix[chosen, np.arange(draws)[:, None]].mean(1)
    return (float(np.mean(points)), *bounds(pooled, LEVEL))


def pooled_table(runs: dict[str, Runs], gaps: pd.DataFrame) -> pd.DataFrame:
    """One row per (found subspace, DET): over the unseen tasks with a measurable gap, the mean g of the found
    subspace, of its random control and of the merge, and the mean found - random accuracy, each with its
    interval; how many tasks count and which were left out."""
    if gaps.empty:
        return pd.DataFrame(columns=COLUMNS)
    unseen = gaps[~gaps.seen]
    rows = []
    for (space, det), found in unseen.groupby(["space", "det"], sort=True):
        name = _name(space)
        if name is None or name.is_control:
            continue
        control = str(name.control())
        counted = found[found.measurable].task.tolist()
        per = {"found": ([], []), "random": ([], []), "difference": ([], [])}
        for task in counted:
            a, b = _samples(runs[task], det, space), _samples(runs[task], det, control)
            if b is None:
                continue
            point = {key: gaps[(gaps.space == key) & (gaps.det == det) & (gaps.task == task)].iloc[0]
                     for key in (space, control)}
            for key, value, sample in (("found", point[space].g, a["g"]), ("random", point[control].g, b["g"]),
                                       ("difference", point[space].accuracy - point[control].accuracy,
                                        a["accuracy"] - b["accuracy"])):
                per[key][0].append(float(value))
                per[key][1].append(sample)
        merge = unseen[(unseen.space == "merge") & (unseen.det == det) & unseen.task.isin(counted)]
        row = {"space": space, "dim": name.dim, "det": det, "control": control, "tasks": len(per["found"][0]),
               "left_out": " ".join(sorted(set(found.task) - set(counted)))}
        for key, (points, samples) in per.items():
            value, low, high = _pool(points, samples)
            row |= {key: value, f"{key}_low": low, f"{key}_high": high}
        row["merge"] = float(merge.g.mean()) if len(merge) else math.nan
        row["beats_random"] = int(sum(_clear(runs[t], det, space, control) for t in counted))
        rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS)


def _clear(one: Runs, det: str, space: str, control: str) -> bool:
    a, b = _samples(one, det, space), _samples(one, det, control)
    return b is not None and bounds(a["accuracy"] - b["accuracy"])[0] > 0


def _name(space: str) -> SpaceName | None:
    try:
        return SpaceName.parse(space)
    except ValueError:
        return None


def half_gap_dim(pooled: pd.DataFrame, det: str, family: str) -> int | None:
    """The smallest dimension at which the found subspace's mean g reaches one half, or None."""
    rows = pooled[(pooled.det == det) & (pooled.space.map(lambda s: SpaceName.parse(s).family) == family)]
    reached = rows[rows.found >= HALF].dim
    return int(reached.min()) if len(reached) else None


def transfer_pooled(transfer: pd.DataFrame, gaps: pd.DataFrame) -> pd.DataFrame:
    """Per found subspace, source and target DET: the mean g of the source's code decoded as the target over the
    unseen tasks where the target's gap is measurable, with an interval over tasks, beside the mean g of the
    target's own code in the random control (the same tasks)."""
    if transfer.empty or gaps.empty:
        return pd.DataFrame()
    gap = gaps[~gaps.seen & gaps.measurable & (gaps.space == "zero-shot")][["det", "task"]]
    rows = transfer.merge(gap.rename(columns={"det": "target"}), on=["target", "task"])
    rows = rows.loc[np.array([not SpaceName.parse(s).is_control for s in rows.space], dtype=bool)]
    if rows.empty:
        return pd.DataFrame()
    width = rows.target_original - rows.target_zero_shot
    rows = rows.assign(g=(rows.accuracy - rows.target_zero_shot) / width,
                       random_g=(rows.target_random - rows.target_zero_shot) / width)
    out = []
    for (space, source, target), part in rows.groupby(["space", "source", "target"], sort=True):
        per_task = part.groupby("task")[["g", "random_g"]].mean()
        rng = np.random.default_rng(0)
        draws = rng.integers(0, len(per_task), size=(DRAWS, len(per_task)))
        out.append({"space": space, "dim": SpaceName.parse(space).dim, "source": source, "target": target,
                    "tasks": len(per_task), "g": float(per_task.g.mean()),
                    **dict(zip(("g_low", "g_high"), bounds(per_task.g.to_numpy()[draws].mean(1)))),
                    "target_random_g": float(per_task.random_g.mean())})
    return pd.DataFrame(out)


def shown_space(transfer: pd.DataFrame) -> str:
    """The subspace whose transfer the answer shows: svd's largest, else the largest."""
    return max(transfer.space.unique(), key=lambda s: (SpaceName.parse(s).method == "svd", SpaceName.parse(s).dim))


def _interval(value: float, low: float, high: float, scale: float = 1.0, sign: bool = False) -> str:
    if math.isnan(value):
        return "-"
    f = "{:+.2f}" if sign and scale == 1 else "{:+.1f}" if sign else "{:.2f}"
    return f"{f.format(scale * value)} [{f.format(scale * low)}, {f.format(scale * high)}]"


def pooled_markdown(pooled: pd.DataFrame, transfer: pd.DataFrame) -> str:
    if pooled.empty:
        return "No unseen task was optimised in a found subspace."
    lines = [{"DET": r.det, "subspace": r.space, "tasks": str(r.tasks),
              "g found": _interval(r.found, r.found_low, r.found_high),
              "g random": _interval(r.random, r.random_low, r.random_high),
              "g merge": "-" if math.isnan(r.merge) else f"{r.merge:.2f}",
              "found - random (pts)": _interval(r.difference, r.difference_low, r.difference_high, 100, True),
              "tasks where found beats random": f"{r.beats_random} of {r.tasks}",
              "left out (gap not measurable)": r.left_out or "none"}
             for r in pooled.sort_values(["det", "dim"]).itertuples()]
    text = ("Means over the unseen tasks whose original-space run beats zero-shot beyond its interval (the others "
            f"are left out, '{NOT_MEASURABLE}'): g = (accuracy - zero-shot) / (original - zero-shot), the share of "
            "the gap closed; 95% intervals resample the tasks and, within each, its test examples. Found - random: "
            "test accuracy, paired.\n\n" + pd.DataFrame(lines).to_markdown(index=False, disable_numparse=True))
    if len(transfer):
        largest = transfer[transfer.space == shown_space(transfer)]
        matrix = largest.pivot(index="source", columns="target", values="g")
        random = largest.groupby("target").target_random_g.first()
        shown = matrix.map(lambda v: "-" if math.isnan(v) else f"{v:.2f}")
        shown.loc["target's own code in random"] = random.map(lambda v: f"{v:.2f}")
        text += (f"\n\nTransfer in {largest.space.iloc[0]}: mean g of the source DET's code decoded as the target "
                 "(rows: source, columns: target; the diagonal is the target's own code), beside the target's own "
                 "code in the random subspace.\n\n" + shown.to_markdown(disable_numparse=True))
    return text


def pooled_answer(pooled: pd.DataFrame, transfer: pd.DataFrame) -> list[str]:
    """One statement per DET: for each found method, at each dimension g found against g random (intervals),
    the dimension where it closes half the gap and whether the claim holds here; then transfer from the
    other DETs' codes."""
    out = []
    families = pooled.space.map(lambda s: SpaceName.parse(s).family) if len(pooled) else pd.Series(dtype=str)
    for det, by_det in pooled.assign(family=families).sort_values("dim").groupby("det", sort=True):
        parts = []
        for family, rows in sorted(by_det.groupby("family"), key=lambda kv: kv[0] != "svd"):
            dims = "; ".join(f"d = {r.dim}: g {_interval(r.found, r.found_low, r.found_high)} against random "
                             f"{_interval(r.random, r.random_low, r.random_high)}, found - random "
                             f"{_interval(r.difference, r.difference_low, r.difference_high, 100, True)} points"
                             for r in rows.itertuples())
            half = half_gap_dim(pooled, det, family)
            half_text = (f"half the gap closed from d = {half}" if half is not None else
                         f"half the gap not closed at any d up to {rows.dim.max()}")
            left = rows.left_out.iloc[-1]
            parts.append(f"{family} ({rows.tasks.max()} unseen tasks" + (f"; left out: {left}" if left else "")
                         + f"): {dims}; {half_text}. {_claim(rows, half)}")
        said = f"**{det}**: " + " ".join(parts)
        if len(transfer):
            top = transfer[(transfer.target == det) & (transfer.source != det) &
                           (transfer.space == shown_space(transfer))]
            if len(top):
                said += (f" Decoded from the other DETs' codes in {top.space.iloc[0]} it closes g "
                         + ", ".join(f"{r.g:.2f} [{r.g_low:.2f}, {r.g_high:.2f}] ({r.source})" for r in top.itertuples())
                         + f", against {top.target_random_g.iloc[0]:.2f} for its own code in the random subspace.")
        out.append(said)
    return out


def _claim(rows: pd.DataFrame, half: int | None) -> str:
    """Holds: the found subspace beats random beyond the interval and closes half the gap; in part: one of the
    two; fails: neither, at any dimension."""
    beats = rows[rows.difference_low > 0]
    if len(beats) and half is not None:
        return (f"The paper's claim holds here: beyond the random subspace from d = {beats.dim.min()} and half the "
                f"gap from d = {half}.")
    if len(beats):
        return (f"The claim holds in part: the found subspace beats the random one (from d = {beats.dim.min()}) but "
                f"closes less than half the gap (at most g = {rows.found.max():.2f}).")
    if half is not None:
        return ("The claim holds in part: half the gap is closed, but a random subspace of the same size does as "
                "well within the intervals.")
    return "The paper's claim fails here: the found subspace is no better than a random one and closes under half the gap."
