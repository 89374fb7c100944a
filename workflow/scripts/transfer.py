"""Snakemake entry point of rule transfer (a thin call into deltaspace.stages.transfer)."""
import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # the deltaspace library, also where it is not installed

from deltaspace.logs import job
from deltaspace.stages.transfer import transfer

with job(snakemake):
    dets = list(snakemake.params.dets)
    transfer(
        space_path=snakemake.input.space,
        z_paths=dict(zip(dets, snakemake.input.z)),
        metrics_paths=dict(zip(dets, snakemake.input.metrics)),
        det_configs=dict(snakemake.params.dets),
        backbone=snakemake.params.backbone,
        data=snakemake.params.data,
        task=snakemake.params.task,
        eval_batch_size=snakemake.params.eval_batch_size,
        device=snakemake.params.device,
        seed=int(snakemake.wildcards.seed),
        base_dir=f"{snakemake.scriptdir}/../..",  # the Snakefile's folder: not a param, moving it reruns nothing
        table_path=snakemake.output[0],
        threads=snakemake.threads,
    )
