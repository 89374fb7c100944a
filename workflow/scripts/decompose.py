"""Snakemake entry point of rules decompose and decompose_learned (a thin call into deltaspace.subspace)."""
import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # the deltaspace library, also where it is not installed

from deltaspace.logs import job
from deltaspace.subspace import decompose_stacks

with job(snakemake):
    dets = snakemake.params.dets
    method = "learned" if snakemake.rule == "decompose_learned" else "svd"
    learning = None
    if method == "learned":
        settings = dict(snakemake.params.learned)
        learning = {
            "data": snakemake.params.data,
            "task_configs": snakemake.params.tasks,
            "settings": settings,
            "device": settings.pop("device"),
            "base_dir": f"{snakemake.scriptdir}/../..",  # the Snakefile's folder
            "history_path": snakemake.output.history,
            "threads": snakemake.threads,
        }
    decompose_stacks(
        method=method,
        dim=int(snakemake.wildcards.dim),
        held_out=snakemake.params.held_out,
        stacked=dict(zip(dets, snakemake.input.stacked)),
        indexes=dict(zip(dets, snakemake.input.index)),
        projections_path=snakemake.output.projections,
        codes_path=snakemake.output.codes,
        reconstruction_path=snakemake.output.reconstruction,
        learning=learning,
    )
