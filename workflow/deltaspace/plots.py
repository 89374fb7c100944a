"""The report's plots and the landscape heatmaps."""
from __future__ import annotations

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


def plot_dims(table: pd.DataFrame, path) -> None:
    """Relative performance against the subspace dimension, one line per DET (and method)."""
    plt = pyplot()
    names = table.space.map(SpaceName.parse)
    frame = table.assign(method=names.map(lambda n: n.method), dim=names.map(lambda n: n.dim))
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


def plot_landscape(frame: pd.DataFrame, solutions: pd.DataFrame, path, title: str, threshold: float,
                   metric: str = "accuracy") -> None:
    """One heatmap per DET, the solutions marked, the region within `threshold` of the DET's best outlined."""
    plt = pyplot()
    data = frame[frame.metric == metric]
    dets = list(dict.fromkeys(data.det))
    fig, axes = plt.subplots(1, len(dets), figsize=(3.6 * len(dets) + 0.8, 3.6), squeeze=False, sharey=True)
    low, high = data.value.min(), data.value.max()
    for ax, det in zip(axes[0], dets):
        grid = data[data.det == det].pivot_table(index="b", columns="a", values="value")
        a, b = grid.columns.to_numpy(), grid.index.to_numpy()
        image = ax.pcolormesh(a, b, grid.to_numpy(), shading="nearest", cmap="viridis", vmin=low, vmax=high)
        if grid.to_numpy().max() > grid.to_numpy().min():
            ax.contour(a, b, grid.to_numpy(), levels=[threshold * grid.to_numpy().max()], colors="white",
                       linewidths=1.2)
        for row in solutions.itertuples():
            ax.plot(row.a, row.b, marker="o", markersize=7, markerfacecolor="white", markeredgecolor="black")
            ax.annotate(row.det, (row.a, row.b), textcoords="offset points", xytext=(5, 5), fontsize=8, color="white")
        ax.set_title(det)
        ax.set_xlabel("a")
        ax.set_aspect("equal", adjustable="box")
    axes[0][0].set_ylabel("b")
    fig.colorbar(image, ax=list(axes[0]), label=f"test {metric}")
    fig.suptitle(title, fontsize=9)
    save_figure(fig, path)
