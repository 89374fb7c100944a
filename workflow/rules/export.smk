# Exports: any trained solution, and any code optimised in a subspace, as a folder that other code loads (peft
# for LoRA, prompt tuning and IA3; deltaspace.export.load for every DET). Not part of `all`: ask for them with
#   snakemake --cores all export_all                           every one of the run
#   snakemake --cores all results/export/lora/sst2/seed0       one trained solution
#   snakemake --cores all results/export/svd-d4/lora/mr/seed0  one optimised code, decoded as LoRA


localrules:
    export_all,


rule export_all:
    """Every trained solution and every optimised code of the run, exported."""
    input:
        plan.export_folders(CFG),


rule export_det:
    """One trained DET solution (its kept tensors) as an export folder."""
    input:
        delta="results/dets/{det}/{task}/seed{seed}/delta.safetensors",
    output:
        folder=directory("results/export/{det}/{task}/seed{seed}"),
    log:
        "results/logs/export/{det}/{task}/seed{seed}.log",
    params:
        code=code("export"),
    conda:
        "../../envs/deltaspace.yaml"
    script:
        "../scripts/export.py"


rule export_optimized:
    """The code one optimize_subspace job found, decoded with its DET's projection, as an export folder."""
    input:
        space="results/subspace/{space}/projections.safetensors",
        z="results/optimized/{space}/{det}/{task}/seed{seed}/z.safetensors",
    output:
        folder=directory("results/export/{space}/{det}/{task}/seed{seed}"),
    log:
        "results/logs/export/{space}/{det}/{task}/seed{seed}.log",
    params:
        code=code("export"),
        task=lambda wc: plan.task_config(CFG, wc.task),
        data=CFG["data"],
    conda:
        "../../envs/deltaspace.yaml"
    script:
        "../scripts/export.py"
