"""Stage report: every stage's outputs gathered in results/report/: the tables in the paper's form (Parquet and
Markdown), the plots, and the index pages (index.md, index.html)."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from ..gaps import answer, gap_table, gaps_markdown, headline_markdown, headline_table, task_runs
from ..io import PROVENANCE, atomic_path, load_table, provenance, save_table
from ..leakage import overlap_view
from ..names import SpaceName
from ..page import Figure, Section, page_html, page_markdown, relative
from ..paper import SETTINGS
from ..plots import plot_curves, plot_dims, plot_learned, plot_pooled, plot_relative, plot_transfer
from ..pooled import pooled_answer, pooled_markdown, pooled_table, shown_space, transfer_pooled
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
    plot_transfer(pooled_transfer, out / "transfer.png")
    validation = original_frame[(original_frame.split == "validation") & (original_frame.metric == "accuracy")] \
        if len(original_frame) else pd.DataFrame(columns=["det", "task", "value"])
    plot_curves(few_curves(_concat(histories)), out / "curves.png",
                references=validation.groupby(["det", "task"]).value.mean().to_dict())
    if history is not None:
        plot_learned(history, out / "learned.png")
    # many unseen tasks: the pooled statement per DET and the pooled table first; else a sentence per DET and task
    many = many_unseen(headline)
    sentences = pooled_answer(pooled, pooled_transfer) if many else answer(headline)
    figures = _figures(out, gaps, pooled, pooled_transfer, landscape, history is not None, threshold)
    _index(out, sections, sentences, figures, headline, held_out, threshold, paper, many)


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


TITLES = {
    "pooled": "Over the unseen tasks: the share of the gap closed, found against random, at each dimension",
    "overlap": "The leakage audit: shared texts between tasks",
    "headline": "Found subspace against the random one, on the unseen tasks",
    "gaps": "The share of the gap closed, every subspace and baseline",
    "original": "The DETs in their original space",
    "subspace": "Optimisation in the subspace (the paper's relative performance)",
    "norms": "How far the codes travel: norm of z at the start and at the end, beside the source codes'",
    "merge": "The merge baseline: initial values + s x the mean source solution, s picked on validation",
    "methods": "Decomposition methods compared on the same solutions",
    "paper": "Beside the paper",
    "transfer": "Cross-DET transfer, per task",
    "landscape": "Landscape: share of the grid where every DET closes {threshold:.0%} of its gap (zero-shot to "
                 "original)",
    "learned": "Method learned: its losses and how far it moved from its start",
    "reconstruction": "Reconstruction of the solutions (relative error; unexplained share of the deviation from "
                      "the offset)",
}


CAPTIONS = {  # what each plot draws, under it on the page, in the order the page shows them
    "pooled.png": ("The share of the gap closed on the unseen tasks, g = (accuracy - zero-shot) / (original - "
                   "zero-shot), against the subspace dimension, per DET: the found subspace (solid) against a random "
                   "one of the same size (dashed), with 95% intervals over tasks and test examples; g = 0 is "
                   "zero-shot, g = 1 the DET trained in its original space."),
    "dims.png": ("Test accuracy on the unseen tasks against the subspace dimension, per DET: found (solid) and random "
                 "(dashed) with 95% intervals; the original-space run, the merge of the source solutions and "
                 "zero-shot as horizontal lines."),
    "transfer.png": ("Cross-DET transfer in {space}: the mean g of a source DET's code decoded with the target DET's "
                     "projection (rows: source, columns: target; the diagonal is the target's own code), above each "
                     "target's own code in the random subspace of the same size."),
    "landscape": ("Landscape of {space} on {task}: test accuracy of every DET on the plane through the DETs' codes "
                  "(circles); white line: where the DET closes {threshold:.0%} of its gap between zero-shot and its "
                  "original-space run."),
    "curves.png": ("Each search for a code: validation accuracy (top) and training loss (below) against the step, one "
                   "line per DET; dotted: the DET's validation accuracy trained in its original space."),
    "relative.png": ("Relative performance per task and DET: test accuracy in the subspace over the same DET's "
                     "original-space accuracy; lines at 100% and 80%."),
    "learned.png": ("Method learned: the task loss, the reconstruction distance and how far the projections moved "
                    "from their start, against the step."),
}


def _figures(out: Path, gaps: pd.DataFrame, pooled: pd.DataFrame, transfer: pd.DataFrame, landscape: list,
             learned: bool, threshold: float) -> list[Figure]:
    """The plots the page shows, each with what it draws; a plot without data is left off the page."""
    unseen = bool(len(gaps)) and bool((~gaps.seen).any())
    keep = {"pooled.png": bool(len(pooled)) and bool((pooled.tasks > 0).any()), "dims.png": unseen,
            "transfer.png": bool(len(transfer)), "curves.png": True, "relative.png": True, "learned.png": learned}
    figures = []
    for name, caption in CAPTIONS.items():
        if name == "landscape":
            figures += [Figure(relative(Path(p).with_suffix(".png"), out),
                               caption.format(space=Path(p).parent.name, task=Path(p).stem, threshold=threshold))
                        for p in landscape]
        elif keep[name]:
            space = shown_space(transfer) if name == "transfer.png" else ""
            figures.append(Figure(name, caption.format(space=space)))
    return figures


def _lead(headline: pd.DataFrame, held_out: list[str]) -> str:
    """What the run asked, in one sentence."""
    if headline.empty:
        return "No task was optimised in a found subspace."
    dets = ", ".join(sorted(headline.det.unique()))
    spaces = ", ".join(sorted(headline.space.unique(), key=lambda s: (SpaceName.parse(s).family, SpaceName.parse(s).dim)))
    if not held_out:
        return (f"No task is held out: the found subspaces ({spaces}) are searched on tasks they were built from, "
                f"beside random subspaces of the same size; DETs: {dets}.")
    tasks = sorted(headline.task.unique())
    return (f"The question: on {len(tasks)} task{'s' if len(tasks) > 1 else ''} it never saw "
            f"({', '.join(tasks)}), does a subspace found from other tasks' solutions let a few numbers recover each "
            f"DET's performance better than a random subspace of the same size? DETs: {dets}; found subspaces: "
            f"{spaces}, each beside its random control.")


def many_unseen(headline: pd.DataFrame) -> bool:
    """Whether the answer pools over several unseen tasks (the pooled statements and table lead the page)."""
    return not headline.empty and headline[~headline.seen].task.nunique() > 1


def _index(out: Path, sections: dict[str, tuple[pd.DataFrame, str]], sentences: list[str], figures: list[Figure],
           headline: pd.DataFrame, held_out: list[str], threshold: float, paper: str | None, many: bool) -> None:
    """index.md and index.html: the answer, then the headline table (the largest svd subspace's, every one folded
    below when there are more) or, with `many` unseen tasks, the pooled table and the per-task one folded; the
    plots, every other table folded, the provenance."""
    shown = shown_space(headline) if len(headline) else None
    top = headline[headline.space == shown] if shown else headline
    title = TITLES["headline"] + (f" ({shown})" if shown and headline.space.nunique() > 1 else "")
    first = Section(title, headline_markdown(top))
    rest = []
    if many:
        # Many unseen tasks: the pooled table answers the question; the per-task table follows, folded.
        first, rest = Section(TITLES["pooled"], sections["pooled"][1]), [Section(title, first.text, folded=True)]
    for name, (_, text) in sections.items():
        if name == "headline" and headline.space.nunique() <= 1 or name == "pooled" and many:
            continue
        heading = TITLES[name].format(threshold=threshold) \
            + (f" ({' and '.join(SETTINGS[paper]['tables'])})" if name == "paper" and paper else "")
        if name == "headline":
            heading += ", every subspace"
        rest.append(Section(heading, text, folded=True))
    stamp = provenance()
    footer = (f"Written {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by the report stage (code digest "
              f"{stamp.get('code') or '-'}) with " + ", ".join(f"{k} {v}" for k, v in sorted(stamp["versions"].items()))
              + ". Every table is also in this folder as Parquet and Markdown (`<name>.parquet`, `<name>.md`).")
    parts = ("deltaspace report", _lead(headline, held_out), sentences, first)
    _write(out / "index.md", page_markdown(*parts, figures, rest, footer))
    _write(out / "index.html", page_html(*parts, figures, rest, footer, out))
