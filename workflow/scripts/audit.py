"""Snakemake entry point of rule audit (a thin call into deltaspace.stages.audit)."""
import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # the deltaspace library, also where it is not installed

from deltaspace.logs import job
from deltaspace.stages.audit import audit

with job(snakemake):
    audit(
        tasks=dict(snakemake.params.tasks),
        data=dict(snakemake.params.data),
        groups={group: list(names) for group, names in snakemake.params.groups.items()},
        max_share=snakemake.params.max_share,
        base_dir=f"{snakemake.scriptdir}/../..",  # the Snakefile's folder
        table_path=snakemake.output.table,
    )
