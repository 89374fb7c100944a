"""Stage report: the paper's tables (subspace optimisation per DET and task; transfer A -> B), the landscape
shares and the plots, from the outputs of every stage. Relative performance is always the subspace result
over the same DET's original-space result on the same task and seed (test accuracy).
"""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from .io import atomic_path, load_table, pyplot, save_figure, save_table
from .landscape import shares

METRIC = "accuracy"


def _concat(paths: list) -> pd.DataFrame:
    return pd.concat([load_table(p) for p in paths], ignore_index=True) if paths else pd.DataFrame()


def _test(frame: pd.DataFrame, metric: str, keys: list[str], name: str) -> pd.DataFrame:
    rows = frame[(frame.split == "test") & (frame.metric == metric)]
    return rows[keys + ["value"]].rename(columns={"value": name})


def subspace_table(original: pd.DataFrame, optimized: pd.DataFrame, held_out: list[str]) -> pd.DataFrame:
    """One row per (space, det, task, seed): subspace and original-space accuracy, and the baselines."""
    run = ["det", "task", "seed"]
    base = _test(original, METRIC, run, "original")
    for metric, name in [("accuracy_at_init", "zero_shot"), ("majority_accuracy", "majority")]:
        base = base.merge(_test(original, metric, run, name), on=run)
    table = _test(optimized, METRIC, ["space", *run], "subspace")
    table = table.merge(_test(optimized, "accuracy_at_init", ["space", *run], "start"), on=["space", *run])
    table = table.merge(base, on=run, how="left")
    table["relative"] = table.subspace / table.original
    table.insert(3, "seen", ~table.task.isin(held_out))
    return table.sort_values(["space", "seen", "task", "det", "seed"], ascending=[True, False, True, True, True])


def transfer_table(original: pd.DataFrame, transfer: pd.DataFrame) -> pd.DataFrame:
    """One row per (space, task, seed, source, target): accuracy of the source's code decoded as the target."""
    rows = transfer[transfer.metric == METRIC].rename(columns={"value": "accuracy"})
    base = _test(original, METRIC, ["det", "task", "seed"], "target_original").rename(columns={"det": "target"})
    majority = _test(transfer, "majority_accuracy", ["space", "task", "seed", "source", "target"], "majority")
    rows = rows.merge(base, on=["target", "task", "seed"], how="left").merge(
        majority, on=["space", "task", "seed", "source", "target"])
    rows["relative"] = rows.accuracy / rows.target_original
    cols = ["space", "task", "seed", "source", "target", "accuracy", "target_original", "relative", "majority"]
    return rows[cols].sort_values(["space", "task", "seed", "source", "target"])


def landscape_table(landscape: pd.DataFrame, solutions: pd.DataFrame, original: pd.DataFrame,
                    threshold: float) -> pd.DataFrame:
    """Per (space, task): share of the grid where every DET reaches threshold x its best on the grid, and
    threshold x its original-space accuracy (same seed)."""
    out = []
    base = _test(original, METRIC, ["det", "task", "seed"], "original")
    for (space, task, seed), grid in landscape.groupby(["space", "task", "seed"], sort=True):
        ref = base[(base.task == task) & (base.seed == seed)].set_index("det").original.to_dict()
        acc = grid[grid.metric == METRIC]
        best = acc.groupby("det").value.max()
        plane = solutions[(solutions.space == space) & (solutions.task == task)].det.tolist()
        out.append({"space": space, "task": task, "seed": seed, "plane": " ".join(plane),
                    "points": int(acc[["a", "b"]].drop_duplicates().shape[0]),
                    "share_of_best": shares(grid, threshold),
                    "share_of_original": shares(grid, threshold, {d: ref[d] for d in best.index}),
                    **{f"best_{det}": float(v) for det, v in best.items()}})
    return pd.DataFrame(out)


