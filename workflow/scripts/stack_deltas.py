"""Snakemake entry point of rule stack_deltas (a thin call into deltaspace.stages.stack_deltas)."""
import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # the deltaspace library, also where it is not installed

from deltaspace.logs import job
from deltaspace.stages.stack_deltas import stack_deltas

with job(snakemake):
    stack_deltas(
        det_name=snakemake.wildcards.det,
        deltas=list(snakemake.input.deltas),
        metrics=list(snakemake.input.metrics),
        stacked_path=snakemake.output.stacked,
        index_path=snakemake.output.index,
    )
