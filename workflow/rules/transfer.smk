rule transfer:
    """Each DET's code decoded with every DET's projection, evaluated on the task without more training."""
    input:
        space="results/subspace/{space}/projections.safetensors",
        z=codes_of(DETS),
        metrics=codes_of(DETS, name="metrics.parquet"),
    output:
        "results/transfer/{space}/{task}/seed{seed}.parquet",
    log:
        "results/logs/transfer/{space}/{task}/seed{seed}.log",
    params:
        code=code("transfer"),
        dets=dets_config(DETS),
        backbone=CFG["backbone"],
        data=CFG["data"],
        task=lambda wc: plan.task_config(CFG, wc.task),
        eval_batch_size=CFG["train"]["eval_batch_size"],  # transfer and landscape evaluate as training does
        device=DEVICE,
    threads: THREADS
    resources:
        gpu=MODEL_JOB["gpu"],
        mem_mb=MODEL_JOB["mem_mb"],
        runtime=MODEL_JOB["runtime"],
    conda:
        "../../envs/deltaspace.yaml"
    script:
        "../scripts/transfer.py"
