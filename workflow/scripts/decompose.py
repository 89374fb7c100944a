"""Snakemake entry point of rules decompose and decompose_learned (a thin call into deltaspace.stages.decompose)."""
import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # the deltaspace library, also where it is not installed

from deltaspace.logs import job
from deltaspace.names import SpaceName
from deltaspace.stages.decompose import decompose_stacks

with job(snakemake):
    params, dets = snakemake.params, snakemake.params.dets
    name = SpaceName.parse(snakemake.wildcards.space)
    decompose_stacks(
        method=name.method,
        dim=name.dim,
        offset=name.offset,
        control_seed=params.get("control_seed") or 0,
        held_out=params.held_out,
        stacked=dict(zip(dets, snakemake.input.stacked)),
        indexes=dict(zip(dets, snakemake.input.index)),
        projections_path=snakemake.output.projections,
        codes_path=snakemake.output.codes,
        reconstruction_path=snakemake.output.reconstruction,
        history_path=snakemake.output.get("history"),
        learned=params.get("learned"),
        data=params.get("data"),
        task_configs=params.get("tasks"),
        device=params.get("device", "auto"),
        base_dir=f"{snakemake.scriptdir}/../..",  # the Snakefile's folder
        threads=snakemake.threads,
    )
