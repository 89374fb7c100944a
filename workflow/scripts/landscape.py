"""Snakemake entry point of rule landscape (a thin call into deltaspace.insubspace)."""
import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # the deltaspace library, also where it is not installed

from deltaspace.insubspace import landscape
from deltaspace.logs import job

with job(snakemake):
    landscape(
        space_path=snakemake.input.space,
        z_paths=dict(zip(snakemake.params.dets, snakemake.input.z)),
        backbone=snakemake.params.backbone,
        data=snakemake.params.data,
        task=snakemake.params.task,
        settings=dict(snakemake.params.settings),
        eval_batch_size=snakemake.params.eval["eval_batch_size"],
        device=snakemake.params.eval["device"],
        seed=snakemake.params.seed,
        base_dir=f"{snakemake.scriptdir}/../..",  # the Snakefile's folder: not a param, moving it reruns nothing
        table_path=snakemake.output.table,
        solutions_path=snakemake.output.solutions,
        plot_path=snakemake.output.plot,
        threads=snakemake.threads,
    )
