"""The report's plots and the landscape heatmaps."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .io import pyplot, save_figure
from .names import SpaceName


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


def plot_dims(gaps: pd.DataFrame, path) -> None:
    """Unseen-task accuracy against the subspace dimension, one panel per DET: each found method (solid) and
    the random control (dashed) with their 95% intervals, the original-space run, the merge and zero-shot as
    horizontal lines (averaged over the unseen tasks)."""
    plt = pyplot()
    unseen = gaps[~gaps.seen]
    dets = sorted(unseen.det.unique())
    fig, axes = plt.subplots(1, max(1, len(dets)), figsize=(4.2 * max(1, len(dets)), 3.6), squeeze=False, sharey=True)
    for ax, det in zip(axes[0], dets):
        rows = unseen[unseen.det == det]
        spaces = rows[~rows.space.isin(["merge", "zero-shot"])]
        names = spaces.space.map(SpaceName.parse)
        frame = spaces.assign(method=names.map(lambda n: n.family), dim=names.map(lambda n: n.dim))
        for method, g in frame.groupby("method", sort=True):
            curve = g.groupby("dim")[["accuracy", "accuracy_low", "accuracy_high"]].mean()
            style = "--" if method.startswith("random") else "-"
            ax.errorbar(curve.index, curve.accuracy, yerr=[curve.accuracy - curve.accuracy_low,
                        curve.accuracy_high - curve.accuracy], fmt=style, marker="o", capsize=3, label=method)
        for label, value, colour in [("original", rows.original.mean(), "black"),
                                     ("merge", rows[rows.space == "merge"].accuracy.mean(), "tab:purple"),
                                     ("zero-shot", rows.zero_shot.mean(), "grey")]:
            ax.axhline(value, color=colour, linewidth=0.9, linestyle=":" if label == "zero-shot" else "-.",
                       label=f"{label} {value:.3f}")
        ax.set_title(det)
        ax.set_xlabel("subspace dimension d")
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("test accuracy, unseen tasks")
    save_figure(fig, path)


def plot_pooled(pooled: pd.DataFrame, path) -> None:
    """The share of the gap closed on unseen tasks (mean over the tasks that count) against the dimension, one
    panel per DET: the found subspace (solid) and its random control (dashed) with their 95% intervals; the
    merge, zero-shot (g = 0), the original-space run (g = 1) and half the gap as horizontal lines."""
    plt = pyplot()
    dets = sorted(pooled.det.unique())
    fig, axes = plt.subplots(1, max(1, len(dets)), figsize=(4.2 * max(1, len(dets)), 3.6), squeeze=False, sharey=True)
    for ax, det in zip(axes[0], dets):
        rows = pooled[pooled.det == det]
        for family, part in rows.groupby(rows.space.map(lambda s: SpaceName.parse(s).family), sort=True):
            part = part.sort_values("dim")
            for key, style, label in (("found", "-", family), ("random", "--", f"random ({family}'s size)")):
                ax.errorbar(part.dim, part[key], yerr=[part[key] - part[f"{key}_low"], part[f"{key}_high"] - part[key]],
                            fmt=style, marker="o", capsize=3, label=label)
        merge = rows["merge"].mean()
        for label, value, colour, style in (("original", 1.0, "black", "-."), ("half the gap", 0.5, "tab:red", ":"),
                                            (f"merge {merge:.2f}", merge, "tab:purple", "-."),
                                            ("zero-shot", 0.0, "grey", ":")):
            ax.axhline(value, color=colour, linewidth=0.9, linestyle=style, label=label)
        ax.set_xticks(sorted(rows.dim.unique()), [str(d) for d in sorted(rows.dim.unique())])
        ax.set_title(f"{det} ({int(rows.tasks.max())} unseen tasks)")
        ax.set_xlabel("subspace dimension d")
        ax.legend(fontsize=7)
    if not dets:
        axes[0][0].text(0.5, 0.5, "no unseen task was optimised in a found subspace", ha="center", va="center")
    axes[0][0].set_ylabel("share of the gap closed, g")
    save_figure(fig, path)


def plot_transfer(transfer: pd.DataFrame, path) -> None:
    """The transfer matrix of one subspace (deltaspace.pooled.shown_space) as an annotated heatmap: mean g over
    the unseen tasks of each source DET's code decoded as each target DET, and a last column with each target's
    own code in the random subspace of the same size."""
    from .pooled import shown_space

    plt = pyplot()
    if transfer.empty:
        fig, ax = plt.subplots(figsize=(4, 2))
        ax.text(0.5, 0.5, "no cross-DET transfer on unseen tasks", ha="center", va="center")
        ax.set_axis_off()
        save_figure(fig, path)
        return
    space = shown_space(transfer)
    rows = transfer[transfer.space == space]
    matrix = rows.pivot(index="source", columns="target", values="g")
    random = rows.groupby("target").target_random_g.first().reindex(matrix.columns)
    values = np.vstack([matrix.to_numpy(), random.to_numpy()[None, :]])  # the last row: the random control
    labels = [*matrix.index, "own code in\nrandom subspace"]
    fig, ax = plt.subplots(figsize=(1.4 * len(matrix.columns) + 3.2, 0.8 * len(labels) + 1.6))
    image = ax.imshow(values, cmap="viridis", vmin=min(0.0, float(np.nanmin(values))),
                      vmax=max(1.0, float(np.nanmax(values))))
    for (i, j), v in np.ndenumerate(values):
        ax.text(j, i, "-" if np.isnan(v) else f"{v:.2f}", ha="center", va="center", fontsize=9,
                color="white" if np.isnan(v) or image.norm(v) < 0.6 else "black")
    ax.axhline(len(matrix) - 0.5, color="white", linewidth=3)
    ax.set_xticks(range(len(matrix.columns)), matrix.columns)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("target DET (the code decoded with its projection)")
    ax.set_ylabel("source DET (the code found with it)")
    ax.set_title(f"Transfer in {space}: mean g over {int(rows.tasks.max())} unseen tasks", fontsize=9)
    fig.colorbar(image, ax=ax, label="g (0: zero-shot, 1: original)")
    save_figure(fig, path)


def plot_curves(history: pd.DataFrame, path, references: dict | None = None) -> None:
    """Every search for a code: validation accuracy (top) and training loss (below) against the step, one
    column per (space, task), one line per DET and learning rate (the seeds of one averaged); references:
    (det, task) -> the DET's original-space validation accuracy, drawn dotted in the line's colour."""
    plt = pyplot()
    panels = list(history.groupby(["space", "task"], sort=True))
    cols = min(4, max(1, len(panels)))
    rows = -(-max(1, len(panels)) // cols)
    fig, axes = plt.subplots(2 * rows, cols, figsize=(4.0 * cols, 5.6 * rows), squeeze=False, sharex="col")
    for k, ((space, task), frame) in enumerate(panels):
        top, bottom = axes[2 * (k // cols), k % cols], axes[2 * (k // cols) + 1, k % cols]
        for (det, lr), g in frame.groupby(["det", "lr"], sort=True):
            curve = g.groupby("step")[["validation_accuracy", "train_loss"]].mean()
            line, = top.plot(curve.index, curve.validation_accuracy, marker=".", label=f"{det} lr {lr:g}")
            if (det, task) in (references or {}):
                top.axhline(references[(det, task)], color=line.get_color(), linestyle=":", linewidth=1.0)
            loss = curve.train_loss.dropna()  # step 0, the start, has no training loss
            bottom.plot(loss.index, loss.values, marker=".", color=line.get_color())
        top.set_title(f"{space} / {task}", fontsize=9)
        top.legend(fontsize=6)
        bottom.set_xlabel("step")
        if k % cols == 0:
            top.set_ylabel("validation accuracy")
            bottom.set_ylabel("training loss")
    for k in range(len(panels), rows * cols):
        axes[2 * (k // cols), k % cols].set_visible(False)
        axes[2 * (k // cols) + 1, k % cols].set_visible(False)
    save_figure(fig, path)


def plot_landscape(frame: pd.DataFrame, solutions: pd.DataFrame, path, title: str, threshold: float,
                   references: dict[str, tuple[float, float]] | None = None, metric: str = "accuracy") -> None:
    """One heatmap per DET, the solutions marked, the region outlined where the DET closes at least `threshold`
    of its gap between zero-shot and its original-space accuracy (references: det -> (zero-shot, original));
    a DET without references gets threshold x its best on the grid."""
    plt = pyplot()
    data = frame[frame.metric == metric]
    dets = list(dict.fromkeys(data.det))
    fig, axes = plt.subplots(1, len(dets), figsize=(3.6 * len(dets) + 0.8, 3.6), squeeze=False, sharey=True)
    low, high = data.value.min(), data.value.max()
    for ax, det in zip(axes[0], dets):
        grid = data[data.det == det].pivot_table(index="b", columns="a", values="value")
        a, b = grid.columns.to_numpy(), grid.index.to_numpy()
        values = grid.to_numpy()
        image = ax.pcolormesh(a, b, values, shading="nearest", cmap="viridis", vmin=low, vmax=high)
        zero, original = (references or {}).get(det, (0.0, float(values.max())))
        level = zero + threshold * (original - zero)
        if values.min() < level <= values.max():
            ax.contour(a, b, values, levels=[level], colors="white", linewidths=1.2)
        for row in solutions.itertuples():
            ax.plot(row.a, row.b, marker="o", markersize=7, markerfacecolor="white", markeredgecolor="black")
            ax.annotate(row.det, (row.a, row.b), textcoords="offset points", xytext=(5, 5), fontsize=8, color="white")
        said = f"zero-shot {zero:.2f}, original {original:.2f}" if references and det in references else "best"
        ax.set_title(f"{det}\n{said}", fontsize=8)
        ax.set_xlabel("a")
        ax.set_aspect("equal", adjustable="box")
    axes[0][0].set_ylabel("b")
    fig.colorbar(image, ax=list(axes[0]), label=f"test {metric}")
    fig.suptitle(title, fontsize=9)
    save_figure(fig, path)


def plot_learned(history: pd.DataFrame, path) -> None:
    """Method `learned`'s training, one row of panels per subspace (the `space` column, where present): the task
    loss, the reconstruction distance and how far U has moved from its start, each against the step, one line
    per DET."""
    plt = pyplot()
    spaces = list(dict.fromkeys(history.space)) if "space" in history.columns else [None]
    panels = [("task_loss", "task loss (cross-entropy)", "task loss of the decoded DETs"),
              ("distance", "reconstruction distance", "reconstruction distance ||x - b - U I||"),
              ("up_moved", "relative distance of U from its start", "how far U moves: ||U - U0|| / ||U0||")]
    fig, axes = plt.subplots(len(spaces), len(panels), figsize=(4.6 * len(panels), 3.4 * len(spaces)), squeeze=False)
    for row, space in zip(axes, spaces):
        part = history if space is None else history[history.space == space]
        for ax, (column, label, title) in zip(row, panels):
            for det, g in part.groupby("det", sort=False):
                g = g.sort_values("step")
                ax.plot(g.step, g[column], marker="o", markersize=3, label=det)
            if column == "distance" and len(part) and (part[column] > 0).all():
                from matplotlib.ticker import FormatStrFormatter

                ax.set_yscale("log")  # plain numbers at the ticks: the range is often less than a decade
                ax.yaxis.set_major_formatter(FormatStrFormatter("%.3g"))
                ax.yaxis.set_minor_formatter(FormatStrFormatter("%.3g"))
            ax.set_title(title if space is None else f"{space}: {title}", fontsize=9)
            ax.set_xlabel("step")
            ax.set_ylabel(label)
            ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)
