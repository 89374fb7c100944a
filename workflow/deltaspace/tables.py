"""The report's tables in the paper's form (subspace optimisation per DET and task; transfer A -> B; the
landscape shares; ours beside the paper's numbers), each as a frame and as Markdown. Relative performance is
always the subspace result over the same DET's original-space result on the same task and seed (test
accuracy)."""
from __future__ import annotations

import math

import pandas as pd

from .landscape import shares
from .names import SpaceName
from .paper import SETTINGS

METRIC = "accuracy"


def markdown(frame: pd.DataFrame, floatfmt: str = ".3f") -> str:
    """A table as Markdown, a missing value shown as '-' (never 'nan')."""
    return frame.astype(object).where(frame.notna(), None).to_markdown(index=False, floatfmt=floatfmt, missingval="-")


def test_values(frame: pd.DataFrame, metric: str, keys: list[str], name: str) -> pd.DataFrame:
    """The test-split values of one metric, keyed, the value column named `name`."""
    rows = frame[(frame.split == "test") & (frame.metric == metric)]
    return rows[keys + ["value"]].rename(columns={"value": name})


def subspace_table(original: pd.DataFrame, optimized: pd.DataFrame, held_out: list[str]) -> pd.DataFrame:
    """One row per (space, det, task, seed): subspace and original-space accuracy, and the baselines."""
    run = ["det", "task", "seed"]
    base = test_values(original, METRIC, run, "original")
    for metric, name in [("accuracy_at_init", "zero_shot"), ("majority_accuracy", "majority")]:
        base = base.merge(test_values(original, metric, run, name), on=run)
    table = test_values(optimized, METRIC, ["space", *run], "subspace")
    table = table.merge(test_values(optimized, "accuracy_at_init", ["space", *run], "start"), on=["space", *run])
    table = table.merge(base, on=run, how="left")
    table["relative"] = table.subspace / table.original
    table.insert(3, "seen", ~table.task.isin(held_out))
    return table.sort_values(["space", "seen", "task", "det", "seed"], ascending=[True, False, True, True, True])


