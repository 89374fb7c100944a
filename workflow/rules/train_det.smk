rule train_det:
    """Train one DET on one task from one seed; keep the best validation checkpoint."""
    output:
        delta="results/dets/{det}/{task}/seed{seed}/delta.safetensors",
        metrics="results/dets/{det}/{task}/seed{seed}/metrics.parquet",
        predictions="results/dets/{det}/{task}/seed{seed}/predictions.parquet",
    log:
        "results/logs/train_det/{det}/{task}/seed{seed}.log",
    params:
        code=code("train_det"),
        backbone=CFG["backbone"],
        data=CFG["data"],
        train=plan.train_params(CFG),
        task=lambda wc: plan.task_config(CFG, wc.task),
        det=lambda wc: plan.det_config(CFG, wc.det),
        device=DEVICE,
    threads: THREADS
    resources:
        gpu=MODEL_JOB["gpu"],
        mem_mb=MODEL_JOB["mem_mb"],
        runtime=MODEL_JOB["runtime"],
    conda:
        "../../envs/deltaspace.yaml"
    script:
        "../scripts/train_det.py"
