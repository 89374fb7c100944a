"""Snakemake entry point of rule transfer (a thin call into deltaspace.insubspace)."""
import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # the deltaspace library, also where it is not installed

from deltaspace.insubspace import transfer
from deltaspace.logs import job

with job(snakemake):
    transfer(
        space_path=snakemake.input.space,
        z_paths=dict(zip(snakemake.params.dets, snakemake.input.z)),
        metrics_paths=dict(zip(snakemake.params.dets, snakemake.input.metrics)),
        backbone=snakemake.params.backbone,
        data=snakemake.params.data,
        task=snakemake.params.task,
        eval_batch_size=snakemake.params.eval["eval_batch_size"],
        device=snakemake.params.eval["device"],
        seed=int(snakemake.wildcards.seed),
        base_dir=f"{snakemake.scriptdir}/../..",  # the Snakefile's folder: not a param, moving it reruns nothing
        table_path=snakemake.output[0],
        threads=snakemake.threads,
    )
