"""Snakemake entry point of rule report (a thin call into deltaspace.stages.report)."""
import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # the deltaspace library, also where it is not installed

from deltaspace.logs import job
from deltaspace.stages.report import build_report

with job(snakemake):
    build_report(
        original=list(snakemake.input.original),
        optimized=list(snakemake.input.optimized),
        transfer=list(snakemake.input.transfer),
        landscape=list(snakemake.input.landscape),
        solutions=list(snakemake.input.solutions),
        reconstruction=list(snakemake.input.reconstruction),
        original_predictions=list(snakemake.input.original_predictions),
        predictions=list(snakemake.input.predictions),
        histories=list(snakemake.input.histories),
        merge=list(snakemake.input.merge),
        merge_predictions=list(snakemake.input.merge_predictions),
        codes=list(snakemake.input.codes),
        learned=list(snakemake.input.learned),
        held_out=snakemake.params.held_out,
        threshold=snakemake.params.threshold,
        det_methods=dict(snakemake.params.det_methods),
        paper=snakemake.params.paper,
        paper_rows=dict(snakemake.params.paper_rows),
        out_dir=snakemake.output.markdown.rsplit("/", 1)[0],
    )
