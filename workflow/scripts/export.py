"""Snakemake entry point of rules export_det and export_optimized (a thin call into deltaspace.stages.export)."""
import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # the deltaspace library, also where it is not installed

from deltaspace.logs import job
from deltaspace.stages.export import export_det, export_optimized

with job(snakemake):
    if snakemake.rule == "export_det":
        export_det(delta_path=snakemake.input.delta, folder=snakemake.output.folder)
    else:
        export_optimized(
            space_path=snakemake.input.space,
            z_path=snakemake.input.z,
            det_name=snakemake.wildcards.det,
            task=snakemake.params.task,
            data=snakemake.params.data,
            seed=int(snakemake.wildcards.seed),
            base_dir=f"{snakemake.scriptdir}/../..",  # the Snakefile's folder: not a param, moving it reruns nothing
            folder=snakemake.output.folder,
        )
