"""Snakemake entry point of rule landscape (a thin call into deltaspace.stages.landscape)."""
import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # the deltaspace library, also where it is not installed

from deltaspace.logs import job
from deltaspace.stages.landscape import landscape

with job(snakemake):
    landscape(
        space_path=snakemake.input.space,
        z_paths=dict(zip(snakemake.params.plane, snakemake.input.z)),
        det_configs=dict(snakemake.params.dets),
        backbone=snakemake.params.backbone,
        data=snakemake.params.data,
        task=snakemake.params.task,
        settings=dict(snakemake.params.settings),
        eval_batch_size=snakemake.params.eval_batch_size,
        device=snakemake.params.device,
        seed=snakemake.params.seed,
        base_dir=f"{snakemake.scriptdir}/../..",  # the Snakefile's folder: not a param, moving it reruns nothing
        table_path=snakemake.output.table,
        solutions_path=snakemake.output.solutions,
        plot_path=snakemake.output.plot,
        original_paths=dict(zip(snakemake.params.dets, snakemake.input.original)),
        threads=snakemake.threads,
    )
