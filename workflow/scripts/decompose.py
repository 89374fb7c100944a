"""Snakemake entry point of rule decompose (a thin call into deltaspace.subspace)."""
import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # the deltaspace library, also where it is not installed

from deltaspace.logs import logged
from deltaspace.subspace import decompose_stacks

with logged(snakemake.log[0]):
    dets = snakemake.params.dets
    decompose_stacks(
        method=snakemake.wildcards.method,
        dim=int(snakemake.wildcards.dim),
        held_out=snakemake.params.held_out,
        stacked=dict(zip(dets, snakemake.input.stacked)),
        indexes=dict(zip(dets, snakemake.input.index)),
        projections_path=snakemake.output.projections,
        codes_path=snakemake.output.codes,
        reconstruction_path=snakemake.output.reconstruction,
    )
