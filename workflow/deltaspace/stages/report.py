"""Stage report: every stage's outputs gathered in results/report/: the tables in the paper's form (Parquet and
Markdown), the plots, and the index pages (index.md, index.html)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from ..io import PROVENANCE, atomic_path, load_table, provenance, save_table
from ..paper import SETTINGS
from ..plots import plot_dims, plot_relative
from ..tables import (
    landscape_table,
    methods_markdown,
    methods_table,
    original_markdown,
    original_table,
    paper_markdown,
    paper_table,
    subspace_markdown,
    subspace_table,
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
                 det_methods: dict[str, str] | None = None, paper: str | None = None,
                 paper_rows: dict[str, str] | None = None) -> None:
    out = Path(out_dir)
    original_frame = _concat(original)
    sub = subspace_table(original_frame, _concat(optimized), held_out)
    trans = transfer_table(original_frame, _concat(transfer))
    land = landscape_table(_concat(landscape), _concat(solutions), original_frame, threshold) if landscape \
        else pd.DataFrame(columns=["space", "task", "seed", "plane", "points", "share_of_best", "share_of_original"])
    recon = _concat(reconstruction).groupby(["space", "det", "seen"], as_index=False)[
        ["relative_error", "unexplained"]].mean()

    orig = original_table(original_frame)
    methods = methods_table(sub, trans)
    sections = {
        "original": (orig, original_markdown(orig)),
        "subspace": (sub, subspace_markdown(sub)),
        "methods": (methods, methods_markdown(methods)),
        "transfer": (trans, transfer_markdown(trans)),
        "landscape": (land, land.to_markdown(index=False, floatfmt=".3f") if len(land) else "No landscape was swept."),
        "reconstruction": (recon, recon.to_markdown(index=False, floatfmt=".3f")),
    }
    if paper:
        compared = paper_table(sub, trans, paper, paper_rows or {}, det_methods or {})
        sections["paper"] = (compared, paper_markdown(compared, paper))
    for name, (frame, text) in sections.items():
        save_table(out / f"{name}.parquet", frame)
        _write(out / f"{name}.md", text + "\n")
    plot_relative(sub, out / "relative.png")
    plot_dims(sub, out / "dims.png")
    _index(out, sections, [Path(p).with_suffix(".png") for p in landscape], threshold, paper)


def _index(out: Path, sections: dict[str, tuple[pd.DataFrame, str]], heatmaps: list[Path], threshold: float,
           paper: str | None) -> None:
    """index.md (every section's Markdown and the plots) and index.html (every section's table)."""
    titles = {
        "original": "The DETs in their original space",
        "subspace": "Optimisation in the subspace",
        "methods": "Decomposition methods compared on the same solutions",
        "paper": f"Beside the paper ({' and '.join(SETTINGS[paper]['tables']) if paper else ''})",
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
