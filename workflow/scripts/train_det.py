"""Snakemake entry point of rule train_det (a thin call into deltaspace.stages.train_det)."""
import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # the deltaspace library, also where it is not installed

from deltaspace.config import job_setting
from deltaspace.logs import job
from deltaspace.stages.train_det import train_det

with job(snakemake):
    train_det(
        backbone=snakemake.params.backbone,
        data=snakemake.params.data,
        task=snakemake.params.task,
        train_cfg=snakemake.params.train,
        det_name=snakemake.wildcards.det,
        det_cfg=snakemake.params.det,
        seed=int(snakemake.wildcards.seed),
        device=snakemake.params.device,
        base_dir=f"{snakemake.scriptdir}/../..",  # the Snakefile's folder: not a param, moving it reruns nothing
        delta_path=snakemake.output.delta,
        metrics_path=snakemake.output.metrics,
        predictions_path=snakemake.output.predictions,
        threads=snakemake.threads,
        checkpoint_minutes=job_setting(snakemake.config, "train", "checkpoint_minutes"),
    )
