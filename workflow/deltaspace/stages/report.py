"""Stage report: every stage's outputs gathered in results/report/: the tables in the paper's form (Parquet and
Markdown), the plots, and the index pages (index.md, index.html)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from ..gaps import answer, gap_table, gaps_markdown, headline_markdown, headline_table, task_runs
from ..io import PROVENANCE, atomic_path, load_table, provenance, save_table
from ..leakage import overlap_view
from ..names import SpaceName
from ..paper import SETTINGS
from ..plots import plot_curves, plot_dims, plot_learned, plot_pooled, plot_relative
from ..pooled import pooled_answer, pooled_markdown, pooled_table, transfer_pooled
from ..tables import (
    landscape_table,
    learned_markdown,
    learned_table,
    markdown,
    methods_markdown,
    methods_table,
    norms_markdown,
    norms_table,
    original_markdown,
    original_table,
    paper_markdown,
    paper_table,
    subspace_markdown,
    subspace_table,
    test_values,
    transfer_markdown,
    transfer_table,
)


def _concat(paths: list) -> pd.DataFrame:
    return pd.concat([load_table(p) for p in paths], ignore_index=True) if paths else pd.DataFrame()


def _write(path: Path, text: str) -> None:
    """Write Markdown or HTML with the provenance in a closing comment, which neither renders."""
    stamp = json.dumps(provenance(), sort_keys=True).replace("--", "- -")  # "--" may not appear in a comment
    with atomic_path(path) as tmp:
        tmp.write_text(f"{text}<!-- {PROVENANCE}: {stamp} -->\n")


def build_report(*, original: list, optimized: list, transfer: list, landscape: list, solutions: list,
                 reconstruction: list, held_out: list[str], threshold: float, out_dir,
                 original_predictions: list = (), predictions: list = (), histories: list = (), merge: list = (),
                 merge_predictions: list = (), codes: list = (), learned: list = (), overlap: str | None = None,
                 folds: dict | None = None, det_methods: dict[str, str] | None = None, paper: str | None = None,
                 paper_rows: dict[str, str] | None = None) -> None:
    """With folds (fold -> its tasks), the tables pool every fold's subspaces under one name (svd-d4: each task
    was optimised in its own fold's); overlap is the leakage audit's table."""
    out = Path(out_dir)
    original_frame, optimized_frame = _concat(original), _concat(optimized)
    sub = subspace_table(original_frame, optimized_frame, held_out)
    trans = transfer_table(original_frame, _concat(transfer), sub)
    land = landscape_table(_concat(landscape), _concat(solutions), original_frame, threshold) if landscape \
        else pd.DataFrame(columns=["space", "task", "seed", "plane", "points", "share_of_gap", "share_of_original"])
    recon = _concat(reconstruction).groupby(["space", "det", "seen"], as_index=False)[
        ["relative_error", "unexplained"]].mean()
    runs = task_runs(_concat(original_predictions), _concat(predictions), _concat(merge_predictions))
    gaps = gap_table(runs, held_out)
    majority = test_values(original_frame, "majority_accuracy", ["det", "task", "seed"], "majority")
    headline = headline_table(runs, gaps, majority.groupby(["det", "task"]).majority.mean().to_dict())
    norms = norms_table(optimized_frame, _concat(codes))
    merged = _concat(merge)
    pooled = pooled_table(runs, gaps)
    pooled_transfer = transfer_pooled(trans, gaps)
    overlap_table = load_table(overlap) if overlap else pd.DataFrame(columns=["task", "other", "share", "texts"])

    orig = original_table(original_frame)
    methods = methods_table(sub, trans)
    sections = {
        "pooled": (pooled, pooled_markdown(pooled, pooled_transfer)),
        "headline": (headline, headline_markdown(headline)),
        "gaps": (gaps, gaps_markdown(gaps)),
        "original": (orig, original_markdown(orig)),
        "subspace": (sub, subspace_markdown(sub)),
        "norms": (norms, norms_markdown(norms)),
        "merge": (merged, markdown(merged) if len(merged) else "No merge."),
        "methods": (methods, methods_markdown(methods)),
        "transfer": (trans, transfer_markdown(trans)),
        "landscape": (land, markdown(land) if len(land) else "No landscape was swept."),
        "reconstruction": (recon, markdown(recon)),
        "overlap": (overlap_table, overlap_markdown(overlap_table, folds or {})),
    }
    if paper:
        compared = paper_table(sub, trans, paper, paper_rows or {}, det_methods or {})
        sections["paper"] = (compared, paper_markdown(compared, paper))
    history = pd.concat([load_table(p).assign(space=Path(p).parent.name) for p in learned], ignore_index=True) \
        if learned else None
    if history is not None:
        moved = learned_table(history)
        sections["learned"] = (moved, learned_markdown(moved))
    for name, (frame, text) in sections.items():
        save_table(out / f"{name}.parquet", frame)
        _write(out / f"{name}.md", text + "\n")
    plot_relative(sub, out / "relative.png")
    plot_dims(gaps, out / "dims.png")
    plot_pooled(pooled, out / "pooled.png")
    plot_curves(few_curves(_concat(histories)), out / "curves.png")
    plots = ["pooled.png", "relative.png", "dims.png", "curves.png"]
    if history is not None:
        plot_learned(history, out / "learned.png")
        plots.append("learned.png")
    # many unseen tasks: the pooled statement per DET; one: a sentence per DET and task
    sentences = pooled_answer(pooled, pooled_transfer) if len(headline) and headline.task.nunique() > 1 \
        else answer(headline)
    _index(out, sections, sentences, plots, [Path(p).with_suffix(".png") for p in landscape], threshold, paper)


CURVE_PANELS = 16  # a run with more searches shows those of its largest dimension, up to this many


def few_curves(history: pd.DataFrame) -> pd.DataFrame:
    """The searches curves.png draws: every one, or with more than CURVE_PANELS (space, task) panels the
    largest dimension's, found and random, of the first tasks."""
    if history.empty or history[["space", "task"]].drop_duplicates().shape[0] <= CURVE_PANELS:
        return history
    dims = history.space.map(lambda s: SpaceName.parse(s).dim)
    largest = history[dims == dims.max()]
    tasks = sorted(largest.task.unique())[: max(1, CURVE_PANELS // largest.space.nunique())]
    return largest[largest.task.isin(tasks)]


def overlap_markdown(table: pd.DataFrame, folds: dict) -> str:
    """The overlap matrix of the tasks that share texts, and where each task was unseen."""
    view = overlap_view(table)
    text = ("Share of each task's texts (rows) that another task (columns) also holds, after normalisation (lower "
            "case, letters and digits). The run fails before building a subspace when an unseen task shares more "
            "than subspace.leakage.max_share with one of its source tasks. ")
    if view.empty:
        text += "No two tasks share more than 0.1% of their texts."
    else:
        text += ("Tasks not shown share under 0.1% with any other.\n\n"
                 + view.map(lambda v: f"{100 * v:.1f}%").to_markdown())
    if folds:
        text += "\n\nFolds (each fold's tasks are unseen by its subspace, built from the other folds' tasks):\n\n" + \
            "\n".join(f"- fold {k}: {', '.join(names)}" for k, names in folds.items())
    return text


def _index(out: Path, sections: dict[str, tuple[pd.DataFrame, str]], sentences: list[str], plots: list[str],
           heatmaps: list[Path], threshold: float, paper: str | None) -> None:
    """index.md (the answer, every section's Markdown and the plots) and index.html (the answer and every
    section's table)."""
    titles = {
        "pooled": "Over the unseen tasks: the share of the gap closed, found against random, at each dimension",
        "overlap": "The leakage audit: shared texts between tasks",
        "headline": "Found subspace against the random one, on the unseen tasks",
        "gaps": "The share of the gap closed, every subspace and baseline",
        "original": "The DETs in their original space",
        "subspace": "Optimisation in the subspace (the paper's relative performance)",
        "norms": "How far the codes travel: norm of z at the start and at the end, beside the source codes'",
        "merge": "The merge baseline: initial values + s x the mean source solution, s picked on validation",
        "methods": "Decomposition methods compared on the same solutions",
        "paper": f"Beside the paper ({' and '.join(SETTINGS[paper]['tables']) if paper else ''})",
        "transfer": "Cross-DET transfer",
        "landscape": f"Landscape: share of the grid where every DET closes {threshold:.0%} of its gap (zero-shot to "
                     "original)",
        "learned": "Method learned: its losses and how far it moved from its start",
        "reconstruction": "Reconstruction of the solutions (relative error; unexplained share of the "
                          "deviation from the offset)",
    }
    md = ["# deltaspace report", "", "## The answer", "", *[f"- {s}" for s in sentences], ""]
    for name, (_, text) in sections.items():
        md += [f"## {titles[name]}", "", text, ""]
    md += ["## Plots", ""] + [f"![{p}]({p})\n" for p in plots]
    md += [f"![landscape {p.parent.name} {p.stem}]({os.path.relpath(p, out)})" for p in heatmaps]
    _write(out / "index.md", "\n".join(md) + "\n")
    html = ["<h1>deltaspace report</h1>", "<h2>The answer</h2>", "<ul>"]
    html += [f"<li>{s.replace('**', '')}</li>" for s in sentences] + ["</ul>"]
    for name, (frame, _) in sections.items():
        html += [f"<h2>{titles[name]}</h2>", frame.to_html(index=False, float_format=lambda v: f"{v:.3f}",
                                                          na_rep="-")]
    html += [f'<img src="{p}" alt="{p}">' for p in plots]
    _write(out / "index.html", "\n".join(html) + "\n")
