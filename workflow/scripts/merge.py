"""Snakemake entry point of rule merge (a thin call into deltaspace.stages.merge)."""
import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # the deltaspace library, also where it is not installed

from deltaspace.logs import job
from deltaspace.stages.merge import merge

with job(snakemake):
    merge(
        stacked=snakemake.input.stacked,
        index=snakemake.input.index,
        det_name=snakemake.wildcards.det,
        det_cfg=snakemake.params.det,
        backbone=snakemake.params.backbone,
        data=snakemake.params.data,
        task=snakemake.params.task,
        held_out=snakemake.params.held_out,
        scales=snakemake.params.scales,
        eval_batch_size=snakemake.params.eval_batch_size,
        device=snakemake.params.device,
        base_dir=f"{snakemake.scriptdir}/../..",  # the Snakefile's folder: not a param, moving it reruns nothing
        table_path=snakemake.output.table,
        predictions_path=snakemake.output.predictions,
        threads=snakemake.threads,
    )