def _mean_std(values: pd.Series, scale: float = 100.0) -> str:
    if values.isna().all():
        return "-"
    mean = values.mean() * scale
    return f"{mean:.1f}" if len(values) < 2 else f"{mean:.1f} ± {values.std() * scale:.1f}"


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
                line[det] = f"{_mean_std(g.relative)} ({g.subspace.mean():.3f} / {g.original.mean():.3f})"
            line["start / zero-shot / majority"] = (f"{group.start.mean():.3f} / {group.zero_shot.mean():.3f} / "
                                                    f"{group.majority.mean():.3f}")
            lines.append(line)
        for seen, name in [(False, "average, unseen"), (True, "average, seen")]:
            part = rows[rows.seen == seen]
            if not part.empty:
                lines.append({"task": name, **{det: _mean_std(part[part.det == det].relative) for det in dets}})
        frame = pd.DataFrame(lines).fillna("")
        parts.append(f"### {space}\n\nRelative performance, % (subspace / original-space test accuracy):\n\n"
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
                line[task] = f"{_mean_std(g.relative)} ({g.accuracy.mean():.3f})"
            line["average"] = _mean_std(group.relative)
            lines.append(line)
        majority = {task: f"({g.majority.mean():.3f})" for task, g in rows.groupby("task", sort=True)}
        lines.append({"transfer": "majority class", **majority, "average": ""})
        parts.append(f"### {space}\n\nRelative performance, % of the target DET's original-space test accuracy "
                     "(accuracy in brackets):\n\n" + pd.DataFrame(lines).fillna("").to_markdown(index=False))
    return "\n\n".join(parts)


def plot_relative(table: pd.DataFrame, path) -> None:
    """Grouped bars: relative performance per task and DET, one panel per subspace."""
    plt = pyplot()
    spaces = sorted(table.space.unique())
    fig, axes = plt.subplots(1, len(spaces), figsize=(5.5 * len(spaces), 3.8), squeeze=False, sharey=True)
    for ax, space in zip(axes[0], spaces):
        rows = table[table.space == space]
        means = rows.groupby(["task", "det"], sort=False).relative.mean().unstack("det") * 100
        labels = [f"{t}\n({'seen' if rows[rows.task == t].seen.iloc[0] else 'unseen'})" for t in means.index]
        means.index = labels
        means.plot.bar(ax=ax, rot=0, width=0.8)
        ax.axhline(100, color="black", linewidth=0.8)
        ax.axhline(80, color="grey", linewidth=0.8, linestyle="--")
        ax.set_title(space)
        ax.set_ylabel("relative performance, %")
        ax.set_xlabel("")
    save_figure(fig, path)


def plot_dims(table: pd.DataFrame, path) -> None:
    """Relative performance against the subspace dimension, one line per DET (and method)."""
    plt = pyplot()
    frame = table.assign(method=table.space.str.split("-d").str[0], dim=table.space.str.split("-d").str[1].astype(int))
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for seen, style in [(False, "-"), (True, ":")]:
        part = frame[frame.seen == seen]
        for (method, det), g in part.groupby(["method", "det"], sort=True):
            curve = g.groupby("dim").relative.mean() * 100
            ax.plot(curve.index, curve.values, style, marker="o",
                    label=f"{det} ({method}, {'seen' if seen else 'unseen'} tasks)")
    ax.axhline(100, color="black", linewidth=0.8)
    ax.set_xlabel("subspace dimension d")
    ax.set_ylabel("relative performance, %")
    ax.legend(fontsize=7)
    save_figure(fig, path)


def _write(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def build_report(*, original: list, optimized: list, transfer: list, landscape: list, solutions: list,
                 reconstruction: list, held_out: list[str], threshold: float, out_dir) -> None:
    out = Path(out_dir)
    original_frame = _concat(original)
    sub = subspace_table(original_frame, _concat(optimized), held_out)
    trans = transfer_table(original_frame, _concat(transfer))
    land = landscape_table(_concat(landscape), _concat(solutions), original_frame, threshold) if landscape \
        else pd.DataFrame(columns=["space", "task", "seed", "plane", "points", "share_of_best", "share_of_original"])
    recon = _concat(reconstruction).groupby(["space", "det", "seen"], as_index=False)[
        ["relative_error", "unexplained"]].mean()

    sections = {
        "subspace": (sub, subspace_markdown(sub)),
        "transfer": (trans, transfer_markdown(trans)),
        "landscape": (land, land.to_markdown(index=False, floatfmt=".3f") if len(land) else "No landscape was swept."),
        "reconstruction": (recon, recon.to_markdown(index=False, floatfmt=".3f")),
    }
    for name, (frame, text) in sections.items():
        save_table(out / f"{name}.parquet", frame)
        _write(out / f"{name}.md", text + "\n")
    plot_relative(sub, out / "relative.png")
    plot_dims(sub, out / "dims.png")

    heatmaps = [Path(p).with_suffix(".png") for p in landscape]
    titles = {
        "subspace": "Optimisation in the subspace",
        "transfer": "Cross-DET transfer",
        "landscape": f"Landscape: share of the grid where every DET reaches {threshold:.0%} of its reference",
        "reconstruction": "Reconstruction of the solutions (relative error; unexplained share of the "
                          "deviation from the mean)",
    }
    md = ["# deltaspace report", ""]
    for name, (_, text) in sections.items():
        md += [f"## {titles[name]}", "", text, ""]
    md += ["## Plots", "", "![relative performance](relative.png)", "", "![against d](dims.png)", ""]
    md += [f"![landscape {p.parent.name} {p.stem}]({os.path.relpath(p, out)})" for p in heatmaps]
    _write(out / "index.md", "\n".join(md) + "\n")
    html = ["<h1>deltaspace report</h1>"]
    for name, (frame, _) in sections.items():
        html += [f"<h2>{titles[name]}</h2>", frame.to_html(index=False, float_format=lambda v: f"{v:.3f}")]
    _write(out / "index.html", "\n".join(html) + "\n")
