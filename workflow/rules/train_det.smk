rule train_det:
    """Train one DET on one task from one seed; keep the best validation checkpoint."""
    output:
        delta="results/dets/{det}/{task}/seed{seed}/delta.safetensors",
        metrics="results/dets/{det}/{task}/seed{seed}/metrics.parquet",
    log:
        "results/logs/train_det/{det}/{task}/seed{seed}.log",
    params:
        code=CODE["train_det"],
        backbone=CFG["backbone"],
        data=CFG["data"],
        train=TRAIN,
        task=lambda wc: task_config(CFG, wc.task),
        det=lambda wc: det_config(CFG, wc.det),
    threads: CFG["train"]["threads"] or workflow.cores
    resources:
        gpu=MODEL_JOB["gpu"],
        mem_mb=MODEL_JOB["mem_mb"],
        runtime=MODEL_JOB["runtime"],
    conda:
        "../../envs/deltaspace.yaml"
    script:
        "../scripts/train_det.py"
