"""Snakemake entry point of rule optimize_subspace (a thin call into deltaspace.stages.optimize_subspace)."""
import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # the deltaspace library, also where it is not installed

from deltaspace.logs import job
from deltaspace.stages.optimize_subspace import optimize_subspace

with job(snakemake):
    optimize_subspace(
        space_path=snakemake.input.space,
        det_name=snakemake.wildcards.det,
        det_cfg=snakemake.params.det,
        backbone=snakemake.params.backbone,
        data=snakemake.params.data,
        task=snakemake.params.task,
        optimize_cfg=snakemake.params.optimize,
        device=snakemake.params.device,
        seed=int(snakemake.wildcards.seed),
        base_dir=f"{snakemake.scriptdir}/../..",  # the Snakefile's folder: not a param, moving it reruns nothing
        z_path=snakemake.output.z,
        metrics_path=snakemake.output.metrics,
        history_path=snakemake.output.history,
        predictions_path=snakemake.output.predictions,
        threads=snakemake.threads,
    )
