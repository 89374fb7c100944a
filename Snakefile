# deltaspace: are delta-tuning methods different tunes of one low-dimensional subspace?
#   snakemake --cores all                                  the embedded default (config.yaml)
#   snakemake --cores all --configfile configs/tiny.yaml   another experiment
import sys

from snakemake.utils import min_version

min_version("9.0")
sys.path.insert(0, f"{workflow.basedir}/workflow")  # the deltaspace library, also where it is not installed


# config.yaml is the default only: with --configfile, the named file alone is the experiment
# (Snakemake would otherwise merge it into the default's keys).
if not config:

    configfile: "config.yaml"


include: "workflow/rules/common.smk"


if CFG["workdir"]:

    workdir: Path(workflow.basedir) / CFG["workdir"]

include: "workflow/rules/train_det.smk"
include: "workflow/rules/stack_deltas.smk"
include: "workflow/rules/decompose.smk"
include: "workflow/rules/merge.smk"
include: "workflow/rules/optimize_subspace.smk"
include: "workflow/rules/transfer.smk"
include: "workflow/rules/landscape.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/export.smk"  # on request only: snakemake export_all (not part of `all`)


rule all:
    input:
        plan.final_targets(CFG),
    default_target: True
