"""Snakemake entry point of rule train_det (a thin call into deltaspace.stages)."""
import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # the deltaspace library, also where it is not installed

from deltaspace.logs import logged
from deltaspace.stages import train_det

with logged(snakemake.log[0]):
    train_det(
        backbone=snakemake.params.backbone,
        data=snakemake.params.data,
        task=snakemake.params.task,
        train_cfg=snakemake.params.train,
        det_name=snakemake.wildcards.det,
        det_cfg=snakemake.params.det,
        seed=int(snakemake.wildcards.seed),
        base_dir=f"{snakemake.scriptdir}/../..",  # the Snakefile's folder: not a param, moving it reruns nothing
        delta_path=snakemake.output.delta,
        metrics_path=snakemake.output.metrics,
        threads=snakemake.threads,
    )
