rule merge:
    """A baseline without training: the DET's initial values plus a scale (picked on validation) times the mean
    of its source solutions."""
    input:
        stacked="results/stacked/{det}.safetensors",
        index="results/stacked/{det}.parquet",
        audit="results/audit/overlap.parquet",  # runs first (see the audit rule)
    output:
        table="results/merge/{det}/{task}.parquet",
        predictions="results/merge/{det}/{task}.predictions.parquet",
    log:
        "results/logs/merge/{det}/{task}.log",
    params:
        code=code("merge"),
        det=lambda wc: plan.det_config(CFG, wc.det),
        backbone=CFG["backbone"],
        data=CFG["data"],
        task=lambda wc: plan.task_config(CFG, wc.task),
        held_out=lambda wc: plan.merge_held_out(CFG, wc.task),
        scales=SUB["merge_scales"],
        eval_batch_size=CFG["train"]["eval_batch_size"],
        device=DEVICE,
    threads: THREADS
    resources:
        gpu=MODEL_JOB["gpu"],
        mem_mb=MODEL_JOB["mem_mb"],
        runtime=MODEL_JOB["runtime"],
    conda:
        "../../envs/deltaspace.yaml"
    script:
        "../scripts/merge.py"
