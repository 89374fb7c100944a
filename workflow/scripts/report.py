"""Snakemake entry point of rule report (a thin call into deltaspace.stages.report)."""
import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # the deltaspace library, also where it is not installed

from deltaspace.logs import job
from deltaspace.stages.report import build_report

with job(snakemake):
    files = ("original", "optimized", "transfer", "landscape", "solutions", "reconstruction", "original_predictions",
             "predictions", "histories", "merge", "merge_predictions", "codes", "learned")
    build_report(
        **{name: list(snakemake.input[name]) for name in files},
        overlap=snakemake.input.overlap,
        folds={int(k): list(v) for k, v in snakemake.params.folds.items()},
        held_out=snakemake.params.held_out,
        threshold=snakemake.params.threshold,
        det_methods=dict(snakemake.params.det_methods),
        paper=snakemake.params.paper,
        paper_rows=dict(snakemake.params.paper_rows),
        out_dir=snakemake.output.markdown.rsplit("/", 1)[0],
    )