def transfer_table(original: pd.DataFrame, transfer: pd.DataFrame, sub: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per (space, task, seed, source, target): accuracy of the source's code decoded as the target,
    beside the target DET's original-space and zero-shot accuracy and (sub: subspace_table) its own result in
    the random control of this space."""
    rows = transfer[transfer.metric == METRIC].rename(columns={"value": "accuracy"})
    run = ["det", "task", "seed"]
    base = test_values(original, METRIC, run, "target_original").merge(
        test_values(original, "accuracy_at_init", run, "target_zero_shot"), on=run).rename(columns={"det": "target"})
    majority = test_values(transfer, "majority_accuracy", ["space", "task", "seed", "source", "target"], "majority")
    rows = rows.merge(base, on=["target", "task", "seed"], how="left").merge(
        majority, on=["space", "task", "seed", "source", "target"])
    rows["relative"] = rows.accuracy / rows.target_original
    rows["control"] = rows.space.map(lambda s: str(SpaceName.parse(s).control()))
    own = (sub if sub is not None and len(sub) else pd.DataFrame(columns=["space", "det", "task", "seed", "subspace"]))
    own = own.rename(columns={"space": "control", "det": "target", "subspace": "target_random"})
    rows = rows.merge(own[["control", "target", "task", "seed", "target_random"]],
                      on=["control", "target", "task", "seed"], how="left")
    cols = ["space", "task", "seed", "source", "target", "accuracy", "target_original", "relative", "target_random",
            "target_zero_shot", "majority"]
    return rows[cols].sort_values(["space", "task", "seed", "source", "target"])


def landscape_table(landscape: pd.DataFrame, solutions: pd.DataFrame, original: pd.DataFrame,
                    threshold: float) -> pd.DataFrame:
    """Per (space, task): share of the grid where every DET closes at least `threshold` of its gap between
    zero-shot and its original-space accuracy (same seed), and where every DET reaches threshold x its original
    accuracy; each DET's best on the grid beside its original and zero-shot accuracy."""
    out = []
    run = ["det", "task", "seed"]
    base = test_values(original, METRIC, run, "original").merge(
        test_values(original, "accuracy_at_init", run, "zero_shot"), on=run)
    for (space, task, seed), grid in landscape.groupby(["space", "task", "seed"], sort=True):
        ref = base[(base.task == task) & (base.seed == seed)].set_index("det")
        acc = grid[grid.metric == METRIC]
        best = acc.groupby("det").value.max()
        plane = solutions[(solutions.space == space) & (solutions.task == task)].det.tolist()
        orig, zero = ref.original[best.index].to_dict(), ref.zero_shot[best.index].to_dict()
        out.append({"space": space, "task": task, "seed": seed, "plane": " ".join(plane),
                    "points": int(acc[["a", "b"]].drop_duplicates().shape[0]),
                    "share_of_gap": shares(grid, threshold, orig, floor=zero),
                    "share_of_original": shares(grid, threshold, orig),
                    **{f"best_{det}": float(v) for det, v in best.items()},
                    **{f"original_{det}": orig[det] for det in best.index},
                    **{f"zero_shot_{det}": zero[det] for det in best.index}})
    return pd.DataFrame(out)


def norms_table(optimized: pd.DataFrame, codes: pd.DataFrame) -> pd.DataFrame:
    """Per optimised (space, det, task, seed): the norm of z at the start and at the end, the learning rate
    kept, beside the norms of the source solutions' codes in that subspace (least, mean, largest)."""
    keys = ["space", "det", "task", "seed"]
    train = optimized[optimized.split == "train"]
    wide = train[train.metric.isin(["z_norm_start", "z_norm_end", "lr", "steps", "best_step"])].pivot_table(
        index=keys, columns="metric", values="value").reset_index()
    z = [c for c in codes.columns if c.startswith("z") and c[1:].isdigit()]
    norms = codes.assign(norm=(codes[z].fillna(0.0) ** 2).sum(axis=1) ** 0.5).groupby("space").norm.agg(
        source_min="min", source_mean="mean", source_max="max").reset_index()
    return wide.merge(norms, on="space", how="left")


def norms_markdown(table: pd.DataFrame) -> str:
    if table.empty:
        return "No code was optimised."
    return ("The code z starts at N(0, init_std); the source codes are the solutions that built each subspace. "
            "A search that ends far below the source codes' norm has not travelled to a solution's scale.\n\n"
            + markdown(table, ".3g"))


def learned_table(history: pd.DataFrame) -> pd.DataFrame:
    """Per learned subspace and DET: where its losses started and ended, and how far its projections moved
    from their start over the configured steps (relative Frobenius distance of U and of the down-projection)."""
    rows = []
    for (space, det), h in history.sort_values("step").groupby(["space", "det"], sort=True):
        first, last = h.iloc[0], h.iloc[-1]
        rows.append({"space": space, "det": det, "steps": int(last.step), "task_loss_first": first.task_loss,
                     "task_loss_last": last.task_loss, "distance_first": first.distance,
                     "distance_last": last.distance, "up_moved": last.up_moved, "down_moved": last.down_moved})
    return pd.DataFrame(rows)


def learned_markdown(table: pd.DataFrame) -> str:
    lines = [f"- {r.space}, {r.det}: in {r.steps} steps the up-projection moved {100 * r.up_moved:.2f}% of its norm "
             f"from its start (the down-projection {100 * r.down_moved:.2f}%); task loss {r.task_loss_first:.3f} -> "
             f"{r.task_loss_last:.3f}, reconstruction distance {r.distance_first:.3g} -> {r.distance_last:.3g} "
             "(first and last logged averages)" for r in table.itertuples()]
    return "\n".join(lines) + "\n\n" + markdown(table, ".4g")


def seed_spread(frame: pd.DataFrame, column: str) -> tuple[float, float, int]:
    """Mean and standard deviation over seeds of `column`, first averaged within each seed (over tasks,
    pairs, ...): the spread a rerun with other seeds would show. The std is NaN for one seed."""
    per_seed = frame.dropna(subset=[column]).groupby("seed")[column].mean()
    if per_seed.empty:
        return float("nan"), float("nan"), 0
    return float(per_seed.mean()), float(per_seed.std()) if len(per_seed) > 1 else float("nan"), len(per_seed)


def _fmt(mean: float, std: float, scale: float = 100.0) -> str:
    """'mean ± std' in percent; 'mean (1 seed)' for one seed (std NaN), '-' for none."""
    if math.isnan(mean):
        return "-"
    return f"{scale * mean:.1f} (1 seed)" if math.isnan(std) else f"{scale * mean:.1f} ± {scale * std:.1f}"


def _mean_std(frame: pd.DataFrame, column: str = "relative") -> str:
    mean, std, _ = seed_spread(frame, column)
    return _fmt(mean, std)


def within_spread(difference: float, *stds: float) -> str:
    """'within' when a difference is no larger than the larger seed standard deviation of what it compares."""
    known = [s for s in stds if not math.isnan(s)]
    if not known:
        return "one seed"
    return "within" if abs(difference) <= max(known) else "outside"


def subspace_markdown(table: pd.DataFrame) -> str:
    """Paper form: rows tasks (seen / unseen), columns DETs; relative % (mean ± std over seeds)."""
    parts = []
    for space, rows in table.groupby("space", sort=True):
        dets = list(dict.fromkeys(rows.det))
        lines = []
        for (seen, task), group in rows.groupby(["seen", "task"], sort=False):
            line = {"task": f"{task} ({'seen' if seen else 'unseen'})"}
            for det in dets:
                g = group[group.det == det]
                line[det] = f"{_mean_std(g)} ({g.subspace.mean():.3f} / {g.original.mean():.3f})"
            line["start / zero-shot / majority"] = (f"{group.start.mean():.3f} / {group.zero_shot.mean():.3f} / "
                                                    f"{group.majority.mean():.3f}")
            lines.append(line)
        for seen, name in [(False, "average, unseen"), (True, "average, seen")]:
            part = rows[rows.seen == seen]
            if not part.empty:
                lines.append({"task": name, **{det: _mean_std(part[part.det == det]) for det in dets}})
        frame = pd.DataFrame(lines).fillna("")
        parts.append(f"### {space}\n\nRelative performance, % (subspace / original-space test accuracy; mean ± std over "
                     "seeds):\n\n"
                     + frame.to_markdown(index=False))
    return "\n\n".join(parts)


def transfer_markdown(table: pd.DataFrame) -> str:
    """Paper form: rows source -> target, columns tasks and their average; relative % of the target DET."""
    parts = []
    for space, rows in table.groupby("space", sort=True):
        pairs = rows[rows.source != rows.target]
        lines = []
        for (source, target), group in pairs.groupby(["source", "target"], sort=False):
            line = {"transfer": f"{source} -> {target}"}
            for task, g in group.groupby("task", sort=True):
                random = "" if g.target_random.isna().all() else f"; random {g.target_random.mean():.3f}"
                line[task] = (f"{_mean_std(g)} ({g.accuracy.mean():.3f}{random}; zero-shot "
                              f"{g.target_zero_shot.mean():.3f})")
            line["average"] = _mean_std(group)
            lines.append(line)
        majority = {task: f"({g.majority.mean():.3f})" for task, g in rows.groupby("task", sort=True)}
        lines.append({"transfer": "majority class", **majority, "average": ""})
        parts.append(f"### {space}\n\nRelative performance, % of the target DET's original-space test accuracy; in "
                     "brackets the accuracy, and beside it the target DET's own code in the random control of this "
                     "subspace and the target at zero-shot:\n\n"
                     + pd.DataFrame(lines).fillna("").to_markdown(index=False, disable_numparse=True))
    return "\n\n".join(parts)


def original_table(original: pd.DataFrame) -> pd.DataFrame:
    """One row per (det, task): original-space test accuracy, mean and std over seeds, and the seed count."""
    acc = test_values(original, METRIC, ["det", "task", "seed"], "accuracy")
    out = acc.groupby(["task", "det"], sort=True).accuracy.agg(["mean", "std", "count"]).reset_index()
    return out.rename(columns={"count": "seeds"})


def original_markdown(table: pd.DataFrame) -> str:
    lines = []
    for task, rows in table.groupby("task", sort=True):
        line = {"task": task}
        for r in rows.itertuples():
            line[r.det] = f"{r.mean:.3f} (1 seed)" if r.seeds < 2 else f"{r.mean:.3f} ± {r.std:.3f}"
        lines.append(line)
    return ("Test accuracy in the original space (mean ± std over seeds):\n\n"
            + pd.DataFrame(lines).fillna("").to_markdown(index=False))


def _spaces_by_dim(table: pd.DataFrame) -> dict[int, list[str]]:
    spaces = sorted(table.space.unique()) if len(table) else []
    out: dict[int, list[str]] = {}
    for space in spaces:
        out.setdefault(SpaceName.parse(space).dim, []).append(space)
    return {dim: names for dim, names in out.items() if len(names) > 1}


def methods_table(sub: pd.DataFrame, trans: pd.DataFrame) -> pd.DataFrame:
    """Each decomposition method against svd at the same dim, on the same solutions: per (task, det) the
    relative performance of subspace optimisation, and per task the average cross-DET transfer."""
    rows = []
    pairs = trans[trans.source != trans.target]
    for dim, spaces in _spaces_by_dim(sub).items():
        svd = str(SpaceName("svd", dim))
        reference = svd if svd in spaces else spaces[0]
        items = [("optimisation", (seen, task), det, sub[(sub.task == task) & (sub.det == det)])
                 for seen, task in sub[["seen", "task"]].drop_duplicates().itertuples(index=False)
                 for det in sorted(sub.det.unique())]
        items += [("transfer", (None, task), "all pairs", pairs[pairs.task == task]) for task in sorted(pairs.task.unique())]
        for what, (seen, task), det, frame in items:
            ref = seed_spread(frame[frame.space == reference], "relative")
            for space in spaces:
                if space == reference:
                    continue
                got = seed_spread(frame[frame.space == space], "relative")
                if got[2] == 0:  # nothing of this space to compare (no transfer run in it)
                    continue
                rows.append({"dim": dim, "what": what, "task": task, "seen": seen, "det": det,
                             "reference": reference, "reference_mean": ref[0], "reference_std": ref[1],
                             "space": space, "mean": got[0], "std": got[1], "seeds": got[2],
                             "difference": got[0] - ref[0],
                             "spread": within_spread(got[0] - ref[0], ref[1], got[1])})
    return pd.DataFrame(rows)


def methods_markdown(table: pd.DataFrame) -> str:
    if table.empty:
        return "Only one decomposition method per dimension: nothing to compare."
    parts = []
    for (dim, space, reference), rows in table.groupby(["dim", "space", "reference"], sort=True):
        lines = []
        for r in rows.itertuples():
            where = "" if r.seen is None else f" ({'seen' if r.seen else 'unseen'})"
            lines.append({"what": r.what, "task": f"{r.task}{where}", "det": r.det,
                          reference: _fmt(r.reference_mean, r.reference_std), space: _fmt(r.mean, r.std),
                          "difference": f"{100 * r.difference:+.1f}", "seed spread": r.spread})
        parts.append(f"### {space} against {reference}\n\nRelative performance, % (mean ± std over seeds); a "
                     "difference is 'within' the spread when it is no larger than the larger of the two standard "
                     "deviations:\n\n" + pd.DataFrame(lines).to_markdown(index=False, disable_numparse=True))
    return "\n\n".join(parts)


def paper_table(sub: pd.DataFrame, trans: pd.DataFrame, setting: str, paper_rows: dict[str, str],
                det_methods: dict[str, str]) -> pd.DataFrame:
    """Ours beside the paper's numbers: subspace optimisation on the unseen tasks (per task where the config
    maps it to a paper row, and the average) and cross-DET transfer averages, per subspace and DET; beside
    each, the same relative measure of zero-shot and of the random control (for transfer: the target DET's)."""
    paper = SETTINGS[setting]
    unseen = sub[~sub.seen]
    rows = []
    for space in sorted(s for s in unseen.space.unique() if not SpaceName.parse(s).is_control):
        part = unseen[unseen.space == space]
        control = unseen[unseen.space == str(SpaceName.parse(space).control())]
        for det in sorted(part.det.unique()):
            method = det_methods.get(det, det)
            for task in [*sorted(part.task.unique()), "average"]:
                frame = part[(part.det == det) & ((part.task == task) if task != "average" else True)]
                random = control[(control.det == det) & control.task.isin(frame.task)]
                row = "average" if task == "average" else paper_rows.get(task)
                ref = paper["average"].get(method) if task == "average" else \
                    paper["rows"].get(row, {}).get(method) if row else None
                baselines = ((frame.zero_shot / frame.original).mean(), (random.subspace / random.original).mean())
                rows.append(_against(space, "optimisation", task, det, frame, ref, row or "", *baselines))
        pairs = trans[(trans.space == space) & (trans.source != trans.target) & trans.task.isin(part.task)]
        for (source, target), group in pairs.groupby(["source", "target"], sort=True):
            key = (det_methods.get(source, source), det_methods.get(target, target))
            rows.append(_against(space, "transfer", "average", f"{source} -> {target}", group,
                                 paper["transfer"].get(key), "average",
                                 (group.target_zero_shot / group.target_original).mean(),
                                 (group.target_random / group.target_original).mean()))
    return pd.DataFrame(rows)


def _against(space: str, what: str, task: str, det: str, frame: pd.DataFrame, paper: float | None,
             paper_row: str, zero_shot: float, random: float) -> dict:
    mean, std, n = seed_spread(frame, "relative")
    ours = 100 * mean
    return {"space": space, "what": what, "task": task, "det": det, "ours": ours, "std": 100 * std, "seeds": n,
            "paper": paper, "paper_row": paper_row,
            "spread": within_spread(ours - paper, 100 * std) if paper is not None else "",
            "zero_shot": 100 * zero_shot, "random": 100 * random}


def paper_markdown(table: pd.DataFrame, setting: str) -> str:
    if table.empty:
        return "No unseen task was optimised: nothing to set beside the paper."
    optimisation, transfer = SETTINGS[setting]["tables"]
    parts = []
    for space, rows in table.groupby("space", sort=True):
        opt = rows[rows.what == "optimisation"]
        lines = []
        for task, group in opt.groupby("task", sort=False):
            row = group.paper_row.iloc[0]
            line = {"task": "average, unseen" if task == "average" else f"{task} ({row})" if row else task}
            lines.append(line | {r.det: _beside(r) for r in group.itertuples()})
        matrix = {}
        for r in rows[rows.what == "transfer"].itertuples():
            source, target = r.det.split(" -> ")
            matrix.setdefault(source, {"source \\ target": source})[target] = _beside(r)
        frame = pd.DataFrame(list(matrix.values())).fillna("-")
        frame = frame[["source \\ target"] + [c for c in sorted(frame.columns) if c != "source \\ target"]]
        parts.append(
            f"### {space}: subspace optimisation on the unseen tasks (the paper's {optimisation})\n\n"
            "Relative performance, %: ours (mean ± std over seeds) / the paper's; 'within' when the paper's number "
            "lies within one standard deviation of ours; then the same measure of the random control and of "
            "zero-shot here (a relative performance near zero-shot's says little):\n\n"
            + pd.DataFrame(lines).fillna("").to_markdown(index=False, disable_numparse=True)
            + f"\n\n### {space}: cross-DET transfer, average over the unseen tasks (the paper's {transfer})\n\n"
            "Source DET's code decoded with the target DET's projection, % of the target's original-space "
            "accuracy: ours / the paper's:\n\n" + frame.to_markdown(index=False, disable_numparse=True))
    return "\n\n".join(parts)


def _beside(r) -> str:
    ours = _fmt(r.ours, r.std, scale=1.0)  # already in percent
    if r.paper is not None and not math.isnan(r.paper):
        ours = f"{ours} / {r.paper:.1f} ({r.spread})"
    random = "" if math.isnan(r.random) else f"random {r.random:.1f}, "
    return f"{ours}; {random}zero-shot {r.zero_shot:.1f}"
